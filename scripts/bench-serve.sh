#!/usr/bin/env bash
# Benchmark of `basin serve` (issue 12; not a timed test): early-exit answers only (the deploy
# page's digits cascade, experiments/serve/digits-cascade.toml, with a static threshold above 1
# instead of the bio controller, so every request is skipped after digits_tiny) at
# RATE requests/s for SECONDS, REPEAT times back to back, from `basin bench load` (CLIENT=basin,
# the default: a few persistent connections, light enough to share 2 vCPUs with the server) or
# scripts/bench_serve.py (CLIENT=python: THREADS Python threads). Prints one JSON line per run
# from the client (errors, achieved rate, client latency; the Python client also the backend
# time and the added latency it sees) and the server's own gateway_overhead_ms (summary.json).
#
#   scripts/bench-serve.sh              (BASIN: basin binary; RATE 1000, SECONDS_PER_RUN 30,
#                                        REPEAT 3, CLIENT basin, CONNECTIONS 4, THREADS 16,
#                                        SERVE_PORT 8830; SERVER_CPUS / CLIENT_CPUS pin the
#                                        server and the load generator apart, e.g. 0 and 1)
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
BASIN_CMD=(${BASIN:-cargo run -q --release --bin basin --})
rate="${RATE:-1000}" seconds="${SECONDS_PER_RUN:-30}" repeat="${REPEAT:-3}" threads="${THREADS:-16}"
port="${SERVE_PORT:-8830}"
work="$(mktemp -d)"
spid=""
cleanup() {
    local rc=$?
    [[ -n "$spid" ]] && kill -KILL "$spid" 2>/dev/null || true
    ((rc == 0)) || cat "$work"/serve*.log >&2 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
for run in $(seq 1 "$repeat"); do
    ${SERVER_CPUS:+taskset -c "$SERVER_CPUS"} "${BASIN_CMD[@]}" serve experiments/serve/digits-cascade.toml --set 'controller={kind="static_threshold", threshold=2.0}' --listen "127.0.0.1:$port" --out "$work/run$run" >"$work/serve$run.log" 2>&1 &
    spid=$!
    "$REPO/.venv/bin/python" tests/serve_client.py ready "127.0.0.1:$port" true 60 >/dev/null
    case "${CLIENT:-basin}" in
        basin) ${CLIENT_CPUS:+taskset -c "$CLIENT_CPUS"} "${BASIN_CMD[@]}" bench load "http://127.0.0.1:$port" --model digits_large \
            --rate "$rate" --seconds "$seconds" --connections "${CONNECTIONS:-4}" ;;
        python) ${CLIENT_CPUS:+taskset -c "$CLIENT_CPUS"} "$REPO/.venv/bin/python" scripts/bench_serve.py "127.0.0.1:$port" digits_large "$rate" "$seconds" "$threads" ;;
        *) echo "bench-serve: CLIENT must be basin or python" >&2; exit 2 ;;
    esac
    kill -TERM "$spid"
    wait "$spid"
    spid=""
    "$REPO/.venv/bin/python" -c 'import json, sys; print(json.dumps({"server_gateway_overhead_ms": json.load(open(sys.argv[1]))["gateway_overhead_ms"]}))' "$work/run$run/summary.json"
done
