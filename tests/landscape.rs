//! `basin landscape` and `basin plot trajectory` end to end on a small sweep generated here
//! (a few seconds): the JSON's basins against an independent computation written in this file
//! from results.csv (seed means, the minimised-over axis, feasibility, brute-force basins and
//! descent), catchments covering every feasible point exactly once, bad input refused with a
//! clear error and nothing written, and the trajectory figures.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_basin");

/// A self-contained base experiment: Poisson arrivals through a batcher whose energy per batch
/// grows with the batch size (so batching and waiting save energy per request and cost latency).
fn base(name: &str) -> String {
    let mut s = format!(
        r#"name = "{name}"
seed = 1
slo_ms = 40
[workload]
rate_rps = 400
duration_s = 8
[[device]]
name = "gpu0"
idle_power_w = 30
[[server]]
name = "s"
kind = "batched"
model = "m"
backend = "sim"
device = "gpu0"
max_batch_size = 8
max_queue_delay_us = 2000
[quality.accuracy]
m = 0.9
"#
    );
    for b in 1..=16 {
        s += &format!(
            "[[cost]]\nmodel = \"m\"\nbackend = \"sim\"\ndevice = \"gpu0\"\nbatch_size = {b}\nlatency_ms = {}\nenergy_j = {}\n",
            1.0 + 0.6 * b as f64,
            0.2 + 0.04 * b as f64
        );
    }
    s
}

fn basin(args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).env_remove("SLURM_ARRAY_TASK_ID").env_remove("JOB_COMPLETION_INDEX").output().unwrap()
}

fn ok(out: std::process::Output) -> String {
    assert!(out.status.success(), "basin failed: {}\n{}", String::from_utf8_lossy(&out.stderr), String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Runs basin expecting failure; returns stderr.
fn fails(args: &[&str]) -> String {
    let out = basin(args);
    assert!(!out.status.success(), "basin {args:?} should have failed:\n{}", String::from_utf8_lossy(&out.stdout));
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!err.contains("panicked"), "a panic instead of an error: {err}");
    err
}

/// Two workloads, a 4 × 6 grid of (max batch size, delay) and two instance counts to
/// minimise over, two seeds: 96 runs of ~3200 requests.
fn sweep(dir: &Path) -> PathBuf {
    std::fs::write(dir.join("a.toml"), base("wa")).unwrap();
    std::fs::write(dir.join("b.toml"), base("wb").replace("rate_rps = 400", "rate_rps = 150")).unwrap();
    std::fs::write(
        dir.join("sweep.toml"),
        r#"
base = ["a.toml", "b.toml"]
seeds = [1, 2]
baseline = true
[axes]
"server.0.max_batch_size" = [1, 2, 4, 8]
"server.0.max_queue_delay_us" = { from = 250, to = 8000, steps = 6, scale = "log" }
"server.0.instances" = [1, 2]
"#,
    )
    .unwrap();
    let out = dir.join("sw");
    ok(basin(&["sweep", dir.join("sweep.toml").to_str().unwrap(), "--out", out.to_str().unwrap(), "--quiet", "--jobs", "2"]));
    out
}

/// results.csv as rows of named cells (the sweep writes no quoted commas in these columns).
fn read_csv(path: &Path) -> Vec<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<String> = lines.next().unwrap().split(',').map(str::to_string).collect();
    lines.map(|l| header.iter().cloned().zip(l.split(',').map(str::to_string)).collect()).collect()
}

/// One grid cell of the independent computation.
#[derive(Debug, Clone)]
struct Expected {
    x: f64,
    y: f64,
    z: f64,
    feasible: bool,
}

/// The landscape of `workload` written from scratch: seed means per (batch, delay, instances),
/// per (batch, delay) the feasible instance count with the least energy (else the least energy),
/// basins by checking every 8-neighbour, and each cell's basin by following descent.
fn independent(rows: &[BTreeMap<String, String>], workload: &str, p99_max: f64) -> (Vec<Expected>, Vec<(f64, f64, usize)>) {
    let num = |r: &BTreeMap<String, String>, c: &str| r[c].parse::<f64>().unwrap();
    let mut sums: BTreeMap<(u64, u64, u64), (f64, f64, usize)> = BTreeMap::new();
    for r in rows.iter().filter(|r| r["workload"] == workload && r["baseline"] == "false") {
        let key = (
            num(r, "server.0.max_batch_size").to_bits(),
            num(r, "server.0.max_queue_delay_us").to_bits(),
            num(r, "server.0.instances").to_bits(),
        );
        let e = sums.entry(key).or_insert((0.0, 0.0, 0));
        e.0 += num(r, "energy_j_per_request");
        e.1 += num(r, "latency_ms_p99");
        e.2 += 1;
    }
    let mut cells: BTreeMap<(u64, u64), (bool, f64)> = BTreeMap::new();
    for ((x, y, _), (z, p99, n)) in sums {
        let (z, feasible) = (z / n as f64, p99 / n as f64 <= p99_max);
        let e = cells.entry((x, y)).or_insert((feasible, z));
        if (feasible && !e.0) || (feasible == e.0 && z < e.1) {
            *e = (feasible, z);
        }
    }
    let mut xs: Vec<f64> = cells.keys().map(|k| f64::from_bits(k.0)).collect();
    let mut ys: Vec<f64> = cells.keys().map(|k| f64::from_bits(k.1)).collect();
    for v in [&mut xs, &mut ys] {
        v.sort_by(f64::total_cmp);
        v.dedup();
    }
    let grid: Vec<Expected> =
        cells.iter().map(|(k, &(feasible, z))| Expected { x: f64::from_bits(k.0), y: f64::from_bits(k.1), z, feasible }).collect();
    let pos = |e: &Expected| (xs.iter().position(|&v| v == e.x).unwrap() as i64, ys.iter().position(|&v| v == e.y).unwrap() as i64);
    let below = |a: &Expected, b: &Expected| {
        let (pa, pb) = (pos(a), pos(b));
        a.z < b.z || (a.z == b.z && (pa.0, pa.1) < (pb.0, pb.1))
    };
    let neighbours = |e: &Expected| -> Vec<usize> {
        let p = pos(e);
        (0..grid.len())
            .filter(|&j| {
                grid[j].feasible && {
                    let q = pos(&grid[j]);
                    q != p && (q.0 - p.0).abs() <= 1 && (q.1 - p.1).abs() <= 1
                }
            })
            .collect()
    };
    let step = |i: usize| -> Option<usize> {
        let n = neighbours(&grid[i]);
        let mut lowest = *n.first()?;
        for &j in &n {
            if below(&grid[j], &grid[lowest]) {
                lowest = j;
            }
        }
        below(&grid[lowest], &grid[i]).then_some(lowest)
    };
    let mut catch: BTreeMap<usize, usize> = BTreeMap::new();
    for i in (0..grid.len()).filter(|&i| grid[i].feasible) {
        let mut c = i;
        while let Some(n) = step(c) {
            c = n;
        }
        *catch.entry(c).or_default() += 1;
    }
    let mut basins: Vec<(f64, f64, usize)> = (0..grid.len())
        .filter(|&i| grid[i].feasible && neighbours(&grid[i]).iter().all(|&j| below(&grid[i], &grid[j])))
        .map(|i| (grid[i].x, grid[i].y, catch[&i]))
        .collect();
    basins.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    (grid, basins)
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()).collect();
    v.sort();
    v
}

#[test]
fn landscape_matches_an_independent_computation_and_refuses_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let sw = sweep(tmp.path());
    let swp = sw.to_str().unwrap();
    let figs = tmp.path().join("figs");
    let png = figs.join("wa.png");
    let svg = figs.join("wa.svg");
    let p99_max = 12.0;
    let where_ = format!("latency_ms_p99<={p99_max}");
    let common = ["landscape", swp, "--x", "server.0.max_batch_size", "--y", "server.0.max_queue_delay_us", "--z", "energy_j_per_request"];
    let mut args: Vec<&str> = common.to_vec();
    args.extend([
        "--fix",
        "workload=wa",
        "--where",
        &where_,
        "--start",
        "1,250",
        "--out",
        png.to_str().unwrap(),
        "--out",
        svg.to_str().unwrap(),
    ]);
    let stdout = ok(basin(&args));
    assert!(stdout.contains("basin 0:"), "{stdout}");
    assert_eq!(files_in(&figs), vec!["wa.json", "wa.png", "wa.svg"]);
    let j: Value = serde_json::from_str(&std::fs::read_to_string(figs.join("wa.json")).unwrap()).unwrap();
    assert_eq!(j["x"], "server.0.max_batch_size");
    assert_eq!(j["z"], "energy_j_per_request");
    assert_eq!(j["x_log"], true, "1, 2, 4, 8 is log-spaced");
    assert_eq!(j["y_log"], true);
    assert_eq!(j["minimised_over"], serde_json::json!(["server.0.instances"]));
    assert!(j["definitions"].as_str().unwrap().contains("(z, x index, y index)"));

    let (grid, expected_basins) = independent(&read_csv(&sw.join("results.csv")), "wa", p99_max);
    let points = j["points"].as_array().unwrap();
    assert_eq!(points.len(), grid.len());
    for e in &grid {
        let p = points
            .iter()
            .find(|p| p["x"].as_f64() == Some(e.x) && p["y"].as_f64() == Some(e.y))
            .unwrap_or_else(|| panic!("no point {e:?}"));
        assert!((p["z"].as_f64().unwrap() - e.z).abs() <= 1e-12 * e.z.abs(), "{p} vs {e:?}");
        assert_eq!(p["feasible"].as_bool(), Some(e.feasible), "{p}");
        assert_eq!(p["seeds"].as_u64(), Some(2));
    }
    let feasible = grid.iter().filter(|e| e.feasible).count();
    assert!(feasible > 0 && feasible < grid.len(), "the constraint should cut the grid: {feasible} of {}", grid.len());
    let mut got: Vec<(f64, f64, usize)> = j["basins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["x"].as_f64().unwrap(), b["y"].as_f64().unwrap(), b["catchment"].as_u64().unwrap() as usize))
        .collect();
    got.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    assert_eq!(got, expected_basins);
    // Catchments cover every feasible point exactly once, and no infeasible one.
    assert_eq!(got.iter().map(|b| b.2).sum::<usize>(), feasible);
    let nb = got.len();
    for p in points {
        match p["catchment"].as_u64() {
            Some(k) => assert!(p["feasible"] == true && (k as usize) < nb, "{p}"),
            None => assert_eq!(p["feasible"], false, "{p}"),
        }
    }
    let per_basin: Vec<usize> = (0..nb).map(|k| points.iter().filter(|p| p["catchment"].as_u64() == Some(k as u64)).count()).collect();
    let listed: Vec<usize> = j["basins"].as_array().unwrap().iter().map(|b| b["catchment"].as_u64().unwrap() as usize).collect();
    assert_eq!(per_basin, listed);
    // The global minimum is the lowest feasible point and basin 0.
    let min = grid.iter().filter(|e| e.feasible).min_by(|a, b| a.z.total_cmp(&b.z)).unwrap();
    assert_eq!((j["global_minimum"]["x"].as_f64(), j["global_minimum"]["y"].as_f64()), (Some(min.x), Some(min.y)));
    assert_eq!(j["basins"][0]["x"], j["global_minimum"]["x"]);
    // The descent starts at the requested point and ends at a basin.
    let path = j["descent"]["path"].as_array().unwrap();
    assert_eq!((path[0]["x"].as_f64(), path[0]["y"].as_f64()), (Some(1.0), Some(250.0)));
    if let Some(k) = j["descent"]["basin"].as_u64() {
        let end = path.last().unwrap();
        assert_eq!((&end["x"], &end["y"]), (&j["basins"][k as usize]["x"], &j["basins"][k as usize]["y"]));
    }
    let svg_text = std::fs::read_to_string(&svg).unwrap();
    assert!(svg_text.contains("catchments"), "the SVG lacks its catchment panel");
    assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));

    // Bad input: a clear error, a non-zero exit and nothing written.
    let bad = tmp.path().join("bad");
    std::fs::create_dir(&bad).unwrap();
    let out = bad.join("f.png");
    let run_bad = |extra: &[&str], x: &str, z: &str| -> String {
        let mut a = vec!["landscape", swp, "--x", x, "--y", "server.0.max_queue_delay_us", "--z", z, "--out", out.to_str().unwrap()];
        a.extend_from_slice(extra);
        let e = fails(&a);
        assert!(files_in(&bad).is_empty(), "output left after an error: {:?}", files_in(&bad));
        e
    };
    let e = run_bad(&["--fix", "workload=wa"], "server.0.nope", "energy_j_per_request");
    assert!(e.contains("no column `server.0.nope`") && e.contains("server.0.max_batch_size") && e.contains("energy_j_per_request"), "{e}");
    let e = run_bad(&["--fix", "workload=wa"], "server.0.max_batch_size", "joules");
    assert!(e.contains("no column `joules`") && e.contains("latency_ms_p99"), "{e}");
    let e = run_bad(&["--fix", "workload=wa", "--fix", "server.0.max_batch_size=4"], "server.0.max_batch_size", "energy_j_per_request");
    assert!(e.contains("axis `server.0.max_batch_size` has one value (4)"), "{e}");
    let e = run_bad(&["--fix", "workload=wa", "--where", "accuracy>>0.9"], "server.0.max_batch_size", "energy_j_per_request");
    assert!(e.contains("--where \"accuracy>>0.9\"") && e.contains("not a number"), "{e}");
    let e = run_bad(&["--fix", "workload=wa", "--where", "accuracy=>0.9"], "server.0.max_batch_size", "energy_j_per_request");
    assert!(e.contains("`accuracy=` is not a column name"), "{e}");
    let e = run_bad(&["--fix", "workload=wa", "--where", "accuracy 0.9"], "server.0.max_batch_size", "energy_j_per_request");
    assert!(e.contains("no comparison operator"), "{e}");
    let e = run_bad(&["--fix", "workload=wa", "--where", "accuracy>=0.95"], "server.0.max_batch_size", "energy_j_per_request");
    assert!(e.contains("excludes every grid point"), "{e}");
    let e = run_bad(&["--fix", "workload=wa", "--where", "watts<=3"], "server.0.max_batch_size", "energy_j_per_request");
    assert!(e.contains("no column `watts`"), "{e}");
    let e = run_bad(&[], "server.0.max_batch_size", "energy_j_per_request");
    assert!(e.contains("2 workloads (wa, wb)") && e.contains("--fix workload=NAME"), "{e}");
    let e = run_bad(&["--fix", "workload=nowhere"], "server.0.max_batch_size", "energy_j_per_request");
    assert!(e.contains("no sweep rows left"), "{e}");
    let e =
        run_bad(&["--fix", "workload=wa", "--out", bad.join("f.pdf").to_str().unwrap()], "server.0.max_batch_size", "energy_j_per_request");
    assert!(e.contains("unsupported figure format"), "{e}");

    // --maximize flips the order: the most energy per request is the global "minimum".
    let max_fig = figs.join("max.svg");
    let mut args: Vec<&str> = common.to_vec();
    args.extend(["--fix", "workload=wb", "--maximize", "--out", max_fig.to_str().unwrap()]);
    ok(basin(&args));
    let m: Value = serde_json::from_str(&std::fs::read_to_string(figs.join("max.json")).unwrap()).unwrap();
    let top = m["points"].as_array().unwrap().iter().map(|p| p["z"].as_f64().unwrap()).fold(f64::NEG_INFINITY, f64::max);
    assert_eq!(m["global_minimum"]["z"].as_f64(), Some(top));
    assert_eq!(m["sense"], "max");

    // Trajectories: a bio-controller run with batch records, then the same run on the landscape.
    let run = tmp.path().join("bio-run");
    // The bio controller skips requests to a cascade's early-exit model.
    let quality = format!("{}/calibration/vm-amd-epyc/quality.csv", env!("CARGO_MANIFEST_DIR"));
    let cascade = base("wa").replace("\"m\"", "\"digits_large\"").replace(
        "[quality.accuracy]\nm = 0.9\n",
        &format!("[early_exit]\nmodel = \"digits_tiny\"\nbackend = \"sim\"\ndevice = \"gpu0\"\n[quality]\npath = \"{quality}\"\n"),
    ) + "[[cost]]\nmodel = \"digits_tiny\"\nbackend = \"sim\"\ndevice = \"gpu0\"\nbatch_size = 1\nlatency_ms = 0.2\nenergy_j = 0.01\n";
    std::fs::write(tmp.path().join("cascade.toml"), cascade).unwrap();
    ok(basin(&[
        "simulate",
        tmp.path().join("cascade.toml").to_str().unwrap(),
        "--set",
        "controller={kind=\"bio_threshold\", k=0.05, tau0=0.6}",
        "--set",
        "output.batches=true",
        "--set",
        "server.0.max_batch_size=4",
        "--out",
        run.to_str().unwrap(),
    ]));
    let traj = figs.join("traj.svg");
    ok(basin(&["plot", "trajectory", run.to_str().unwrap(), "--out", traj.to_str().unwrap()]));
    let t = std::fs::read_to_string(&traj).unwrap();
    for label in ["threshold τ(t)", "energy per request (J)", "admission rate", "mean batch size", "instances in use"] {
        assert!(t.contains(label), "trajectory figure lacks {label:?}");
    }
    let on = figs.join("on.svg");
    ok(basin(&[
        "plot",
        "trajectory",
        run.to_str().unwrap(),
        "--on",
        figs.join("wa.json").to_str().unwrap(),
        "--out",
        on.to_str().unwrap(),
    ]));
    assert!(std::fs::read_to_string(&on).unwrap().contains("runs"), "the landscape lacks the runs' legend entry");
    // A landscape over an axis the run does not have: a clear error.
    let mut other = j.clone();
    other["x"] = Value::from("server.0.warp");
    let other_path = tmp.path().join("other.json");
    std::fs::write(&other_path, other.to_string()).unwrap();
    let e = fails(&[
        "plot",
        "trajectory",
        run.to_str().unwrap(),
        "--on",
        other_path.to_str().unwrap(),
        "--out",
        figs.join("x.svg").to_str().unwrap(),
    ]);
    assert!(e.contains("no numeric parameter `server.0.warp`"), "{e}");
}
