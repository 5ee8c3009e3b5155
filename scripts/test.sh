#!/usr/bin/env bash
# The project's test command (README, .ci/run): installs what the tests need, then runs them.
#   scripts/test.sh [extra cargo test args]
# Sets up (idempotent, project-local): the Python venv (.venv), the ONNX Runtime shared library
# from the onnxruntime wheel (.cache/onnxruntime) and the ONNX models (.cache/models). Then,
# against REAL components on this machine:
#   1. a real Triton server on loopback (the wheel's tritonserver on a generated model
#      repository), a CI calibration of both backends at batch
#      sizes 1-16 (basin calibrate calibration/cal-ci.toml), and a simulation on those tables;
#   2. the replay fault test (kills a real Triton mid-replay), a load profile and a short level-1
#      validation (basin validate --level controlled, which starts its own Triton);
#      basin serve's Path B test (kills and restarts a real Triton under a live gateway);
#   3. the notebook, executed headless with nbclient (it reads a recorded sweep);
#   4. a sharded sweep on a private one-node Slurm (job array + merge == unsharded run);
#   0. cargo fmt --check and cargo clippy --all-targets -- -D warnings (before anything runs);
#   5. cargo test (last, so its summary closes the output), with BASIN_REQUIRE_HW=1 so tests
#      that need ONNX Runtime or the models fail instead of skipping.
# BASIN_SKIP_SLURM=1 skips step 4 (it needs root: apt-get install slurm-wlm munge).
set -euo pipefail
cd "$(dirname "$0")/.."
export BASIN_REQUIRE_HW="${BASIN_REQUIRE_HW:-1}"
TARGET="${CARGO_TARGET_DIR:-target}"
OUT="$(mktemp -d "${TMPDIR:-/tmp}/basin-test.XXXXXX")"
t0=$SECONDS
stamp() { echo "   ($((SECONDS - t0)) s)"; }
cleanup() { scripts/stop-triton.sh >/dev/null 2>&1 || true; rm -rf "$OUT"; }
trap cleanup EXIT

echo "== setup: python venv, ONNX Runtime library, models"
scripts/setup-python.sh >/dev/null
scripts/setup-ort.sh >/dev/null
scripts/build-models.sh >/dev/null
stamp
echo "== format and lint (cargo fmt --check; clippy on every target, warnings are errors)"
cargo fmt --check
cargo clippy --quiet --all-targets -- -D warnings
stamp
echo "== build"
cargo build --quiet
BIN="$TARGET/debug/basin"
stamp

echo "== real Triton on loopback, CI calibration of both backends, simulation on the tables"
scripts/start-triton.sh --models digits_tiny digits_small digits_medium digits_large resnet18 >/dev/null
"$BIN" calibrate calibration/cal-ci.toml --out "$OUT/calibration" --quiet
test -s "$OUT/calibration/cost.csv"
grep -q ',triton,' "$OUT/calibration/cost.csv"
grep -q ',onnxruntime,' "$OUT/calibration/cost.csv"
"$BIN" simulate experiments/steady_low-batched.toml --set "cost_table.path=\"$OUT/calibration/cost.csv\"" \
    --set "quality.path=\"$OUT/calibration/quality.csv\"" --set workload.duration_s=120 --out "$OUT/sim-on-ci-tables"
scripts/stop-triton.sh >/dev/null
stamp

echo "== replay: fault test (Triton killed mid-run) and a short real replay + validation"
BASIN="$BIN" TRITON_PORT=8500 scripts/test-replay-faults.sh
echo "== serve: Path B through a real Triton, Triton killed and restarted mid-run"
BASIN="$BIN" TRITON_PORT=8820 SERVE_PORT=8812 scripts/test-serve-triton.sh
scripts/start-triton.sh --models digits_large --max-batch-size 8 --max-queue-delay-us 2000 --instances 1 \
    --ort-threads 1 --http-port 8600 --grpc-port 8601 --metrics-port 8602 >/dev/null
"$BIN" load-profile experiments/replay/steady_low.toml --rates 50,200 --duration-s 3 --warmup-s 1 --gateway-rates 100 \
    --set 'replay.triton_url="http://127.0.0.1:8600"' --out "$OUT/load-profile" >/dev/null
grep -q '^rps,service_factor,overhead_ms,energy_factor' "$OUT/load-profile/load.csv"
"$BIN" simulate experiments/replay/steady_low.toml --set "server[0].load_profile=\"$OUT/load-profile/load.csv\"" \
    --set workload.duration_s=60 --out "$OUT/sim-on-load-profile" >/dev/null
scripts/stop-triton.sh >/dev/null
# validation level 1 (controlled service) of one workload, 2 short replays, a loose check; basin
# starts and stops the Triton it needs (controlled models) itself
"$BIN" validate --experiment experiments/replay/steady_low.toml --level controlled --repeats 2 --time-scale 15 \
    --duration-s 8 --triton-port 8650 --out "$OUT/validate" >/dev/null
.venv/bin/python - "$OUT/validate/validation.json" <<'PY'
import json, sys
v = json.load(open(sys.argv[1]))
loose = {"throughput_rps": 0.05, "mean_batch_size": 0.25, "latency_mean_ms": 0.5}
bad = {k: v["metrics"][k]["rel_error"] for k, tol in loose.items() if not abs(v["metrics"][k]["rel_error"]) <= tol}
assert v["level"] == "controlled" and v["repeats"] == 2 and "host_drift" in v, v
assert not bad, f"level-1 validation off by more than the loose CI bounds: {bad}"
PY
stamp

echo "== notebook (nbclient)"
scripts/run-notebooks.sh "$BIN"
stamp
if [[ "${BASIN_SKIP_SLURM:-0}" != 1 ]]; then
    echo "== sharded sweep on Slurm"
    scripts/test-slurm.sh --compare-unsharded "$BIN" experiments/sweep-k-tau0/bench.toml
    stamp
fi
echo "== plain CSVs written above (polars defaults) and the docs' relative links"
find "$OUT" -name '*.csv' -print0 | xargs -0 -r .venv/bin/python -c 'import polars, sys
for p in sys.argv[1:]: polars.read_csv(p)'
scripts/check-links.py
if command -v mdbook >/dev/null; then mdbook build docs >/dev/null; fi   # optional: mdbook is not installed by the project
stamp
echo "== cargo test"
cargo test "$@"
