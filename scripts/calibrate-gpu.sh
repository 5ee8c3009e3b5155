#!/usr/bin/env bash
# Calibrate basin on a host with an NVIDIA GPU in one command: cost tables with CUDA latencies
# and NVML energy under calibration/<gpu-model>-<host>/, then a simulation on them.
#
#   scripts/calibrate-gpu.sh [--budget-s S] [--out DIR] [--no-triton] [--dry-run]
#
#   --budget-s S   wall-clock budget of the whole script (default 480); the calibration's
#                  repetitions are trimmed to fit what is left after setup, and the script
#                  says what it trimmed
#   --out DIR      output folder (default calibration/<gpu-model>-<host>/)
#   --no-triton    no Triton rows even when a Triton server with the GPU could be started
#   --dry-run      print the plan (the GPU found, or that there is none) and run nothing
#
# Steps: (1) NVML must answer (libnvidia-ml.so.1 or BASIN_NVML_LIB, nvmlInit_v2, at least one
# GPU), else it stops at once: "no NVIDIA GPU". (2) scripts/setup-ort.sh --gpu (onnxruntime-gpu
# library + CUDA provider in .cache/onnxruntime-gpu/; a wheel already in .cache/wheels/ needs no
# network). (3) scripts/build-models.sh (resnet18 224x224, bert6 seq 128, digits). (4) the basin
# binary: $BASIN, else target/release/basin, else `cargo build --release --features cuda`.
# (5) Triton rows: scripts/start-triton.sh --cuda (ONNX Runtime's CUDA provider inside each
# model.py) when the venv has tritonserver and onnxruntime-gpu (skipped, with the reason, otherwise). (6) basin calibrate calibration/cal-gpu.toml. (7) basin simulate
# experiments/efficiency-boundary/batched.toml on the new tables (resnet18 on the GPU).
# CUDA/cuDNN libraries installed as nvidia-* Python wheels are put on LD_LIBRARY_PATH.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${BASIN_CACHE:-$REPO/.cache}"
CAL="$REPO/calibration/cal-gpu.toml"
t0=$SECONDS

log() { printf 'calibrate-gpu: %s\n' "$*" >&2; }
die() { printf 'calibrate-gpu: error: %s\n' "$*" >&2; exit 1; }

BUDGET=480 OUT="" DRY=0 TRITON=1
need_value() { (($# >= 2)) && [[ -n "$2" ]] || die "$1 needs a value (see --help)"; }
while (($#)); do
    case "$1" in
        --budget-s) need_value "$@"; BUDGET="$2"; shift 2 ;;
        --budget-s=*) BUDGET="${1#*=}"; shift ;;
        --out) need_value "$@"; OUT="$2"; shift 2 ;;
        --out=*) OUT="${1#*=}"; shift ;;
        --no-triton) TRITON=0; shift ;;
        --dry-run) DRY=1; shift ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done
[[ "$BUDGET" =~ ^[0-9]+$ && "$BUDGET" -ge 60 ]] || die "--budget-s must be a whole number of seconds >= 60 (got '$BUDGET')"

# --- (1) the GPU, through NVML itself (what basin's meter will load) -------------------------
# Prints "name<TAB>driver<TAB>count" or, on failure, the reason on stderr and exits non-zero.
nvml_probe() {
    local py
    py="$(command -v python3 || true)"
    if [[ -z "$py" ]]; then
        command -v nvidia-smi >/dev/null || { echo "no python3 to query NVML and no nvidia-smi" >&2; return 1; }
        nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>&1 | awk -F', ' -v OFS='\t' 'NR == 1 { n = $1; d = $2 } END { if (NR == 0 || n == "") exit 1; print n, d, NR }'
        return
    fi
    "$py" - "${BASIN_NVML_LIB:-libnvidia-ml.so.1}" <<'PY'
import ctypes, sys
lib = sys.argv[1]
try:
    nvml = ctypes.CDLL(lib)
except OSError as e:
    sys.exit(f"cannot load {lib} ({e}): no NVIDIA driver")
rc = nvml.nvmlInit_v2()
if rc != 0:
    sys.exit(f"nvmlInit_v2 failed with NVML error {rc} (9: the driver is not loaded)")
count = ctypes.c_uint(0)
if nvml.nvmlDeviceGetCount_v2(ctypes.byref(count)) != 0 or count.value == 0:
    sys.exit("NVML initialised but reports no GPU")
dev = ctypes.c_void_p()
name = ctypes.create_string_buffer(96)
driver = ctypes.create_string_buffer(80)
if nvml.nvmlDeviceGetHandleByIndex_v2(0, ctypes.byref(dev)) != 0 or nvml.nvmlDeviceGetName(dev, name, 96) != 0:
    sys.exit("NVML cannot name GPU 0")
nvml.nvmlSystemGetDriverVersion(driver, 80)
nvml.nvmlShutdown()
print(f"{name.value.decode()}\t{driver.value.decode() or 'unknown'}\t{count.value}")
PY
}

slug() { tr '[:upper:]' '[:lower:]' <<<"$1" | sed -E 's/[^a-z0-9]+/-/g; s/^-+|-+$//g'; }

GPU="" DRIVER="" NGPU=0 WHY=""
errf="$(mktemp)"
if probe="$(nvml_probe 2>"$errf")"; then
    IFS=$'\t' read -r GPU DRIVER NGPU <<<"$probe"
else
    WHY="$(tail -n1 "$errf")"
fi
rm -f "$errf"
if [[ -z "$GPU" && "$DRY" == 0 ]]; then
    die "no NVIDIA GPU on this host: ${WHY:-NVML did not answer}. This script needs an NVIDIA GPU with its driver; on a CPU host use basin calibrate calibration/cal-cpu.toml (--dry-run prints the plan)"
fi
HOST="$(hostname 2>/dev/null || cat /proc/sys/kernel/hostname)"
HOST_ID="$(slug "${GPU:-gpu-model}")-$(slug "$HOST")"
OUT="${OUT:-$REPO/calibration/$HOST_ID}"

# --- the budget ------------------------------------------------------------------------------
# Setup is charged as it happens; the calibration gets what is left minus a reserve for the
# simulation. A point costs at most warmup_max_s + max_time_s plus ~1 s of session set-up and
# reads; with P points and R seconds: shrink max_time_s (not below min_time_s), then the
# warm-up, then min_time_s (not below 0.75 s: three 0.25 s NVML windows), then drop Triton.
toml_num() { sed -n "s/^$1 *= *\([0-9.]*\).*/\1/p" "$CAL" | head -n1; }
N_MODELS="$(sed -n '/^\[models\]/,/^\[/p' "$CAL" | grep -c '^[a-z0-9_]* *=')"
N_BATCH="$(sed -n 's/^batch_sizes *= *\[\(.*\)\].*/\1/p' "$CAL" | tr ',' '\n' | grep -c '[0-9]')"
MAX_T="$(toml_num max_time_s)" MIN_T="$(toml_num min_time_s)" WARM_T="$(toml_num warmup_max_s)" IDLE_T="$(toml_num idle_s)"
SETUP_RESERVE=120   # setup-ort --gpu + build-models (+ Triton start) when nothing is cached
SIM_RESERVE=20
# plan_trim SECONDS BACKENDS: prints "max_time_s min_time_s warmup_max_s backends note" to fit.
plan_trim() {
    awk -v r="$1" -v b="$2" -v m="$N_MODELS" -v nb="$N_BATCH" -v mx0="$MAX_T" -v mn0="$MIN_T" -v w0="$WARM_T" -v idle="$IDLE_T" '
    function cost(bk) { return bk * m * nb * (w + mx + 1) + idle + 15 }
    BEGIN {
        mx = mx0; mn = mn0; w = w0; note = ""
        while (cost(b) > r && mx > mn) { mx = (mx - 0.25 > mn) ? mx - 0.25 : mn }
        while (cost(b) > r && w > 0.5) { w = (w - 0.25 > 0.5) ? w - 0.25 : 0.5 }
        while (cost(b) > r && mn > 0.75) { mn = (mn - 0.25 > 0.75) ? mn - 0.25 : 0.75; mx = mn }
        if (mx != mx0) note = note sprintf("max_time_s %.2f -> %.2f; ", mx0, mx)
        if (w != w0) note = note sprintf("warmup_max_s %.2f -> %.2f; ", w0, w)
        if (mn != mn0) note = note sprintf("min_time_s %.2f -> %.2f; ", mn0, mn)
        if (cost(b) > r && b > 1) { b = 1; note = note "Triton rows dropped; " }
        if (cost(b) > r) note = note sprintf("still ~%.0f s over: every point at its minimum; ", cost(b) - r)
        printf "%.2f %.2f %.2f %d %s\n", mx, mn, w, b, (note == "" ? "nothing trimmed" : note)
    }'
}

BASIN_CMD="${BASIN:-}"
if [[ -z "$BASIN_CMD" ]]; then
    if [[ -x "$REPO/target/release/basin" ]]; then BASIN_CMD="$REPO/target/release/basin"; else BASIN_CMD="cargo build --release --features cuda, then target/release/basin"; fi
fi
BACKENDS=$((TRITON ? 2 : 1))

if [[ "$DRY" == 1 ]]; then
    if [[ -n "$GPU" ]]; then
        gpu_line="$GPU (driver $DRIVER, $NGPU GPU(s); GPU 0 is calibrated)"
    else
        gpu_line="none found here ($WHY): a real run stops at once with \"no NVIDIA GPU\""
    fi
    read -r mx mn w b note <<<"$(plan_trim $((BUDGET - SETUP_RESERVE - SIM_RESERVE)) "$BACKENDS")"
    cat <<EOF
calibrate-gpu plan (dry run: nothing is installed, built or measured)
  GPU:        $gpu_line
  budget:     $BUDGET s in all; ~$SETUP_RESERVE s reserved for setup, $SIM_RESERVE s for the simulation
  1. scripts/setup-ort.sh --gpu      onnxruntime-gpu ${ORT_VERSION:-1.31.1} (CUDA 13) -> $CACHE/onnxruntime-gpu/libonnxruntime.so
                                     (+ libonnxruntime_providers_{shared,cuda}.so; CUDA/cuDNN libraries of nvidia-* wheels on LD_LIBRARY_PATH)
  2. scripts/build-models.sh         resnet18 (N x 3 x 224 x 224), bert6 (N x 128 tokens), digits_{tiny,small,medium,large} -> $CACHE/models
                                     (with no venv and all of them present: used as they are, so a host without network can bring them)
  3. basin:                          $BASIN_CMD
  4. Triton rows:                    $( ((TRITON)) && echo "scripts/start-triton.sh --cuda --max-batch-size 64 (ORT's CUDA provider inside each model.py) when the venv has the nvidia-pytriton wheel's tritonserver and onnxruntime-gpu; skipped (with the reason) otherwise" || echo "off (--no-triton)")
  5. basin calibrate $CAL
       ONNX Runtime, CUDA execution provider (device 0), IoBinding; models: $N_MODELS; batch sizes: $(sed -n 's/^batch_sizes *= *\(.*\)/\1/p' "$CAL")
       energy: NVML total-energy counter of GPU 0 (mJ), windows >= 0.25 s, >= min_time_s per point, stop rule over 3 windows;
               power polling only where the counter is missing (flagged in the meter name); idle power over ${IDLE_T} s with the GPU idle
       repetitions for the budget: max_time_s $mx, min_time_s $mn, warmup_max_s $w per point ($note)
       manifest: GPU, driver, CUDA and ONNX Runtime versions, clocks, power limit (NVML)
       -> $OUT/ (cost.csv, devices.csv, quality.csv, points.csv, samples/, manifest.toml, figures)
  6. basin simulate experiments/efficiency-boundary/batched.toml on $OUT/cost.csv (resnet18, onnxruntime, cuda:0)
       -> $CACHE/calibrate-gpu/simulation-$HOST_ID/
EOF
    exit 0
fi

log "GPU: $GPU (driver $DRIVER, $NGPU GPU(s)); output $OUT; budget $BUDGET s"
# --- (2), (3) setup --------------------------------------------------------------------------
ORT_LIB="$("$REPO/scripts/setup-ort.sh" --gpu | tail -n1)"
export BASIN_ORT_LIB="$ORT_LIB"
# A host without network (no venv to build them) can bring the models: with no venv and all of
# cal-gpu.toml's files present they are used as they are; otherwise build-models.sh (a no-op
# when current).
missing="$(sed -n 's/^[a-z0-9_]* *= *"${BASIN_MODELS_DIR}\/\([^"]*\)".*/\1/p' "$CAL" | sort -u | while read -r f; do [[ -s "$CACHE/models/$f" ]] || echo "$f"; done)"
if [[ -n "$missing" || -x "${BASIN_VENV:-$REPO/.venv}/bin/python" ]]; then
    "$REPO/scripts/build-models.sh" >&2
else
    log "models: no venv to build them, all present in $CACHE/models: used as they are"
fi
# CUDA, cuBLAS and cuDNN from nvidia-* wheels (what onnxruntime-gpu's preload_dlls() would load).
for py in "${BASIN_VENV:-$REPO/.venv}/bin/python" python3; do
    command -v "$py" >/dev/null 2>&1 || continue
    dirs="$("$py" -c 'import glob, site, os; print(":".join(sorted({d for s in site.getsitepackages() for d in glob.glob(os.path.join(s, "nvidia", "*", "lib"))})))' 2>/dev/null || true)"
    [[ -n "$dirs" ]] && export LD_LIBRARY_PATH="$dirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
done
# --- (4) basin -------------------------------------------------------------------------------
if [[ -z "${BASIN:-}" ]]; then
    if [[ ! -x "$REPO/target/release/basin" ]]; then
        command -v cargo >/dev/null || die "no basin binary: set BASIN=/path/to/basin (built with --features cuda) or install Rust"
        log "cargo build --release --features cuda"
        (cd "$REPO" && cargo build --release --quiet --features cuda)
    fi
    BASIN="$REPO/target/release/basin"
fi
# --- (5) Triton ------------------------------------------------------------------------------
SETS=(--set "backends.onnxruntime.library=\"$ORT_LIB\"" --set "host_id=\"$HOST_ID\"")
TRITON_SETS=()
TRITON_NOTE="off (--no-triton)"
if ((TRITON)); then
    venv_py="${BASIN_VENV:-$REPO/.venv}/bin/python"
    if ! "$venv_py" -c 'import pathlib, sysconfig, onnxruntime
assert "CUDAExecutionProvider" in onnxruntime.get_available_providers()
assert (pathlib.Path(sysconfig.get_paths()["purelib"]) / "pytriton/tritonserver/bin/tritonserver").is_file()' 2>/dev/null; then
        TRITON=0 TRITON_NOTE="skipped: the venv lacks the nvidia-pytriton wheel's tritonserver or onnxruntime-gpu with the CUDA provider"
    elif "$REPO/scripts/start-triton.sh" --cuda --max-batch-size 64 --http-port 8000 >&2; then
        trap '"$REPO/scripts/stop-triton.sh" >/dev/null 2>&1 || true' EXIT
        TRITON_SETS=(--set 'backends.triton.url="http://127.0.0.1:8000"' --set 'backends.triton.device="cuda:0"' --set 'backends.triton.request_timeout_s=30.0')
        TRITON_NOTE="Triton (--cuda) on 127.0.0.1:8000"
    else
        TRITON=0 TRITON_NOTE="skipped: scripts/start-triton.sh --cuda failed (see .cache/triton/triton.log)"
    fi
fi
log "Triton rows: $TRITON_NOTE"
# --- (6) calibrate, trimmed to the budget ----------------------------------------------------
left=$((BUDGET - (SECONDS - t0) - SIM_RESERVE))
read -r mx mn w b note <<<"$(plan_trim "$left" $((TRITON ? 2 : 1)))"
if ((TRITON)) && ((b == 1)); then
    "$REPO/scripts/stop-triton.sh" >/dev/null 2>&1 || true
    TRITON_SETS=() TRITON_NOTE="dropped to fit the budget"
fi
log "budget: $left s left for the calibration; trimmed: $note"
SETS+=(--set "measure.max_time_s=$mx" --set "measure.min_time_s=$mn" --set "measure.warmup_max_s=$w")
"$BASIN" calibrate "$CAL" --out "$OUT" "${SETS[@]}" ${TRITON_SETS[@]+"${TRITON_SETS[@]}"}
# --- (7) a simulation on the new tables ------------------------------------------------------
SIM="$CACHE/calibrate-gpu/simulation-$HOST_ID"
idle_w="$(awk -F, '$1 == "cuda:0" { print $2 }' "$OUT/devices.csv")"
"$BASIN" simulate "$REPO/experiments/efficiency-boundary/batched.toml" \
    --set "cost_table.path=\"$OUT/cost.csv\"" --set 'device[0].name="cuda:0"' --set "device[0].idle_power_w=${idle_w:-0}" \
    --set 'server[0].backend="onnxruntime"' --set 'server[0].device="cuda:0"' --set 'server[0].max_batch_size=64' \
    --set workload.duration_s=60 --out "$SIM" >&2
log "done in $((SECONDS - t0)) s: $OUT (trimmed: $note; Triton: $TRITON_NOTE); simulation on it: $SIM"
printf '%s\n' "$OUT"
