#!/usr/bin/env bash
# Create (or refresh) basin's Python virtual environment.
#
#   scripts/setup-python.sh            # venv at $REPO/.venv
#   BASIN_VENV=/some/dir scripts/setup-python.sh
#
# The venv is built from Debian's /usr/bin/python3 (3.11.2) on purpose: Triton's Python
# backend stub links the system libpython3.11, and a venv from any other 3.11 patch release
# fails at model load (see /work/shared/STACK.md). On a fresh Debian 12 machine the script
# first apt-installs python3-venv (ensurepip) and libpython3.11 when they are missing
# (root, or sudo, needed only then).
#
# Packages come from scripts/requirements.txt (pinned). A stamp file in the venv records the
# requirements hash and the interpreter version; when both are unchanged the script exits at
# once (measured: ~0.02 s), so it is safe to call from other scripts.
#
# Measured on the 2-core Debian 12 dev machine (2026-11), empty pip cache, PyPI via the proxy:
# cold install ~42 s wall, venv size ~1.1 GB (polars runtime 170 MB, nvidia-pytriton with its
# bundled tritonserver ~150 MB, scipy (for scikit-learn) 145 MB, onnxruntime 68 MB, numpy,
# scikit-learn, onnx, matplotlib and the Jupyter kernel stack). Without the model/Triton
# packages it was ~22 s and ~480 MB.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${BASIN_VENV:-$REPO/.venv}"
REQ="$REPO/scripts/requirements.txt"
PY=/usr/bin/python3
PY_WANT=3.11.2
STAMP="$VENV/.basin-setup-stamp"
APT_PKGS=(python3-venv libpython3.11)

log() { printf 'setup-python: %s\n' "$*"; }
die() { printf 'setup-python: error: %s\n' "$*" >&2; exit 1; }

[[ -f "$REQ" ]] || die "requirements file not found: $REQ"
[[ -x "$PY" ]] || die "$PY not found (this script expects Debian 12's python3 package)"

# Fast path: unchanged requirements and interpreter -> nothing to do.
want="$(sha256sum "$REQ" | cut -d' ' -f1) $("$PY" -c 'import platform; print(platform.python_version())')"
if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(<"$STAMP")" == "$want" ]]; then
    log "venv $VENV is up to date (requirements unchanged); nothing to do"
    exit 0
fi

t0=$(date +%s.%N)
py_version="${want#* }"
[[ "$py_version" == "$PY_WANT" ]] ||
    log "warning: $PY is $py_version, not $PY_WANT; Triton's Python backend may reject this venv"

# System packages: install only what is missing; `apt-get update` only when installing.
missing=()
for pkg in "${APT_PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' ||
        missing+=("$pkg")
done
if ((${#missing[@]})); then
    SUDO=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null || die "need root to apt-get install ${missing[*]}"
        SUDO=(sudo)
    fi
    log "apt-get install ${missing[*]} (apt-get update first)"
    "${SUDO[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
else
    log "system packages present: ${APT_PKGS[*]}"
fi

# An existing venv from another interpreter is rebuilt; a non-venv directory is left alone.
if [[ -e "$VENV" ]]; then
    if [[ -f "$VENV/pyvenv.cfg" ]]; then
        if ! grep -qx "home = /usr/bin" "$VENV/pyvenv.cfg" ||
            ! grep -qE "^version(_info)? = $py_version\$" "$VENV/pyvenv.cfg"; then
            log "existing venv $VENV was built from another interpreter; recreating it"
            rm -rf "$VENV"
        fi
    elif [[ -n "$(ls -A "$VENV")" ]]; then
        die "$VENV exists, is not empty and is not a venv; set BASIN_VENV elsewhere or remove it"
    fi
fi
if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating venv $VENV from $PY ($py_version)"
    "$PY" -m venv "$VENV"
else
    log "reusing venv $VENV"
fi

log "pip install -r ${REQ#"$REPO"/}"
rm -f "$STAMP"
"$VENV/bin/python" -m pip install --disable-pip-version-check -q -r "$REQ"
"$VENV/bin/python" -c 'import simpy, numpy, polars, matplotlib, nbclient, nbformat, ipykernel
import onnx, onnxruntime, sklearn, pathlib, sysconfig, prometheus_client
# the tritonserver binary of the nvidia-pytriton wheel (scripts/start-triton.sh runs it directly)
assert (pathlib.Path(sysconfig.get_paths()["purelib"]) / "pytriton/tritonserver/bin/tritonserver").is_file()'

printf '%s\n' "$want" >"$STAMP.tmp" && mv "$STAMP.tmp" "$STAMP"
t1=$(date +%s.%N)
log "done in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s; venv size $(du -sh "$VENV" | cut -f1)"
log "use it with: source $VENV/bin/activate   (or call $VENV/bin/python directly)"
