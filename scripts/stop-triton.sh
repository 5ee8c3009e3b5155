#!/usr/bin/env bash
# Stop the Triton server started by scripts/start-triton.sh.
#
# Sends SIGINT to tritonserver (it unloads the models, stopping their Python-backend stubs, and
# exits), waits up to TRITON_STOP_TIMEOUT seconds (default 30), then SIGKILLs the server's
# process group (the session start-triton.sh created with setsid: tritonserver and its stubs).
# Removes the pid and ready files. No-op when nothing is running.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${BASIN_CACHE:-$REPO/.cache}/triton"
PIDFILE="$DIR/triton.pid"
READYFILE="$DIR/ready"
TIMEOUT="${TRITON_STOP_TIMEOUT:-30}"

log() { printf 'stop-triton: %s\n' "$*" >&2; }

if [[ ! -f "$PIDFILE" ]]; then
    log "no pid file ($PIDFILE); nothing to stop"
    exit 0
fi
pid="$(<"$PIDFILE")"
if ! [[ "$pid" =~ ^[0-9]+$ ]] || ! kill -0 "$pid" 2>/dev/null; then
    log "pid '$pid' is not running; removing stale pid file"
    rm -f "$PIDFILE" "$READYFILE"
    exit 0
fi

t0=$(date +%s.%N)
kill -INT "$pid"
deadline=$(($(date +%s) + TIMEOUT))
while kill -0 "$pid" 2>/dev/null && (($(date +%s) < deadline)); do sleep 0.2; done
if kill -0 "$pid" 2>/dev/null; then
    log "still running after ${TIMEOUT}s; SIGKILL to process group $pid"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
else
    # Stragglers of the same session (e.g. a stub that ignored the shutdown).
    kill -KILL -- "-$pid" 2>/dev/null || true
fi
rm -f "$PIDFILE" "$READYFILE"
t1=$(date +%s.%N)
log "stopped pid $pid in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s"
