#!/usr/bin/env python3
"""experiments/replay/VALIDATION.md from the validation.json files scripts/validate-replay.sh wrote.

    python3 scripts/validation_report.py OUT_DIR [LATER_DIR...] > experiments/replay/VALIDATION.md

OUT_DIR/<level>/<workload>-<controller>/validation.json (basin validate --level ...); a run in a
later directory (a later round) replaces the same run in an earlier one. Every number in the
output comes from those files; nothing is typed by hand.
"""
import json
import sys
from pathlib import Path

LEVELS = [
    ("controlled", "Level 1 — controlled service"),
    ("conditioned", "Level 2 — trace-conditioned"),
    ("predicted", "Level 3 — prediction"),
]
WORKLOADS = ["steady_low", "bursty", "fluctuating", "steady_high"]
CONTROLLERS = ["open_loop", "bio_threshold"]
COLS = [("latency_mean_ms", "mean"), ("latency_p99_ms", "p99"), ("mean_batch_size", "batch"),
        ("throughput_rps", "thr"), ("energy_j", "energy")]


def pct(x):
    return "–" if x is None else f"{x * 100:+.1f}%"


def cell(m, level):
    """error, and whether the simulation is inside the replays' band (✓) or not (✗)."""
    if m is None or m.get("rel_error") is None:
        return "–"
    band = m.get("within_band")
    mark = "" if band is None else (" ∈" if band else " ∉")
    return f"{pct(m['rel_error'])}{mark} (cv {m['replay_cv'] * 100:.1f}%)" if m.get("replay_cv") is not None else pct(m["rel_error"])


def mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def ms(x):
    return "–" if x is None else f"{x:.3f}"


def inputs_table(rows):
    """What levels 1-2 took from each run (means over its replays), per remote server."""
    print("Taken from the runs (means over the replays; transport from Triton's trace, p99 as HDR quantiles):\n")
    print("| workload | controller | server | traced requests | to server mean / p99 ms | from server mean / p99 ms "
          "| dispatch lag ms | per-execution overhead ms (statistics) | traced batches' overhead mean / p99 ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for w, c, v in rows:
        inputs = v.get("inputs") or {}
        for server in sorted({k.split(".")[0] for k in inputs}):
            tr = [t for t in inputs.get(f"{server}.traced_transport") or [] if t]
            way = lambda d, k: mean([t[d][k] for t in tr])
            traced = mean([t["traced"] for t in tr])
            ov = [t for t in inputs.get(f"{server}.traced_overhead") or [] if t]
            print(f"| {w} | {c} | {server} | {'–' if traced is None else f'{traced:.0f}'} "
                  f"| {ms(way('to_server_ms', 'mean'))} / {ms(way('to_server_ms', 'p99'))} "
                  f"| {ms(way('from_server_ms', 'mean'))} / {ms(way('from_server_ms', 'p99'))} "
                  f"| {ms(mean(inputs.get(f'{server}.dispatch_lag_ms') or []))} "
                  f"| {ms(mean(inputs.get(f'{server}.execution_overhead_ms') or []))} "
                  f"| {ms(mean([t['mean_ms'] for t in ov]))} / {ms(mean([t['p99_ms'] for t in ov]))} |")
    print()


def host_pass_table(rows):
    """Level 3: what each replay's host pass found against the committed load profile."""
    rows = [(w, c, v, k[: -len(".host_pass")], p) for w, c, v in rows
            for k, p in sorted(v.get("inputs", {}).items()) if k.endswith(".host_pass")]
    if not rows:
        return
    print("Host passes before the replays (service and energy: the pass's factor over the profile's at the "
          "pass's rate, one per replay; overhead: the pass's minus the profile's):\n")
    print("| workload | controller | server | rate req/s | service × | energy × | overhead shift ms | admission error |")
    print("|---|---|---|---|---|---|---|---|")
    for w, c, v, server, passes in rows:
        service = ", ".join(f"{p['service_factor'] / p['profile_service_factor']:.2f}" for p in passes)
        energy = ", ".join(f"{p['energy_factor'] / p['profile_energy_factor']:.2f}" for p in passes)
        shift = ", ".join(f"{p['overhead_ms'] - p['profile_overhead_ms']:+.2f}" for p in passes)
        adm = v["metrics"].get("admission_rate", {}).get("rel_error")
        rate = mean([p["rps"] for p in passes])
        print(f"| {w} | {c} | {server} | {rate:.1f} | {service} | {energy} | {shift} | {pct(adm)} |")
    print()


def main():
    # several rounds: a run in a later directory replaces the same run in an earlier one
    outs = [Path(a) for a in sys.argv[1:]] or [Path("runs/validate-replay")]
    runs = {}
    for out in outs:
        for lv, _ in LEVELS:
            for w in WORKLOADS + ["own"]:
                for c in CONTROLLERS:
                    f = out / lv / f"{w}-{c}" / "validation.json"
                    if f.exists():
                        runs[(lv, w, c)] = json.loads(f.read_text())
    if not runs:
        sys.exit(f"validation_report: no validation.json under {' or '.join(map(str, outs))}/<level>/<workload>-<controller>/")
    any_run = next(iter(runs.values()))
    dates = sorted(v["date"] for v in runs.values())
    print("# Simulation vs replay, in levels (Path B: Triton on loopback)\n")
    print(f"Generated by `scripts/validate-replay.sh` and `scripts/validation_report.py` from the "
          f"`validation.json` of each run; host `{any_run['host']}`, {dates[0]} – {dates[-1]}.\n")
    print("Each cell: the simulation's error against the replays' mean, ∈/∉ the replays' 95% band, and the "
          "replays' coefficient of variation. Drift: the worst replay's host speed drift (max/min of the "
          "speed probe's rolling median); **unreliable** marks a comparison whose host drifted by more "
          "than 10%. What each level takes from the real run (and so does not validate) is in its heading.\n")
    for lv, title in LEVELS:
        rows = [(w, c, runs[(lv, w, c)]) for w in WORKLOADS + ["own"] for c in CONTROLLERS if (lv, w, c) in runs]
        if not rows:
            continue
        print(f"## {title}\n")
        print(f"Taken from the run: {rows[0][2]['taken_from_run']}.\n")
        names = ["workload", "controller", "util", "repeats", "drift"] + [n for _, n in COLS]
        if lv == "controlled":
            names += ["avg \\|err\\| (4 targets)", "targets met"]
        elif lv == "predicted":
            names += ["TOST ±10% mean / energy", "KS"]
        print("| " + " | ".join(names) + " |")
        print("|" + "---|" * len(names))
        for w, c, v in rows:
            m = v["metrics"]
            util = "–" if v.get("sim_utilisation") is None else f"{v['sim_utilisation'] * 100:.0f}%"
            drift = "–" if v.get("host_drift") is None else f"{v['host_drift']:.2f}" + (" **unreliable**" if v.get("unreliable") else "")
            cells = [cell(m.get(k), lv) for k, _ in COLS]
            extra = ""
            if lv == "controlled":
                t = v.get("targets") or {}
                avg = t.get("mean_abs_error")
                extra = f" | {'–' if avg is None else f'{avg * 100:.2f}%'} | {'yes' if t.get('all_met') else 'no'}"
            elif lv == "predicted":
                tm, te = m["latency_mean_ms"].get("tost_10"), m["energy_j"].get("tost_10")
                ks = m["latency_mean_ms"].get("ks")
                extra = f" | {'yes' if tm else 'no'} / {'yes' if te else 'no'} | {'–' if ks is None else f'{ks:.3f}'}"
            print(f"| {w} | {c} | {util} | {v['repeats']} | {drift} | " + " | ".join(cells) + extra + " |")
        print()
        if lv in ("controlled", "conditioned"):
            inputs_table(rows)
        if lv == "controlled":
            met = sum(1 for _, _, v in rows if (v.get("targets") or {}).get("all_met"))
            print(f"Level-1 targets (|error| mean ≤ 2%, p99 ≤ 5%, batch ≤ 2%, throughput ≤ 0.5%, average ≤ 1%) "
                  f"met in {met} of {len(rows)} runs.\n")
        if lv == "predicted":
            host_pass_table(rows)
            four = [v for w, _, v in rows if w != "own"]
            ok = sum(1 for v in four
                     if all((v["metrics"][k].get("within_band") or abs(v["metrics"][k]["rel_error"] or 1) <= 0.10)
                            for k in ("latency_mean_ms", "energy_j")))
            print(f"Simulation inside the replays' 95% band or within 10%, for both mean latency and energy: "
                  f"{ok} of the {len(four)} workload × controller runs (target: at least 7 of 8).\n")
        print("Absolute values (sim / replay mean): " + "; ".join(
            f"{w} {c}: mean {v['metrics']['latency_mean_ms']['sim']:.2f}/{v['metrics']['latency_mean_ms']['replay_mean']:.2f} ms, "
            f"p99 {v['metrics']['latency_p99_ms']['sim']:.2f}/{v['metrics']['latency_p99_ms']['replay_mean']:.2f} ms, "
            f"batch {v['metrics']['mean_batch_size']['sim']:.3f}/{v['metrics']['mean_batch_size']['replay_mean']:.3f}"
            for w, c, v in rows if v["metrics"]["latency_mean_ms"].get("sim") is not None) + "\n")


if __name__ == "__main__":
    main()
