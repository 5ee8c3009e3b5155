#!/usr/bin/env python3
"""Markdown table of the replay validations written by scripts/validate-replay.sh.

    python3 scripts/validation_table.py OUT_DIR     (OUT_DIR/<workload>-<controller>/report/validation.json)
"""
import json, sys
from pathlib import Path

out = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/validate-replay")
cols = [("latency_mean_ms", "mean"), ("latency_p50_ms", "p50"), ("latency_p95_ms", "p95"), ("latency_p99_ms", "p99"),
        ("throughput_rps", "thr"), ("mean_batch_size", "batch"), ("admission_rate", "adm"), ("accuracy", "acc"), ("energy_j", "energy")]
print("| workload | controller | util (sim) | " + " | ".join(c[1] for c in cols) + " | sched err p99 ms |")
print("|---|---|---|" + "---|" * len(cols) + "---|")
absolute = []
worst = {}
for w in ["steady_low", "bursty", "fluctuating", "steady_high"]:
    for c in ["open_loop", "bio_threshold"]:
        d = out / f"{w}-{c}"
        f = d / "report" / "validation.json"
        if not f.exists():
            continue
        v = json.loads(f.read_text())
        m = {x["metric"]: x for x in v["metrics"]}
        sim = json.loads((d / "sim" / "summary.json").read_text())
        rep = json.loads((d / "replay" / "summary.json").read_text())
        # the simulated instance's busy fraction: Σ batch service / duration (batches.parquet)
        util = ""
        try:
            import polars as pl
            b = pl.read_parquet(d / "sim" / "batches.parquet")
            util = f"{float((b['end_s'] - b['start_s']).sum()) / sim['duration_s'] * 100:.0f}%"
        except Exception:
            pass
        cells = []
        for k, _ in cols:
            x = m.get(k)
            if x is None:
                cells.append("")
                continue
            mark = "" if x["pass"] is None else (" ✓" if x["pass"] else " ✗")
            cells.append(f"{x['rel_error'] * 100:+.1f}%{mark}")
            if x["target"] is not None:
                worst[k] = max(worst.get(k, 0.0), abs(x["rel_error"]))
        se = rep.get("schedule_error_ms", {}).get("p99")
        print(f"| {w} | {c} | {util} | " + " | ".join(cells) + f" | {se:.2f} |")
        g = lambda k: (m[k]["sim"], m[k]["replay"])
        absolute.append(f"{w} {c}: mean {g('latency_mean_ms')[0]:.2f}/{g('latency_mean_ms')[1]:.2f} ms, p99 {g('latency_p99_ms')[0]:.2f}/{g('latency_p99_ms')[1]:.2f} ms, "
                        f"batch {g('mean_batch_size')[0]:.2f}/{g('mean_batch_size')[1]:.2f}, energy {g('energy_j')[0]:.1f}/{g('energy_j')[1]:.1f} J")
print()
print("absolute (sim / replay):")
for a in absolute:
    print("- " + a)
print()
print("worst |error| per targeted metric: " + ", ".join(f"{k} {v * 100:.1f}%" for k, v in worst.items()))
