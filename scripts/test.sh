#!/usr/bin/env bash
# The project's test command (README, .ci/run): installs what the tests need, then runs them.
#   scripts/test.sh [extra cargo test args]
# Sets up (idempotent, project-local): the Python venv (.venv), the ONNX Runtime shared library
# from the onnxruntime wheel (.cache/onnxruntime) and the ONNX models (.cache/models). Then:
#   1. the notebook, executed headless with nbclient (it reads a recorded sweep),
#   2. a sharded sweep on a private one-node Slurm (job array + merge == unsharded run),
#   3. cargo test (last, so its summary closes the output).
# BASIN_SKIP_SLURM=1 skips step 2 (it needs root: apt-get install slurm-wlm munge).
set -euo pipefail
cd "$(dirname "$0")/.."
export BASIN_SHARED_DIR="${BASIN_SHARED_DIR:-$(cd .. && pwd)/shared}"
export BASIN_REQUIRE_HW="${BASIN_REQUIRE_HW:-1}"
TARGET="${CARGO_TARGET_DIR:-target}"
t0=$SECONDS
echo "== setup: python venv, ONNX Runtime library, models"
scripts/setup-python.sh >/dev/null
scripts/setup-ort.sh >/dev/null
scripts/build-models.sh >/dev/null
echo "   setup took $((SECONDS - t0)) s"
echo "== build"
cargo build --quiet
BIN="$TARGET/debug/basin"
echo "== notebook (nbclient)"
scripts/run-notebooks.sh "$BIN"
if [[ "${BASIN_SKIP_SLURM:-0}" != 1 ]]; then
    echo "== sharded sweep on Slurm"
    scripts/test-slurm.sh --compare-unsharded "$BIN" experiments/sweep-k-tau0/bench.toml
fi
echo "== cargo test ($((SECONDS - t0)) s so far)"
cargo test "$@"
