#!/usr/bin/env bash
# Fault test of the real replay (issue 6): start Triton, replay a Path B experiment, KILL the
# Triton server (SIGKILL to its process group) mid-run, and check that the replay
#   - ends by itself (no hang: it must finish within a deadline),
#   - writes complete outputs (one requests.parquet row per request, summary counts agree),
#   - counts the failed requests with a reason.
#
#   scripts/test-replay-faults.sh        (BASIN: basin binary; TRITON_PORT: default 8300)
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
port="${TRITON_PORT:-8300}"
BASIN_CMD=(${BASIN:-cargo run -q --features ort,triton --bin basin --})
work="$(mktemp -d)"
export BASIN_CACHE="$work/cache"          # private pid/log dir; models shared
mkdir -p "$BASIN_CACHE"
ln -s "$REPO/.cache/models" "$BASIN_CACHE/models"
cleanup() { scripts/stop-triton.sh >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

scripts/start-triton.sh --models digits_large --max-batch-size 8 --max-queue-delay-us 2000 \
    --instances 1 --ort-threads 1 --http-port "$port" --grpc-port $((port + 1)) --metrics-port $((port + 2)) >/dev/null
pid="$(<"$BASIN_CACHE/triton/triton.pid")"

# a 12 s replay at ~100 requests/s; Triton dies after ~4 s
"${BASIN_CMD[@]}" replay experiments/replay/fluctuating.toml --out "$work/run" --time-scale 5 --duration-s 12 \
    --set "replay.triton_url=http://127.0.0.1:$port" --set "replay.server_pid_file=$BASIN_CACHE/triton/triton.pid" --set replay.request_timeout_s=2 --set replay.drain_timeout_s=5 \
    >"$work/replay.log" 2>&1 &
rpid=$!
sleep 4
echo "test-replay-faults: killing Triton (process group $pid) mid-replay" >&2
kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid"
deadline=$((SECONDS + 60))
while kill -0 "$rpid" 2>/dev/null; do
    if ((SECONDS > deadline)); then
        kill -INT "$rpid" || true
        echo "test-replay-faults: FAIL: the replay hung after Triton died" >&2
        exit 1
    fi
    sleep 0.5
done
wait "$rpid" || { echo "test-replay-faults: FAIL: replay exited non-zero" >&2; cat "$work/replay.log" >&2; exit 1; }
cat "$work/replay.log"
"$REPO/.venv/bin/python" - "$work/run" <<'PY'
import json, sys, polars as pl
d = sys.argv[1]
s = json.load(open(f"{d}/summary.json"))
r = pl.read_parquet(f"{d}/requests.parquet")
assert s["mode"] == "replay", s["mode"]
assert r.height == s["requests"], (r.height, s["requests"])
assert r["id"].n_unique() == r.height
counts = r.group_by("decision").len()
c = dict(zip(counts["decision"], counts["len"]))
assert c.get("failed", 0) == s["failed"], (c, s["failed"])
assert s["failed"] > 0, "killing Triton must fail requests"
assert s["completed"] > 0, "requests before the kill completed"
assert s["requests"] == s["completed"] + s["failed"] + s["skipped"] + s["rejected"]
f = r.filter(pl.col("decision") == "failed")
assert f["reason"].null_count() == 0 and (f["reason"].str.len_chars() > 0).all()
print(f"test-replay-faults: OK: {s['requests']} requests, {s['completed']} completed, {s['failed']} failed "
      f"by reason {s.get('failed_reasons')}; schedule error {s.get('schedule_error_ms')}")
PY
