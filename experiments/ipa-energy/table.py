"""The IPA energy study table from a recorded sweep (mean over seeds).

    .venv/bin/python experiments/ipa-energy/table.py runs/ipa-energy
"""
import re
import sys

import polars as pl

d = sys.argv[1] if len(sys.argv) > 1 else "runs/ipa-energy"
df = pl.read_parquet(f"{d}/results.parquet")
df = df.with_columns(pl.col("controller").map_elements(lambda s: re.search(r'kind = "([a-z_0-9]+)"', s).group(1), return_dtype=pl.String).alias("kind"))
agg = (df.group_by(["workload", "kind"]).agg(
    (pl.col("energy_j").mean() / 1e3).alias("energy_kj"),
    pl.col("accuracy").mean(),
    pl.col("slo_violation_rate").mean(),
    pl.col("latency_ms_p99").mean(),
    pl.col("mean_batch_size").mean(),
    pl.col("energy_estimated").all(),
).sort(["workload", "kind"]))
print("| workload | controller | energy (kJ, est.) | accuracy | SLO violations | p99 (ms) | mean batch |")
print("|---|---|---|---|---|---|---|")
for r in agg.iter_rows(named=True):
    print(f"| {r['workload']} | {r['kind']} | {r['energy_kj']:.2f} | {r['accuracy'] * 100:.2f}% | {r['slo_violation_rate'] * 100:.2f}% | {r['latency_ms_p99']:.1f} | {r['mean_batch_size']:.2f} |")
