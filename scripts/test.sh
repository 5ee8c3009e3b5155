#!/usr/bin/env bash
# The project's test command (README, .ci/run): installs what the tests need, then runs them.
#   scripts/test.sh [extra cargo test args]
# What it sets up (idempotent, project-local): the Python venv (.venv), the ONNX Runtime shared
# library from the onnxruntime wheel (.cache/onnxruntime), the ONNX models (.cache/models).
set -euo pipefail
cd "$(dirname "$0")/.."
export BASIN_SHARED_DIR="${BASIN_SHARED_DIR:-$(cd .. && pwd)/shared}"
t0=$SECONDS
echo "== setup (python venv, ONNX Runtime library, models)"
scripts/setup-python.sh >/dev/null
scripts/setup-ort.sh >/dev/null
scripts/build-models.sh >/dev/null
echo "   setup took $((SECONDS - t0)) s"
echo "== cargo test"
cargo test "$@"
echo "== done in $((SECONDS - t0)) s"
