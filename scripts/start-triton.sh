#!/usr/bin/env bash
# Start basin's Triton server (scripts/triton_server.py) in the background and wait until ready.
#
#   scripts/start-triton.sh [triton_server.py args...]
#   scripts/start-triton.sh --models digits_small resnet18 --max-queue-delay-us 200 --http-port 8010
#   scripts/stop-triton.sh
#
# Makes sure the venv and the models exist (scripts/build-models.sh, a quick no-op when they
# are current), starts the server in its own session (setsid) with its pid in
# $BASIN_CACHE/triton/triton.pid and its log in $BASIN_CACHE/triton/triton.log, then polls
# GET /v2/health/ready until it answers 200 AND the server has written its ready file (the
# served model names, $BASIN_CACHE/triton/ready: Triton is "ready" before PyTriton has loaded
# the models), and checks GET /v2/models/<name>/ready for each. Gives up after TRITON_START_TIMEOUT seconds
# (default 180), or as soon as the server exits, printing the log tail; the exit status is
# then 1 (and a server still starting is stopped). Prints the HTTP base URL on success.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${BASIN_VENV:-$REPO/.venv}"
DIR="${BASIN_CACHE:-$REPO/.cache}/triton"
PIDFILE="$DIR/triton.pid"
LOGFILE="$DIR/triton.log"
READYFILE="$DIR/ready"
TIMEOUT="${TRITON_START_TIMEOUT:-180}"

log() { printf 'start-triton: %s\n' "$*" >&2; }
die() { printf 'start-triton: error: %s\n' "$*" >&2; exit 1; }

# The HTTP port, from the arguments (same default as triton_server.py).
port=8000
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    case "${args[i]}" in
        --http-port) port="${args[i + 1]:-}" ;;
        --http-port=*) port="${args[i]#*=}" ;;
    esac
done
[[ "$port" =~ ^[0-9]+$ ]] || die "bad --http-port '$port'"
url="http://127.0.0.1:$port"

mkdir -p "$DIR"
if [[ -f "$PIDFILE" ]] && kill -0 "$(<"$PIDFILE")" 2>/dev/null; then
    die "already running (pid $(<"$PIDFILE"), see $LOGFILE); run scripts/stop-triton.sh first"
fi

"$REPO/scripts/build-models.sh" >&2

# http_status PATH: prints the HTTP status of GET $url$PATH (000 when nothing answers).
http_status() {
    if command -v curl >/dev/null; then
        curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url$1" || true
    else
        "$VENV/bin/python" - "$url$1" <<'PY' || true
import sys, urllib.request
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=2).status, end="")
except Exception as e:
    print(getattr(e, "code", "000"), end="")
PY
    fi
}
[[ "$(http_status /v2/health/ready)" == 000 ]] || die "something already answers on $url; choose another --http-port"

t0=$(date +%s.%N)
: >"$LOGFILE"
rm -f "$READYFILE"
setsid "$VENV/bin/python" -u "$REPO/scripts/triton_server.py" --ready-file "$READYFILE" "$@" \
    >>"$LOGFILE" 2>&1 </dev/null &
pid=$!
printf '%s\n' "$pid" >"$PIDFILE"
log "started pid $pid, log $LOGFILE; waiting for $url/v2/health/ready (up to ${TIMEOUT}s)"

deadline=$(($(date +%s) + TIMEOUT))
while :; do
    status="$(http_status /v2/health/ready)"
    [[ "$status" == 200 && -s "$READYFILE" ]] && break
    if ! kill -0 "$pid" 2>/dev/null; then
        rm -f "$PIDFILE"
        log "server exited before becoming ready; last log lines:"
        tail -n 30 "$LOGFILE" >&2
        exit 1
    fi
    if (($(date +%s) >= deadline)); then
        log "not ready after ${TIMEOUT}s (last status $status); last log lines:"
        tail -n 30 "$LOGFILE" >&2
        "$REPO/scripts/stop-triton.sh" >&2 || true
        exit 1
    fi
    sleep 0.2
done
while read -r model; do
    [[ "$(http_status "/v2/models/$model/ready")" == 200 ]] || {
        log "model $model is not ready; last log lines:"
        tail -n 30 "$LOGFILE" >&2
        "$REPO/scripts/stop-triton.sh" >&2 || true
        exit 1
    }
done <"$READYFILE"
t1=$(date +%s.%N)
log "models ready: $(paste -sd' ' "$READYFILE")"
log "ready in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s (pid $pid)"
printf '%s\n' "$url"
