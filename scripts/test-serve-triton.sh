#!/usr/bin/env bash
# Path B of `basin serve` against a real Triton on loopback (issue 12): requests are forwarded
# to Triton's dynamic batcher and answered; Triton is KILLED (SIGKILL to its process group)
# mid-run, and then
#   - requests get HTTP 502 with the backend's reason, the gateway stays up,
#   - /v2/health/ready turns false, and true again once Triton is back (restarted on the same
#     port), when requests are answered again;
#   - SIGTERM drains and writes the run, its counts matching what was sent.
#
#   scripts/test-serve-triton.sh        (BASIN: basin binary; TRITON_PORT: default 8820;
#                                        SERVE_PORT: default 8812)
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
port="${TRITON_PORT:-8820}"
serve_port="${SERVE_PORT:-8812}"
BASIN_CMD=(${BASIN:-cargo run -q --bin basin --})
PY="$REPO/.venv/bin/python"
CLIENT=(tests/serve_client.py)
work="$(mktemp -d)"
export BASIN_CACHE="$work/cache"          # private pid/log dir; models shared
mkdir -p "$BASIN_CACHE"
ln -s "$REPO/.cache/models" "$BASIN_CACHE/models"
spid=""
cleanup() {
    [[ -n "$spid" ]] && kill -KILL "$spid" 2>/dev/null || true
    scripts/stop-triton.sh >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "test-serve-triton: FAIL: $*" >&2; cat "$work/serve.log" >&2 || true; exit 1; }

start_triton() {
    scripts/start-triton.sh --models digits_large --max-batch-size 8 --max-queue-delay-us 2000 \
        --instances 1 --ort-threads 1 --http-port "$port" --grpc-port $((port + 1)) --metrics-port $((port + 2)) >/dev/null
}
start_triton

costs=""
for b in 1 2 3 4 5 6 7 8; do
    costs+=$'[[cost]]\nmodel = "digits_large"\nbackend = "triton"\ndevice = "cpu"\n'"batch_size = $b"$'\nlatency_ms = 1.0\nenergy_j = 0.004\n'
done
cat >"$work/serve.toml" <<TOML
name = "serve-triton"
slo_ms = 100
[[device]]
name = "cpu"
idle_power_w = 0
$costs
[[server]]
name = "triton"
kind = "batched"
model = "digits_large"
backend = "triton"
device = "cpu"
instances = 1
max_batch_size = 8
max_queue_delay_us = 2000
[controller]
kind = "open_loop"
[output]
interval_s = 0.5
requests = true
[replay]
model_dir = "$REPO/.cache/models"
triton_url = "http://127.0.0.1:$port"
request_timeout_s = 2
drain_timeout_s = 5
TOML

"${BASIN_CMD[@]}" serve "$work/serve.toml" --listen "127.0.0.1:$serve_port" --out "$work/run" >"$work/serve.log" 2>&1 &
spid=$!
url="127.0.0.1:$serve_port"
"$PY" "${CLIENT[@]}" ready "$url" true 60 || fail "basin serve never became ready"
"$PY" "${CLIENT[@]}" burst "$url" .cache/models digits_large 40 200 || fail "Path B answers"

tpid="$(<"$BASIN_CACHE/triton/triton.pid")"
echo "test-serve-triton: killing Triton (process group $tpid)" >&2
kill -KILL -- "-$tpid" 2>/dev/null || kill -KILL "$tpid"
"$PY" "${CLIENT[@]}" burst "$url" .cache/models digits_large 10 502 || fail "requests while Triton is dead"
"$PY" "${CLIENT[@]}" ready "$url" false 10 || fail "ready stayed true with Triton dead"
kill -0 "$spid" || fail "basin serve died with Triton"

rm -f "$BASIN_CACHE/triton/triton.pid"
start_triton
"$PY" "${CLIENT[@]}" ready "$url" true 30 || fail "ready did not come back with Triton"
"$PY" "${CLIENT[@]}" burst "$url" .cache/models digits_large 20 200 || fail "answers after Triton came back"

kill -TERM "$spid"
deadline=$((SECONDS + 60))
while kill -0 "$spid" 2>/dev/null; do
    ((SECONDS < deadline)) || fail "basin serve did not stop within 60 s of SIGTERM"
    sleep 0.2
done
wait "$spid" || fail "basin serve exited non-zero"
spid=""
grep -q panicked "$work/serve.log" && fail "a panic in basin serve"
"$PY" - "$work/run" <<'PY'
import json, sys
s = json.load(open(f"{sys.argv[1]}/summary.json"))
assert s["mode"] == "serve", s["mode"]
assert s["requests"] == 70, s["requests"]
assert s["completed"] == 60 and s["failed"] == 10, (s["completed"], s["failed"])
assert s["energy_j"] > 0, s["energy_j"]
print(f"test-serve-triton: run written: {s['requests']} requests, {s['completed']} answered, {s['failed']} failed (502), {s['energy_j']:.2f} J")
PY
echo "test-serve-triton: OK"
