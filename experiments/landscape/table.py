"""The landscape tables of docs/src/landscapes.md from the figures' JSON (basin landscape).

    python3 experiments/landscape/table.py plots
    python3 experiments/landscape/table.py --start FIG.json   # prints the descent's start X,Y

k x tau0: per workload, the global minimum of energy per request in the feasible region, the
first acceptable basin and the gap between them. The first acceptable basin is where the
decaying threshold gets to from the base files' k = 0.01: starting at the sweep's highest tau0
and lowering it (as the threshold decays) to the first feasible grid point, then descending
(the JSON's `descent`, drawn with --start at that point). batch x instances: the basins of the
IPA family's static configurations.
"""
import glob
import json
import sys

BASE_K = 0.01


def first_acceptable_start(j):
    """The first feasible point at k = BASE_K going down the tau0 axis from its top."""
    column = sorted((p for p in j["points"] if abs(p["x"] - BASE_K) < 1e-12), key=lambda p: -p["y"])
    return next((p for p in column if p["feasible"]), None)


if sys.argv[1:2] == ["--start"]:
    p = first_acceptable_start(json.load(open(sys.argv[2])))
    if p is None:
        sys.exit(f"{sys.argv[2]}: no feasible point at k = {BASE_K}")
    print(f"{p['x']!r},{p['y']!r}")
    sys.exit(0)

d = sys.argv[1] if len(sys.argv) > 1 else "plots"


def ci(v):
    return f" ± {v:.4f}" if v is not None else ""


print("| workload | feasible: accuracy ≥ | basins | global minimum k, τ0 | J/request | accuracy | start k, τ0 | first acceptable basin k, τ0 | J/request | accuracy | gap J/request | gap accuracy |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for path in sorted(glob.glob(f"{d}/landscape-k-tau0-*.json")):
    j = json.load(open(path))
    w = path.rsplit("landscape-k-tau0-", 1)[1][:-5]
    g = j["basins"][0]
    start = first_acceptable_start(j)
    assert j["descent"]["path"][0]["x"] == start["x"] and j["descent"]["path"][0]["y"] == start["y"], f"{path}: drawn with another --start"
    f = j["basins"][start["catchment"]]
    floor = j["where"][0].split(">=")[1].strip()
    row = [w, floor, str(len(j["basins"])), f"{g['x']:.4g}, {g['y']:.3g}", f"{g['z']:.4f}{ci(g['ci95'])}", f"{g['constraint_values']['accuracy'] * 100:.2f}%"]
    row.append(f"{start['x']:.4g}, {start['y']:.3g}")
    dz = f["z"] - g["z"]
    da = (f["constraint_values"]["accuracy"] - g["constraint_values"]["accuracy"]) * 100
    row += [f"{f['x']:.4g}, {f['y']:.3g}", f"{f['z']:.4f}{ci(f['ci95'])}", f"{f['constraint_values']['accuracy'] * 100:.2f}%",
            f"{dz:+.4f} ({dz / g['z'] * 100:+.1f}%)", f"{da:+.2f} points"]
    print("| " + " | ".join(row) + " |")

print()
print("| workload | basins (max batch, instances: J/request, p99 ms) | global minimum |")
print("|---|---|---|")
for path in sorted(glob.glob(f"{d}/landscape-batch-instances-*.json")):
    j = json.load(open(path))
    w = path.rsplit("landscape-batch-instances-", 1)[1][:-5]
    bs = "; ".join(f"({b['x']:g}, {b['y']:g}): {b['z']:.4f}, {b['constraint_values']['latency_ms_p99']:.1f}" for b in j["basins"])
    g = j["global_minimum"]
    print(f"| {w} | {bs} | ({g['x']:g}, {g['y']:g}) |")
