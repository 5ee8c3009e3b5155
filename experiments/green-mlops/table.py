"""Green MLOps ablation table from two recorded runs (basin simulate outputs).

    .venv/bin/python experiments/green-mlops/table.py runs/green-mlops-open_loop runs/green-mlops-bio
"""
import json
import sys

import polars as pl

PAPER = {"green-mlops-open_loop": ("0.50 s", "91.0%", "100%"), "green-mlops-bio": ("0.29 s", "90.5%", "58%")}

print("| run | mean time to answer | mean latency (admitted) | accuracy | admission | energy (J) | J/request | paper: time, accuracy, admission |")
print("|---|---|---|---|---|---|---|---|")
for d in sys.argv[1:]:
    s = json.load(open(f"{d}/summary.json"))
    r = pl.read_parquet(f"{d}/requests.parquet")
    answered = r.filter(pl.col("latency_ms").is_not_null())
    t = answered["latency_ms"].mean() / 1e3
    p = PAPER.get(s["name"], ("", "", ""))
    print(f"| {s['name']} | {t:.3f} s | {s['latency_ms']['mean'] / 1e3:.3f} s | {s['accuracy'] * 100:.1f}% | "
          f"{s['admission_rate'] * 100:.0f}% | {s['energy_j']:.0f}{' (est.)' if s['energy']['estimated'] else ''} | "
          f"{s['energy_j_per_request']:.3f} | {', '.join(p)} |")
