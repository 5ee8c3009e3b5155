#!/usr/bin/env bash
# Build basin's reference ONNX models into ${BASIN_CACHE:-$REPO/.cache}/models/.
#
#   scripts/build-models.sh            # venv (if needed) + models (if not up to date)
#   scripts/build-models.sh --force    # rebuild the models
#
# Sets up the project venv (scripts/setup-python.sh, a no-op when current) and runs
# scripts/build_models.py with it; arguments are passed through (see --help).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${BASIN_VENV:-$REPO/.venv}"
"$REPO/scripts/setup-python.sh" >&2
exec "$VENV/bin/python" "$REPO/scripts/build_models.py" "$@"
