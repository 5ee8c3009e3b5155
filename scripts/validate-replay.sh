#!/usr/bin/env bash
# Simulation-vs-replay validation in levels (basin validate --level) of the four IPA replay
# experiments × {open_loop, bio_threshold}, plus a trace none of the experiments uses
# (twitter/fluctuating_undamped.csv at a tenth of its rate, about the bursty trace's load, through
# the bursty experiment's server, open loop), then
# experiments/replay/VALIDATION.md from the JSON (scripts/validation_report.py):
#
#   scripts/calibrate-replay.sh        # tables, gateway energy and load profile (once per host)
#   scripts/validate-replay.sh [OUT_DIR] [--write]
#
# basin validate starts and stops the Triton each level needs (controlled-service models for
# level 1, the real digits_large otherwise) on TRITON_PORT. --write replaces
# experiments/replay/VALIDATION.md. Environment: BASIN (binary, default target/release/basin),
# LEVELS ("controlled conditioned predicted"), REPEATS (3), DURATION_S (20 s of each replay after
# 20× time compression), TRITON_PORT (8700), WORKLOADS (the four; empty: only the own trace),
# SKIP_OWN (set: not the own trace), HOST_PASS_S (level 3's load pass before each replay, s; basin
# validate's default 5, 0: none). A validation that fails is named at the end (exit status 1)
# and left out of the report; the others still run.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
out="runs/validate-replay"
write=""
for a in "$@"; do
    case "$a" in
        --write) write=1 ;;
        *) out="$a" ;;
    esac
done
bin="${BASIN:-target/release/basin}"
[[ -x "$bin" ]] || { echo "validate-replay: no basin binary at $bin (cargo build --release, or set BASIN)" >&2; exit 1; }
port="${TRITON_PORT:-8700}"
repeats="${REPEATS:-3}"
duration="${DURATION_S:-20}"
mkdir -p "$out"
run() { # level name experiment [--set ...]
    local level="$1" name="$2" exp="$3"; shift 3
    mkdir -p "$out/$level"
    local pass=()
    [[ "$level" != predicted || -z "${HOST_PASS_S:-}" ]] || pass=(--host-pass-s "$HOST_PASS_S")
    "$bin" validate --experiment "$exp" --level "$level" --repeats "$repeats" --time-scale 20 --duration-s "$duration" \
        --triton-port "$port" "${pass[@]}" --out "$out/$level/$name" "$@" >"$out/$level/$name.log" 2>&1 \
        || { echo "validate-replay: $level $name failed, see $out/$level/$name.log" >&2; failed+=("$level/$name"); return 0; }
    echo "$level $name: $out/$level/$name/validation.md"
}
failed=()
for level in ${LEVELS:-controlled conditioned predicted}; do
    for w in ${WORKLOADS-steady_low bursty fluctuating steady_high}; do
        for c in open_loop bio_threshold; do
            run "$level" "$w-$c" "experiments/replay/$w.toml" --set "controller.kind=\"$c\""
        done
    done
    [[ -n "${SKIP_OWN:-}" ]] || run "$level" own-open_loop experiments/replay/bursty.toml --rate-scale 0.1 \
        --set 'workload.trace="${BASIN_TRACES_DIR}/twitter/fluctuating_undamped.csv"' --set 'controller.kind="open_loop"'
done
if ((${#failed[@]})); then
    echo "validate-replay: ${#failed[@]} validation(s) failed: ${failed[*]}; the report covers the others" >&2
fi
if [[ -n "$write" ]]; then
    .venv/bin/python scripts/validation_report.py "$out" >experiments/replay/VALIDATION.md.tmp
    mv experiments/replay/VALIDATION.md.tmp experiments/replay/VALIDATION.md
    echo "wrote experiments/replay/VALIDATION.md"
else
    .venv/bin/python scripts/validation_report.py "$out"
fi
((${#failed[@]} == 0))
