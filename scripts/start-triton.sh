#!/usr/bin/env bash
# Start NVIDIA Triton Inference Server (the tritonserver binary of the nvidia-pytriton wheel,
# run directly on a model repository) in the background and wait until every model is ready.
#
#   scripts/start-triton.sh [repository options] [server options]
#   scripts/start-triton.sh --models digits_small resnet18 --max-queue-delay-us 200 --http-port 8010
#   scripts/start-triton.sh --controlled service.json --batch-log /tmp/batches --http-port 8900
#   scripts/start-triton.sh --repository DIR        (serve a prepared model repository as it is)
#   scripts/stop-triton.sh
#
# Repository options go to scripts/triton_repo.py, which writes $BASIN_CACHE/triton/repo: real
# ONNX Runtime models from .cache/models (--models, --model-dir, --max-batch-size,
# --max-queue-delay-us, --preferred-batch-sizes, --max-queue-size, --instances, --ort-threads,
# --cuda), or controlled-service models (--controlled FILE.json); --batch-log DIR for both.
# Server options: --http-port (default 8000), --grpc-port (8001), --metrics-port (8002),
# --log-verbose N, --trace-file FILE (Triton's per-request trace, TIMESTAMPS level, as JSON:
# written to FILE.<n> every TRITON_TRACE_LOG_FREQUENCY traces, default 1000), --trace-rate N
# (trace every N-th request, default 1; Triton 2.51 can crash when it traces more than about 100
# requests a second: triton-inference-server/server#7795). Everything binds to 127.0.0.1, and the model control mode stays "none" (no
# client can load or unload models).
#
# The backend directory ($BASIN_CACHE/triton-backends) is a copy of the wheel's backends with
# the Python-backend stub of the venv's Python beside libtriton_python.so, prepared once. The
# server runs in its own session (setsid; its pid, the session leader of tritonserver and its
# Python stubs, in $BASIN_CACHE/triton/triton.pid, its log in $BASIN_CACHE/triton/triton.log).
# Ready means GET /v2/models/<name>/ready answers 200 for every model; the names are then
# written to $BASIN_CACHE/triton/ready, one a line. Gives up after TRITON_START_TIMEOUT seconds
# (default 180), or as soon as the server exits, printing the log tail; the exit status is then
# 1 and nothing is left running. Prints the HTTP base URL on success.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${BASIN_VENV:-$REPO/.venv}"
CACHE="${BASIN_CACHE:-$REPO/.cache}"
DIR="$CACHE/triton"
PIDFILE="$DIR/triton.pid"
LOGFILE="$DIR/triton.log"
READYFILE="$DIR/ready"
TIMEOUT="${TRITON_START_TIMEOUT:-180}"

log() { printf 'start-triton: %s\n' "$*" >&2; }
die() { printf 'start-triton: error: %s\n' "$*" >&2; exit 1; }

http_port=8000 grpc_port=8001 metrics_port=8002 log_verbose=0 repository="" trace_file="" trace_rate=1
repo_args=()
while (($#)); do
    case "$1" in
        --http-port=* | --grpc-port=* | --metrics-port=* | --log-verbose=* | --repository=* | --trace-file=* | --trace-rate=*)
            option="${1%%=*}" value="${1#*=}"; shift ;;
        --http-port | --grpc-port | --metrics-port | --log-verbose | --repository | --trace-file | --trace-rate)
            (($# >= 2)) || die "$1 needs a value"
            option="$1" value="$2"; shift 2 ;;
        *) repo_args+=("$1"); shift; continue ;;
    esac
    case "$option" in
        --http-port) http_port="$value" ;;
        --grpc-port) grpc_port="$value" ;;
        --metrics-port) metrics_port="$value" ;;
        --log-verbose) log_verbose="$value" ;;
        --repository) repository="$value" ;;
        --trace-file) trace_file="$value" ;;
        --trace-rate) trace_rate="$value" ;;
    esac
done
for p in "$http_port" "$grpc_port" "$metrics_port" "$log_verbose" "$trace_rate"; do
    [[ "$p" =~ ^[0-9]+$ ]] || die "bad port, --log-verbose or --trace-rate value '$p'"
done
url="http://127.0.0.1:$http_port"

mkdir -p "$DIR"
if [[ -f "$PIDFILE" ]] && kill -0 "$(<"$PIDFILE")" 2>/dev/null; then
    die "already running (pid $(<"$PIDFILE"), see $LOGFILE); run scripts/stop-triton.sh first"
fi
[[ -x "$VENV/bin/python" ]] || die "no venv at $VENV (run scripts/setup-python.sh)"

# Something listening on a port (connect succeeds) means another server; fail before starting.
for p in "$http_port" "$grpc_port" "$metrics_port"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
        die "something already answers on 127.0.0.1:$p; choose other --http-port/--grpc-port/--metrics-port"
    fi
done

# The model repository: a prepared one, or one written now.
if [[ -n "$repository" ]]; then
    ((${#repo_args[@]} == 0)) || die "--repository serves a prepared repository; it takes no repository options (${repo_args[*]})"
    [[ -d "$repository" ]] || die "--repository $repository is not a directory"
    repository="$(cd "$repository" && pwd)"
    models=()
    for config in "$repository"/*/config.pbtxt; do
        [[ -f "$config" ]] && models+=("$(basename "$(dirname "$config")")")
    done
    ((${#models[@]})) || die "no <model>/config.pbtxt in $repository"
else
    controlled=0
    for a in "${repo_args[@]}"; do [[ "$a" == --controlled || "$a" == --controlled=* ]] && controlled=1; done
    ((controlled)) || "$REPO/scripts/build-models.sh" >&2
    repository="$DIR/repo"
    names="$("$VENV/bin/python" "$REPO/scripts/triton_repo.py" --out "$repository" "${repo_args[@]}")" \
        || die "could not write the model repository (see above)"
    mapfile -t models <<<"$names"
fi

# The backend directory: the wheel's backends plus the stub for the venv's Python (3.11 here).
read -r site_packages py_version < <("$VENV/bin/python" -c 'import sys, sysconfig
print(sysconfig.get_paths()["purelib"], f"{sys.version_info[0]}.{sys.version_info[1]}")')
wheel="$site_packages/pytriton/tritonserver"
server_bin="$wheel/bin/tritonserver"
stub="$wheel/python_backend_stubs/$py_version/triton_python_backend_stub"
[[ -x "$server_bin" && -f "$stub" ]] || die "no tritonserver or Python $py_version stub in $wheel (scripts/setup-python.sh installs nvidia-pytriton)"
backends="$CACHE/triton-backends"
if ! cmp -s "$stub" "$backends/python/triton_python_backend_stub" \
    || ! cmp -s "$wheel/backends/python/libtriton_python.so" "$backends/python/libtriton_python.so"; then
    rm -rf "$backends.tmp"
    cp -r "$wheel/backends" "$backends.tmp"
    cp "$stub" "$backends.tmp/python/"
    rm -rf "$backends"
    mv "$backends.tmp" "$backends"
fi

trace_args=()
if [[ -n "$trace_file" ]]; then
    mkdir -p "$(dirname "$trace_file")"
    trace_args=(--trace-config "triton,file=$trace_file" --trace-config "triton,log-frequency=${TRITON_TRACE_LOG_FREQUENCY:-1000}"
        --trace-config "rate=$trace_rate" --trace-config count=-1 --trace-config level=TIMESTAMPS)
fi

t0=$(date +%s.%N)
: >"$LOGFILE"
rm -f "$READYFILE"
# setsid execs (the background child is no process-group leader), so $! is tritonserver itself:
# the session leader whose session also holds the Python stubs it spawns.
LD_LIBRARY_PATH="$site_packages/nvidia_pytriton.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
    setsid "$server_bin" --model-repository="$repository" --backend-directory="$backends" \
    --model-control-mode=none --disable-auto-complete-config --log-verbose="$log_verbose" \
    --http-address=127.0.0.1 --http-port="$http_port" --grpc-address=127.0.0.1 --grpc-port="$grpc_port" \
    --metrics-address=127.0.0.1 --metrics-port="$metrics_port" "${trace_args[@]}" \
    >>"$LOGFILE" 2>&1 </dev/null &
pid=$!
printf '%s\n' "$pid" >"$PIDFILE"
log "started pid $pid, log $LOGFILE; waiting for ${models[*]} on $url (up to ${TIMEOUT}s)"

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

deadline=$(($(date +%s) + TIMEOUT))
pending=("${models[@]}")
while ((${#pending[@]})); do
    if ! kill -0 "$pid" 2>/dev/null; then
        rm -f "$PIDFILE"
        kill -KILL -- "-$pid" 2>/dev/null || true
        log "server exited before every model was ready; last log lines:"
        tail -n 30 "$LOGFILE" >&2
        exit 1
    fi
    if (($(date +%s) >= deadline)); then
        log "not ready after ${TIMEOUT}s (waiting for ${pending[*]}); last log lines:"
        tail -n 30 "$LOGFILE" >&2
        "$REPO/scripts/stop-triton.sh" >&2 || true
        exit 1
    fi
    still=()
    for m in "${pending[@]}"; do
        [[ "$(http_status "/v2/models/$m/ready")" == 200 ]] || still+=("$m")
    done
    pending=("${still[@]}")
    if ((${#pending[@]})); then sleep 0.2; fi
done
printf '%s\n' "${models[@]}" >"$READYFILE.tmp" && mv "$READYFILE.tmp" "$READYFILE"
t1=$(date +%s.%N)
log "models ready: ${models[*]}"
log "ready in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s (pid $pid)"
printf '%s\n' "$url"
