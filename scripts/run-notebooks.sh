#!/usr/bin/env bash
# Runs every notebook in notebooks/ headless (nbclient, no Jupyter server) with the project venv
# (.venv, made by scripts/setup-python.sh when missing). The notebooks read a sweep's recorded
# outputs; when runs/sweep-k-tau0 or runs/fig-bursty-bio are missing, scripts/make-figures.sh
# produces them first. Executed copies go to runs/notebooks/. Exits non-zero on any cell error.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[[ -x .venv/bin/python ]] || scripts/setup-python.sh
if [[ ! -f runs/sweep-k-tau0/results.parquet || ! -f runs/fig-bursty-bio/timeseries.parquet ]]; then
    PLOTS_DIR=runs/plots scripts/make-figures.sh "$@"
fi
export BASIN_REPO="$PWD"
.venv/bin/python scripts/run_notebooks.py notebooks/*.ipynb --out runs/notebooks
