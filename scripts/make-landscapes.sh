#!/usr/bin/env bash
# Regenerates the landscape figures of docs/src/landscapes.md into plots/ (SVG + PNG + JSON):
#   1. the bio controller's k x tau0 sweep on the four IPA workloads with the measured tables
#      (experiments/landscape-k-tau0.toml, ~1.5 min on one core) and the IPA family's static
#      batch x instances sweep (experiments/landscape-batch-instances.toml, ~20 s); --resume keeps
#      finished runs, so a second call only redraws;
#   2. per workload, `basin landscape` of energy per request with the feasible region at that
#      workload's open-loop accuracy minus one point (the open-loop baselines of sweep 1), and the
#      descent from where the decaying threshold first becomes acceptable (k = 0.01 of the base
#      files, the highest feasible tau0: experiments/landscape/table.py --start);
#   3. copies both sweeps' results.parquet and sweep.json to experiments/landscape/results/ and
#      prints the table of experiments/landscape/table.py.
# Usage: scripts/make-landscapes.sh [BASIN_BIN]   (default: target/release/basin, else target/debug/basin)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN="${1:-}"
if [[ -z "$BIN" ]]; then
    if [[ -x target/release/basin ]]; then BIN=target/release/basin; else BIN=target/debug/basin; fi
fi
[[ -x "$BIN" ]] || { echo "make-landscapes: no basin binary at $BIN (cargo build)" >&2; exit 2; }
PY=.venv/bin/python
[[ -x "$PY" ]] || PY=python3
mkdir -p plots experiments/landscape/results
sweep() { # sweep FILE DIR
    if [[ -f "$2/sweep.json" ]]; then resume=--resume; else resume=; fi
    "$BIN" sweep "$1" --out "$2" $resume --quiet --jobs 1
    mkdir -p "experiments/landscape/results/$(basename "$2")"
    cp "$2/results.parquet" "$2/sweep.json" "experiments/landscape/results/$(basename "$2")/"
}
KT=runs/landscape-k-tau0
BI=runs/landscape-batch-instances
sweep experiments/landscape-k-tau0.toml "$KT"
sweep experiments/landscape-batch-instances.toml "$BI"
# The open-loop accuracy of each workload (mean over its baseline seeds) minus one point.
thresholds=$("$PY" - "$KT/results.csv" <<'PYEOF'
import csv, sys
from collections import defaultdict
acc = defaultdict(list)
for r in csv.DictReader(open(sys.argv[1])):
    if r["baseline"] == "true":
        acc[r["workload"]].append(float(r["accuracy"]))
for w, v in sorted(acc.items()):
    print(w, f"{sum(v) / len(v) - 0.01:.6f}")
PYEOF
)
while read -r w min_acc; do
    kt=(landscape "$KT" --x controller.k --y controller.tau0 --z energy_j_per_request --fix workload="$w" --where "accuracy>=$min_acc")
    # First without a start, to find where the decaying threshold becomes acceptable; then drawn from there.
    "$BIN" "${kt[@]}" --out "plots/landscape-k-tau0-$w.svg" >/dev/null
    start=$("$PY" experiments/landscape/table.py --start "plots/landscape-k-tau0-$w.json")
    "$BIN" "${kt[@]}" --start "$start" --out "plots/landscape-k-tau0-$w.png" --out "plots/landscape-k-tau0-$w.svg"
    "$BIN" landscape "$BI" --x server.0.max_batch_size --y server.0.instances --z energy_j_per_request --fix workload="$w" \
        --where "accuracy>=$min_acc" --where "latency_ms_p99<=50" \
        --out "plots/landscape-batch-instances-$w.png" --out "plots/landscape-batch-instances-$w.svg"
done <<< "$thresholds"
"$PY" experiments/landscape/table.py plots
echo "make-landscapes: figures in plots/landscape-*" >&2
