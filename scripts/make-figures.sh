#!/usr/bin/env bash
# Regenerates every figure the README shows, into plots/ (SVG + PNG), from recorded outputs:
#   1. the k x tau0 sweep over the four IPA workloads (runs/sweep-k-tau0; --resume keeps
#      finished runs, so a second call only redraws),
#   2. one bio-controller run and its open-loop baseline on the bursty workload, with
#      per-request records (runs/fig-bursty-bio, runs/fig-bursty-open),
#   3. `basin plot` on those outputs.
# Usage: scripts/make-figures.sh [BASIN_BIN]   (default: target/release/basin, else target/debug/basin)
# PLOTS_DIR (default plots) is where the figures go: the notebook test sends them to runs/ so that
# the test command leaves the tracked figures alone.
# Needs .cache/models/quality.csv (scripts/build-models.sh) and the real traces in traces/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN="${1:-}"
if [[ -z "$BIN" ]]; then
    if [[ -x target/release/basin ]]; then BIN=target/release/basin; else BIN=target/debug/basin; fi
fi
[[ -x "$BIN" ]] || { echo "make-figures: no basin binary at $BIN (cargo build --release)" >&2; exit 2; }
P="${PLOTS_DIR:-plots}"
mkdir -p "$P"
SW=runs/sweep-k-tau0
if [[ -f "$SW/sweep.json" ]]; then resume=--resume; else resume=; fi
"$BIN" sweep experiments/sweep-k-tau0.toml --out "$SW" $resume --quiet
"$BIN" pareto "$SW" >/dev/null
"$BIN" plot pareto "$SW" --x energy_j_per_request --y accuracy --width double \
    --out "$P"/pareto-k-tau0.svg --out "$P"/pareto-k-tau0.png
"$BIN" plot pareto "$SW" --x energy_j_per_request --y latency_ms_p99 --width double \
    --out "$P"/pareto-k-tau0-latency.svg --out "$P"/pareto-k-tau0-latency.png
B=experiments/sweep-k-tau0/bursty-bio.toml
"$BIN" simulate "$B" --set output.requests=true --set controller.k=0.001 --set controller.tau0=0.5 --out runs/fig-bursty-bio >/dev/null
"$BIN" simulate "$B" --set output.requests=true --set 'controller={kind="open_loop"}' --out runs/fig-bursty-open >/dev/null
"$BIN" plot timeseries runs/fig-bursty-bio --width double --out "$P"/timeseries-bursty-bio.svg --out "$P"/timeseries-bursty-bio.png
"$BIN" plot cdf runs/fig-bursty-open runs/fig-bursty-bio --out "$P"/latency-cdf-bursty.svg --out "$P"/latency-cdf-bursty.png
"$BIN" plot energy runs/fig-bursty-open runs/fig-bursty-bio --out "$P"/energy-bursty.svg --out "$P"/energy-bursty.png
EB=runs/efficiency-boundary
if [[ -f "$EB/sweep.json" ]]; then resume=--resume; else resume=; fi
"$BIN" sweep experiments/efficiency-boundary.toml --out "$EB" $resume --quiet
"$BIN" plot lines "$EB" --x workload.rate_rps --y energy_j_per_request --x-label "arrival rate (req/s)" --log-x \
    --relative-to local --out "$P"/efficiency-boundary.svg --out "$P"/efficiency-boundary.png
echo "make-figures: figures in $P/" >&2
