#!/usr/bin/env bash
# One-command simulation-vs-replay validation of an experiment (issue 6).
#
#   scripts/validate.sh EXP.toml [basin validate options: --time-scale X --rate-scale X --duration-s S --set K=V --out DIR]
#
# 1. calibrates if needed: when the experiment's cost table or load profile is missing,
#    measures both on this host into the table's folder (scripts/calibrate-replay.sh: basin
#    calibrate calibration/cal-replay.toml + basin load-profile; made for experiments/replay/);
# 2. starts Triton with the experiment's batcher knobs when a server has backend = "triton" and
#    nothing answers on the experiment's Triton URL (stopped again at the end);
# 3. runs `basin validate --experiment EXP.toml ...`: simulates and replays the identical
#    scaled workload, prints the error table, writes validation.json and the figures.
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

started=""
if grep -q 'backend *= *"triton"' "$exp"; then
    if ! curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$port/v2/health/ready"; then
        mbs="$(sed -n 's/^max_batch_size *= *\([0-9]*\).*/\1/p' "$exp" | head -1)"
        delay="$(sed -n 's/^max_queue_delay_us *= *\([0-9]*\).*/\1/p' "$exp" | head -1)"
        inst="$(sed -n 's/^instances *= *\([0-9]*\).*/\1/p' "$exp" | head -1)"
        models="$(grep -A6 'backend *= *"triton"' "$exp" | sed -n 's/^model *= *"\(.*\)".*/\1/p'; grep -B3 'backend *= *"triton"' "$exp" | sed -n 's/^model *= *"\(.*\)".*/\1/p')"
        scripts/start-triton.sh --models $(echo "$models" | sort -u) --max-batch-size "${mbs:-8}" \
            --max-queue-delay-us "${delay:-0}" --instances "${inst:-1}" --ort-threads 1 \
            --http-port "$port" --grpc-port $((port + 1)) --metrics-port $((port + 2)) >/dev/null
        started=1
        trap 'scripts/stop-triton.sh || true' EXIT
    fi
fi
"${BASIN_CMD[@]}" validate --experiment "$exp" --set "replay.triton_url=http://127.0.0.1:$port" "$@"
