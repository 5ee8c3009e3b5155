#!/usr/bin/env bash
# One-command simulation-vs-replay validation of an experiment (issue 6).
#
#   scripts/validate.sh EXP.toml [basin validate options: --level L --repeats N --time-scale X --rate-scale X --duration-s S --set K=V --out DIR]
#
# 1. calibrates if needed: when the experiment's cost table or load profile is missing,
#    measures both on this host into the table's folder (scripts/calibrate-replay.sh: basin
#    calibrate calibration/cal-replay.toml + basin load-profile; made for experiments/replay/);
# 2. runs `basin validate --experiment EXP.toml ...` (default: --level predicted, 5 replays): it
#    starts Triton with the experiment's batcher knobs on TRITON_PORT (stopped again at the end),
#    replays, simulates the identical scaled workload, prints the tables, writes validation.json,
#    validation.md and the figures.
# Environment: BASIN (the basin binary, default: cargo run --release --features ort,triton),
# TRITON_PORT (default 8000).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
exp="${1:?usage: scripts/validate.sh EXP.toml [basin validate options]}"; shift
cd "$REPO"
BASIN_CMD=(${BASIN:-cargo run -q --features ort,triton --bin basin --})
port="${TRITON_PORT:-8000}"

# the cost table (and load profile) the experiment names, relative to the experiment file
table="$(sed -n '/^\[cost_table\]/,/^\[/{s/^path *= *"\(.*\)".*/\1/p}' "$exp" | head -1)"
profile="$(sed -n 's/^load_profile *= *"\(.*\)".*/\1/p' "$exp" | head -1)"
if [[ -n "$table" && ! -f "$(dirname "$exp")/$table" ]] || [[ -n "$profile" && ! -f "$(dirname "$exp")/$profile" ]]; then
    caldir="$(dirname "$(dirname "$exp")/${table:-$profile}")"
    echo "validate: no cost table or load profile in $caldir; measuring them on this host (scripts/calibrate-replay.sh)" >&2
    BASIN="${BASIN:-cargo run -q --features ort,triton --bin basin --}" TRITON_PORT=$((${TRITON_PORT:-8000} + 100)) scripts/calibrate-replay.sh "$caldir"
fi

# 2. basin validate starts the Triton the level needs (scripts/start-triton.sh on $port) and stops it
"${BASIN_CMD[@]}" validate --experiment "$exp" --triton-port "$port" "$@"
