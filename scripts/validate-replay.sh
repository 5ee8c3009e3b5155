#!/usr/bin/env bash
# Simulation-vs-replay validation of the four IPA replay experiments × {open_loop, bio_threshold}
# against ONE Triton server (start it first, with the experiments' batcher knobs):
#
#   scripts/calibrate-replay.sh        # tables, gateway energy and load profile (once per host)
#   scripts/start-triton.sh --models digits_large --max-batch-size 8 --max-queue-delay-us 2000 \
#       --instances 1 --ort-threads 1 --http-port 8700 --grpc-port 8701 --metrics-port 8702
#   scripts/validate-replay.sh [OUT_DIR]
#   python3 scripts/validation_table.py OUT_DIR   # the table of experiments/replay/VALIDATION.md
#
# Each replay is time-compressed 20× and cut to 45 s. Environment: BASIN (binary, default
# target/debug/basin), TRITON_PORT (8700), TRITON_PID_FILE (.cache/triton/triton.pid; the
# process-set energy estimate charges the server's session, as the calibration does).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
out="${1:-runs/validate-replay}"
bin="${BASIN:-target/debug/basin}"
port="${TRITON_PORT:-8700}"
pidf="$(realpath -m "${TRITON_PID_FILE:-.cache/triton/triton.pid}")"
mkdir -p "$out"
for w in steady_low bursty fluctuating steady_high; do
    for c in open_loop bio_threshold; do
        "$bin" validate --experiment "experiments/replay/$w.toml" --time-scale 20 --duration-s 45 \
            --set "controller.kind=\"$c\"" --set "replay.triton_url=\"http://127.0.0.1:$port\"" \
            --set "replay.server_pid_file=\"$pidf\"" --out "$out/$w-$c" >"$out/$w-$c.log" 2>&1 \
            || { echo "validate-replay: $w $c failed, see $out/$w-$c.log" >&2; exit 1; }
        echo "$w $c: $out/$w-$c/report/validation.json"
    done
done
