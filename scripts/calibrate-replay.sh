#!/usr/bin/env bash
# Measures the tables the replay experiments (experiments/replay/*.toml) simulate with, on THIS
# host, against one Triton server started with the experiments' batcher knobs:
#   1. basin calibrate calibration/cal-replay.toml: cost rows (ONNX Runtime early exit in
#      process; Triton execution per batch size with the replay's request pattern), the
#      zero-load device idle power (devices.csv) and the transport overhead (overhead.csv);
#   2. basin load-profile: first the gateway alone (every request answered by the early-exit
#      model) at 100/300/600 req/s: its own power = base + energy per arrival (gateway.csv);
#      then the experiments' own pipeline under open-loop Poisson load at rates spanning the
#      workloads (3 passes, the fastest at each rate), giving the service-time and energy factors and
#      the transport overhead per arrival rate (load.csv, the experiments' [[server]] load_profile).
#      The rates start at 5 req/s: bio sends Triton about a tenth of the low workloads' 98 req/s,
#      and a profile holds its lowest row below it (the energy factor grows as the rate falls).
#   3. into calibration/replay (the default OUT_DIR) only: experiments/replay/*.toml get the
#      measured [[device]] idle_power_w (zero-load idle + the gateway's base power) and
#      [early_exit] overhead_energy_j (the gateway's energy per arrival), from gateway_fit.
#   scripts/calibrate-replay.sh [OUT_DIR (default calibration/replay)]
# Environment: BASIN (the basin command, default: cargo run --release --features ort,triton), TRITON_PORT (8700),
# LOAD_RATES (comma list), LOAD_DURATION_S (8), LOAD_PASSES (3), LOAD_PICK (fastest: see
# basin load-profile --pick), GATEWAY_RATES (100,300,600).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
out="${1:-calibration/replay}"
BASIN_CMD=(${BASIN:-cargo run -q --release --features ort,triton --bin basin --})
port="${TRITON_PORT:-8700}"
rates="${LOAD_RATES:-5,10,15,25,50,100,150,200,250,300,375,450,525,600,675,750,850}"
export BASIN_MODELS_DIR="${BASIN_MODELS_DIR:-$REPO/.cache/models}"
scripts/start-triton.sh --models digits_large --max-batch-size 8 --max-queue-delay-us 2000 \
    --instances 1 --ort-threads 1 --http-port "$port" --grpc-port $((port + 1)) --metrics-port $((port + 2)) >/dev/null
trap 'scripts/stop-triton.sh >/dev/null 2>&1 || true' EXIT
pidf="$(realpath .cache/triton/triton.pid)"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/basin-calrep.XXXXXX")"
"${BASIN_CMD[@]}" calibrate calibration/cal-replay.toml --out "$tmp/cal" --set "backends.triton.url=\"http://127.0.0.1:$port\"" \
    --set "backends.triton.server_pid_file=\"$pidf\""
idle="$(sed -n '2p' "$tmp/cal/devices.csv" | cut -d, -f2)"
"${BASIN_CMD[@]}" load-profile experiments/replay/steady_high.toml --rates "$rates" --duration-s "${LOAD_DURATION_S:-8}" --passes "${LOAD_PASSES:-3}" --pick "${LOAD_PICK:-fastest}" \
    --gateway-rates "${GATEWAY_RATES:-100,300,600}" --set 'controller.kind="open_loop"' \
    --set "replay.triton_url=\"http://127.0.0.1:$port\"" \
    --set "replay.server_pid_file=\"$pidf\"" --set "cost_table.path=\"$tmp/cal/cost.csv\"" \
    --set "device[0].idle_power_w=$idle" --set "early_exit.overhead_energy_j=0.0" --out "$tmp/load"
cp "$tmp/load/load.csv" "$tmp/load/load-batches.csv" "$tmp/load/load-passes.csv" "$tmp/load/gateway.csv" "$tmp/load/load-profile.json" "$tmp/cal/"
rm -rf "$out.tmp" && mv "$tmp/cal" "$out.tmp" && rm -rf "$out" && mv "$out.tmp" "$out"
rm -rf "$tmp"
read -r base per <<<"$(python3 -c 'import json,sys; f=json.load(open(sys.argv[1]))["gateway_fit"]; print(f["base_power_w"], f["overhead_energy_j"])' "$out/load-profile.json")"
power="$(python3 -c 'import sys; print(f"{float(sys.argv[1]) + float(sys.argv[2]):.6f}")' "$idle" "$base")"
echo "calibrate-replay: wrote $out: idle_power_w = $power W ($idle W at zero load + $base W gateway base), overhead_energy_j = $per J per arrival"
if [[ "$out" == calibration/replay ]]; then
    for f in experiments/replay/{steady_low,bursty,fluctuating,steady_high}.toml; do
        sed -i -E "s|^idle_power_w = [^#]*#.*|idle_power_w = $power       # calibration/replay (scripts/calibrate-replay.sh): devices.csv $idle W (client + idle Triton session at zero load) + load-profile.json gateway_fit base_power_w $base W, CPU-time ESTIMATE|; s|^overhead_energy_j = [^#]*#.*|overhead_energy_j = $per   # calibration/replay/load-profile.json gateway_fit: the gateway's (replay driver's) own energy per arrival|" "$f"
    done
    echo "calibrate-replay: set them in experiments/replay/*.toml"
fi
