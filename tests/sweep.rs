//! Sweeps end to end: design expansion, bad sweep files, determinism across --jobs, a real
//! sweep process killed and resumed, shards merged (and merge refusing missing or duplicate
//! runs), `basin pareto`, and every figure kind from a small recorded run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use basin::sweep::{Axis, Method, SweepSpec, axis_values};

const BIN: &str = env!("CARGO_BIN_EXE_basin");

/// A self-contained base experiment (no input files): a constant-rate Poisson workload through
/// a batcher with inline costs and per-model accuracy.
fn base(rate: f64, duration_s: f64, name: &str) -> String {
    let mut s = format!(
        r#"name = "{name}"
seed = 1
slo_ms = 40
[workload]
rate_rps = {rate}
duration_s = {duration_s}
[[device]]
name = "gpu0"
idle_power_w = 50
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
[output]
requests = true
"#
    );
    for b in 1..=16 {
        s += &format!(
            "[[cost]]\nmodel = \"m\"\nbackend = \"sim\"\ndevice = \"gpu0\"\nbatch_size = {b}\nlatency_ms = {}\nenergy_j = {}\n",
            1.0 + 0.5 * b as f64,
            0.1 + 0.05 * b as f64
        );
    }
    s
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn small_sweep(dir: &Path) -> PathBuf {
    write(dir, "a.toml", &base(300.0, 20.0, "wa"));
    write(dir, "b.toml", &base(600.0, 20.0, "wb"));
    write(
        dir,
        "sweep.toml",
        r#"
base = ["a.toml", "b.toml"]
seeds = [1, 2, 3]
[axes]
"server.0.max_queue_delay_us" = [500, 2000, 8000]
"server.0.max_batch_size" = { from = 2, to = 8, steps = 3 }
"#,
    )
}

fn spec(text: &str) -> Result<SweepSpec, String> {
    SweepSpec::from_table(&text.parse::<toml::Table>().unwrap()).map_err(|e| e.to_string())
}

fn basin(args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).env_remove("SLURM_ARRAY_TASK_ID").env_remove("JOB_COMPLETION_INDEX").output().unwrap()
}

fn ok(out: std::process::Output) -> String {
    assert!(out.status.success(), "basin failed: {}\n{}", String::from_utf8_lossy(&out.stderr), String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn same_results(a: &Path, b: &Path) {
    for f in ["results.csv", "results.parquet"] {
        let x = std::fs::read(a.join(f)).unwrap();
        let y = std::fs::read(b.join(f)).unwrap();
        assert!(x == y, "{f} differs between {} and {}", a.display(), b.display());
    }
}

fn csv_rows(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("results.csv")).unwrap().lines().map(str::to_string).collect()
}

#[test]
fn grid_axes_expand_lists_linear_and_log_ranges() {
    let s = spec(
        r#"
base = "x.toml"
seeds = [3, 1]
[axes]
"a" = ["p", "q"]
"b" = { from = 0.5, to = 1.0, steps = 6 }
"c" = { from = 0.001, to = 0.1, steps = 3, scale = "log" }
"d" = { from = 1, to = 16, steps = 4 }
"#,
    )
    .unwrap();
    let vals = |i: usize| axis_values(&s.axes[i].1);
    assert_eq!(vals(1).iter().map(|v| v.as_float().unwrap()).collect::<Vec<_>>(), vec![0.5, 0.6, 0.7, 0.8, 0.9, 1.0]);
    let c: Vec<f64> = vals(2).iter().map(|v| v.as_float().unwrap()).collect();
    assert_eq!(c[0], 0.001);
    assert!((c[1] - 0.01).abs() < 1e-12);
    assert_eq!(c[2], 0.1);
    // integer ends give integers
    assert_eq!(vals(3).iter().map(|v| v.as_integer().unwrap()).collect::<Vec<_>>(), vec![1, 6, 11, 16]);
    let pts = s.points();
    assert_eq!(pts.len(), 2 * 6 * 3 * 4);
    // every combination exactly once, last axis fastest
    let mut keys: Vec<String> = pts.iter().map(|p| format!("{:?}", p.values)).collect();
    assert_eq!(pts[0].values[3].1.as_integer(), Some(1));
    assert_eq!(pts[1].values[3].1.as_integer(), Some(6));
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), pts.len());
    let runs = s.runs(pts.len());
    assert_eq!(runs.len(), pts.len() * 2);
    for (i, r) in runs.iter().enumerate() {
        assert_eq!(r.run_id, i as u64);
        assert_eq!(r.point_id, i as u64 / 2);
        assert_eq!(r.seed, if i % 2 == 0 { 3 } else { 1 });
    }
}

#[test]
fn sampled_designs_are_seeded_bounded_and_lhs_stratified() {
    let text = |m: &str, seed: u64| {
        format!(
            r#"
base = ["x.toml", "y.toml"]
[design]
method = "{m}"
count = 40
seed = {seed}
[axes]
"a" = {{ from = 2.0, to = 4.0 }}
"b" = {{ from = 0.01, to = 1.0, scale = "log" }}
"c" = ["u", "v"]
"#
        )
    };
    for m in ["random", "lhs"] {
        let s = spec(&text(m, 7)).unwrap();
        assert_eq!(s.method, if m == "lhs" { Method::Lhs } else { Method::Random });
        let p = s.points();
        assert_eq!(p.len(), 80, "count points per base");
        assert_eq!(p, spec(&text(m, 7)).unwrap().points(), "same seed, same design");
        assert_ne!(p, spec(&text(m, 8)).unwrap().points(), "another seed, another design");
        for pt in &p {
            let a = pt.values[0].1.as_float().unwrap();
            let b = pt.values[1].1.as_float().unwrap();
            assert!((2.0..=4.0).contains(&a) && (0.01..=1.0).contains(&b));
            assert!(matches!(pt.values[2].1.as_str(), Some("u" | "v")));
        }
        // the two bases draw independent samples
        assert_ne!(p[..40].iter().map(|x| &x.values).collect::<Vec<_>>(), p[40..].iter().map(|x| &x.values).collect::<Vec<_>>());
        if m == "lhs" {
            for base in 0..2 {
                let pts = &p[base * 40..(base + 1) * 40];
                // one point per stratum on every axis (log axis: strata of log b)
                let mut sa: Vec<usize> =
                    pts.iter().map(|x| (((x.values[0].1.as_float().unwrap() - 2.0) / 2.0) * 40.0).floor().min(39.0) as usize).collect();
                let mut sb: Vec<usize> = pts
                    .iter()
                    .map(|x| {
                        (((x.values[1].1.as_float().unwrap().ln() - 0.01f64.ln()) / (1.0f64.ln() - 0.01f64.ln())) * 40.0).floor().min(39.0)
                            as usize
                    })
                    .collect();
                sa.sort();
                sb.sort();
                // rounding to 12 digits may push a value across a stratum edge only at the ends
                assert_eq!(sa, (0..40).collect::<Vec<_>>());
                assert_eq!(sb, (0..40).collect::<Vec<_>>());
                let us = pts.iter().filter(|x| x.values[2].1.as_str() == Some("u")).count();
                assert_eq!(us, 20, "a list axis is stratified over its values");
            }
        }
    }
}

#[test]
fn bad_sweep_files_get_clear_errors() {
    let cases = [
        ("seeds = [1]\n[axes]\nx = [1]", "`base`"),
        ("base = \"x.toml\"\n[axes]\n\"a\" = []", "empty list"),
        ("base = \"x.toml\"\n[axes]\n\"a\" = { from = 2, to = 1, steps = 3 }", "empty range"),
        ("base = \"x.toml\"\n[axes]\n\"a\" = { from = 1, to = 2, steps = 0 }", "steps"),
        ("base = \"x.toml\"\n[axes]\n\"a\" = { from = 1, to = 2 }", "needs `steps`"),
        ("base = \"x.toml\"\n[axes]\n\"a\" = { from = 0, to = 2, steps = 3, scale = \"log\" }", "log range"),
        ("base = \"x.toml\"\n[axes]\n\"a\" = { from = \"x\", to = 2, steps = 3 }", "must be a number"),
        ("base = \"x.toml\"\n[axes]\n\"a\" = [1, \"two\"]", "one type"),
        ("base = \"x.toml\"\n[axes]\n\"a\" = 3", "must be a list"),
        ("base = \"x.toml\"\nseeds = [1, 1]", "twice"),
        ("base = \"x.toml\"\nsedes = [1]", "unknown key"),
        ("base = \"x.toml\"\n[design]\nmethod = \"lhs\"\n[axes]\n\"a\" = { from = 1.0, to = 2.0 }", "need `count`"),
        ("base = \"x.toml\"\n[design]\nmethod = \"sobol\"", "design.method"),
    ];
    for (text, want) in cases {
        let e = spec(text).expect_err(text);
        assert!(e.contains(want), "{text:?}: error {e:?} lacks {want:?}");
    }
    // errors that need the base experiment: through the CLI, naming the file and the axis
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "a.toml", &base(100.0, 5.0, "wa"));
    for (axis, want) in [
        ("\"server.0.max_batch_sise\" = [4]", "max_batch_sise"),
        ("\"controller.k\" = [0.1]", "controller.k"),
        ("\"server.0.max_batch_size\" = [\"eight\"]", "server.0.max_batch_size"),
        ("\"server.3.instances\" = [2]", "out of range"),
    ] {
        let f = write(d.path(), "bad.toml", &format!("base = \"a.toml\"\n[axes]\n{axis}\n"));
        let out = basin(&["sweep", f.to_str().unwrap(), "--out", d.path().join("o").to_str().unwrap(), "--quiet"]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("bad.toml") && err.contains(want), "{axis}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one-paragraph error: {err}");
        assert!(!d.path().join("o").exists(), "nothing is written for a bad sweep file");
    }
    let f = write(d.path(), "bad.toml", "base = \"missing.toml\"\n");
    let err = String::from_utf8_lossy(&basin(&["sweep", f.to_str().unwrap(), "--quiet"]).stderr).to_string();
    assert!(err.contains("missing.toml") && err.contains("not found"), "{err}");
}

#[test]
fn results_are_identical_whatever_the_job_count() {
    let d = tempfile::tempdir().unwrap();
    let f = small_sweep(d.path());
    let p = basin::cli::sweep::prepare(&f).unwrap();
    assert_eq!(p.runs.len(), 2 * 9 * 3);
    let o1 = basin::cli::sweep::execute(&p, &d.path().join("j1"), 1, None, false, false, false).unwrap();
    let o2 = basin::cli::sweep::execute(&p, &d.path().join("j2"), 2, None, false, false, false).unwrap();
    assert_eq!((o1.ran, o2.ran), (54, 54));
    same_results(&d.path().join("j1"), &d.path().join("j2"));
    // SPEC columns: run_id, seed, one per axis by dotted path, summary flattened with `_`
    let rows = csv_rows(&d.path().join("j1"));
    assert_eq!(rows.len(), 55);
    let header: Vec<&str> = rows[0].split(',').collect();
    for c in [
        "run_id",
        "seed",
        "workload",
        "server.0.max_queue_delay_us",
        "server.0.max_batch_size",
        "latency_ms_p99",
        "energy_j_per_request",
        "accuracy",
        "energy_active_j",
    ] {
        assert!(header.contains(&c), "no column {c} in {header:?}");
    }
    let ids: Vec<u64> = rows[1..].iter().map(|r| r.split(',').next().unwrap().parse().unwrap()).collect();
    assert_eq!(ids, (0..54).collect::<Vec<_>>(), "rows sorted by run_id, each once");
    // a run's row equals the same experiment simulated alone
    let alone = d.path().join("alone");
    ok(basin(&[
        "simulate",
        d.path().join("b.toml").to_str().unwrap(),
        "--seed",
        "2",
        "--set",
        "server.0.max_queue_delay_us=2000",
        "--set",
        "server.0.max_batch_size=5",
        "--out",
        alone.to_str().unwrap(),
        "--json",
    ]));
    let s: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(alone.join("summary.json")).unwrap()).unwrap();
    // b.toml is points 9..18; (2000 us, 5) is its 5th point (index 4) -> point 13, seed 2 is run 13*3+1
    let row: Vec<&str> = rows[1 + 13 * 3 + 1].split(',').collect();
    let col = |n: &str| row[header.iter().position(|h| *h == n).unwrap()];
    assert_eq!(col("workload"), "wb");
    assert_eq!(col("seed"), "2");
    assert_eq!(col("requests"), s["requests"].to_string());
    let p99: f64 = col("latency_ms_p99").parse().unwrap();
    assert!((p99 - s["latency_ms"]["p99"].as_f64().unwrap()).abs() < 1e-9);
}

#[test]
fn a_killed_sweep_resumes_to_the_same_results() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "a.toml", &base(600.0, 600.0, "long"));
    let f = write(
        d.path(),
        "sweep.toml",
        "base = \"a.toml\"\nseeds = [1, 2]\n[axes]\n\"server.0.max_queue_delay_us\" = [250, 500, 1000, 2000, 4000, 8000, 16000, 32000]\n\"server.0.max_batch_size\" = [2, 4, 8]\n",
    );
    let full = d.path().join("full");
    ok(basin(&["sweep", f.to_str().unwrap(), "--out", full.to_str().unwrap(), "--jobs", "2", "--quiet"]));
    assert_eq!(csv_rows(&full).len(), 49);

    let out = d.path().join("killed");
    let journal = out.join("journal.jsonl");
    let mut child = Command::new(BIN)
        .args(["sweep", f.to_str().unwrap(), "--out", out.to_str().unwrap(), "--jobs", "1", "--quiet"])
        .env_remove("SLURM_ARRAY_TASK_ID")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let lines = || std::fs::read_to_string(&journal).map(|s| s.lines().count()).unwrap_or(0);
    while lines() < 5 && t0.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let done = lines();
    assert!(done >= 5, "the sweep never journaled 5 runs");
    assert!(done < 48, "the sweep finished ({done} runs) before it could be killed; make the runs longer");
    // a record half-written when the process died
    let mut j = std::fs::read(&journal).unwrap();
    j.extend_from_slice(b"{\"run_id\":47,\"row\":[[\"run_id\",47],[\"point_id\"");
    std::fs::write(&journal, j).unwrap();

    // without --resume the directory is refused
    let again = basin(&["sweep", f.to_str().unwrap(), "--out", out.to_str().unwrap(), "--quiet"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--resume"));

    let o = ok(basin(&["sweep", f.to_str().unwrap(), "--out", out.to_str().unwrap(), "--jobs", "2", "--resume"]));
    assert!(o.contains(&format!("{} already done", done)), "{o}");
    same_results(&full, &out);
    let journal_ids: Vec<u64> = std::fs::read_to_string(&journal)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["run_id"].as_u64().unwrap())
        .collect();
    assert_eq!(journal_ids.len(), 48, "each run journaled once");

    // resuming a finished sweep runs nothing and changes nothing
    ok(basin(&["sweep", f.to_str().unwrap(), "--out", out.to_str().unwrap(), "--resume", "--quiet"]));
    same_results(&full, &out);
    // resuming with a changed design is refused
    let f2 = write(d.path(), "sweep.toml", "base = \"a.toml\"\nseeds = [1, 2, 3]\n[axes]\n\"server.0.max_batch_size\" = [2, 4, 8]\n");
    let e = basin(&["sweep", f2.to_str().unwrap(), "--out", out.to_str().unwrap(), "--resume", "--quiet"]);
    assert!(!e.status.success() && String::from_utf8_lossy(&e.stderr).contains("different sweep"));
}

#[test]
fn shards_merge_into_the_unsharded_results_and_merge_checks_coverage() {
    let d = tempfile::tempdir().unwrap();
    let f = small_sweep(d.path());
    let fs = f.to_str().unwrap();
    let full = d.path().join("full");
    ok(basin(&["sweep", fs, "--out", full.to_str().unwrap(), "--quiet"]));
    let sh = d.path().join("sh");
    // shard 0 from --shard, shard 1 from Slurm's variables, shard 2 from a Kubernetes index
    ok(basin(&["sweep", fs, "--out", sh.to_str().unwrap(), "--shard", "0/3", "--quiet"]));
    ok(Command::new(BIN)
        .args(["sweep", fs, "--out", sh.to_str().unwrap(), "--quiet"])
        .env("SLURM_ARRAY_TASK_ID", "1")
        .env("SLURM_ARRAY_TASK_COUNT", "3")
        .env("SLURM_ARRAY_TASK_MIN", "0")
        .output()
        .unwrap());
    ok(Command::new(BIN)
        .args(["sweep", fs, "--out", sh.to_str().unwrap(), "--quiet"])
        .env_remove("SLURM_ARRAY_TASK_ID")
        .env("JOB_COMPLETION_INDEX", "2")
        .env("BASIN_SHARD_COUNT", "3")
        .output()
        .unwrap());
    let shards: Vec<PathBuf> = (0..3).map(|i| sh.join(format!("shard-{i}-of-3"))).collect();
    let mut total = 0;
    for (i, s) in shards.iter().enumerate() {
        let rows = csv_rows(s);
        total += rows.len() - 1;
        for r in &rows[1..] {
            let id: u64 = r.split(',').next().unwrap().parse().unwrap();
            assert_eq!(id % 3, i as u64, "shard {i} ran run {id}");
        }
    }
    assert_eq!(total, 54);
    let merged = d.path().join("merged");
    let mut args = vec!["merge"];
    let strs: Vec<String> = shards.iter().map(|s| s.display().to_string()).collect();
    args.extend(strs.iter().map(String::as_str));
    args.extend(["--out", merged.to_str().unwrap()]);
    ok(basin(&args));
    same_results(&full, &merged);

    // a missing shard
    let e = basin(&["merge", &strs[0], &strs[2], "--out", d.path().join("m2").to_str().unwrap()]);
    assert!(!e.status.success());
    let msg = String::from_utf8_lossy(&e.stderr);
    assert!(msg.contains("18 of the sweep's 54 runs are missing") && msg.contains("run_id 1, 4, 7"), "{msg}");
    // a shard given twice
    let e = basin(&["merge", &strs[0], &strs[1], &strs[2], &strs[1], "--out", d.path().join("m3").to_str().unwrap()]);
    assert!(!e.status.success());
    assert!(String::from_utf8_lossy(&e.stderr).contains("present twice"));
    // a different sweep
    let other = d.path().join("other");
    write(d.path(), "sweep2.toml", "base = \"a.toml\"\nseeds = [1]\n");
    ok(basin(&["sweep", d.path().join("sweep2.toml").to_str().unwrap(), "--out", other.to_str().unwrap(), "--quiet"]));
    let e = basin(&["merge", &strs[0], other.to_str().unwrap(), "--out", d.path().join("m4").to_str().unwrap()]);
    assert!(!e.status.success() && String::from_utf8_lossy(&e.stderr).contains("different sweep"));
}

fn check_svg(p: &Path, texts: &[&str]) {
    let svg = std::fs::read_to_string(p).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{}: not an SVG", p.display());
    for t in texts {
        assert!(svg.contains(&format!(">\n{t}\n</text>")) || svg.contains(&format!(">{t}</text>")), "{}: no text {t:?}", p.display());
    }
}

fn check_png(p: &Path) {
    let bytes = std::fs::read(p).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{}", p.display());
    let info = png::Decoder::new(std::io::Cursor::new(bytes)).read_info().unwrap().info().clone();
    assert_eq!(info.width, 1050, "{}: single-column width at 300 dpi", p.display());
}

#[test]
fn pareto_and_every_figure_kind_from_recorded_outputs() {
    let d = tempfile::tempdir().unwrap();
    let f = small_sweep(d.path());
    let sw = d.path().join("sw");
    let out = ok(basin(&["sweep", f.to_str().unwrap(), "--out", sw.to_str().unwrap(), "--keep-runs"]));
    assert!(out.contains("hypervolume"), "final table: {out}");
    // --keep-runs wrote every run's own directory
    assert!(sw.join("runs/000053/summary.json").is_file() && sw.join("runs/000000/requests.parquet").is_file());

    let p = ok(basin(&["pareto", sw.to_str().unwrap(), "--objectives", "energy_j_per_request:min,latency_ms_p99:min"]));
    assert!(p.contains("wa:") && p.contains("wb:") && p.contains("knee"), "{p}");
    let table = std::fs::read_to_string(sw.join("pareto.csv")).unwrap();
    assert!(table.lines().next().unwrap().contains("energy_j_per_request_mean,energy_j_per_request_ci95"));
    assert_eq!(table.lines().count(), 1 + 18, "one row per point");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(sw.join("pareto.json")).unwrap()).unwrap();
    assert!(json[0]["hypervolume"].as_f64().unwrap() > 0.0);

    let figs = d.path().join("figs");
    let run_a = sw.join("runs/000000");
    let run_b = sw.join("runs/000030");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let cases: Vec<(Vec<String>, &str, Vec<&str>)> = vec![
        (
            vec!["pareto".into(), s(&sw), "--x".into(), "energy_j_per_request".into(), "--y".into(), "latency_ms_p99".into()],
            "pareto",
            vec!["energy per request (J)", "p99 latency (ms)", "wa", "wb"],
        ),
        (
            vec!["timeseries".into(), s(&run_a)],
            "timeseries",
            vec!["time (s)", "arrival rate (req/s)", "queue length (requests)", "power (W)"],
        ),
        (vec!["cdf".into(), s(&run_a), s(&run_b)], "cdf", vec!["latency (ms)", "fraction of requests", "000000", "000030"]),
        (vec!["energy".into(), s(&run_a), s(&run_b)], "energy", vec!["energy per request (J)", "active", "idle"]),
    ];
    for (args, name, texts) in cases {
        let svg = figs.join(format!("{name}.svg"));
        let png = figs.join(format!("{name}.png"));
        let mut a: Vec<String> = vec!["plot".into()];
        a.extend(args);
        a.extend(["--out".into(), s(&svg), "--out".into(), s(&png)]);
        ok(basin(&a.iter().map(String::as_str).collect::<Vec<_>>()));
        check_svg(&svg, &texts);
        check_png(&png);
        if let Some(look) = std::env::var_os("BASIN_PLOT_LOOK_DIR") {
            std::fs::copy(&png, Path::new(&look).join(format!("sweep-{name}.png"))).unwrap();
        }
    }
    // plot reads only recorded outputs: a directory without them is a clear error
    let e = basin(&["plot", "cdf", d.path().to_str().unwrap(), "--out", s(&figs.join("x.svg")).as_str()]);
    assert!(!e.status.success() && String::from_utf8_lossy(&e.stderr).contains("requests.parquet"));
}

#[test]
fn axis_kinds_round_trip_into_typed_columns() {
    let s = spec("base = \"x.toml\"\n[axes]\n\"a\" = [true, false]\n\"b\" = [\"x\"]\n\"c\" = [1, 2.5]\n").unwrap();
    assert!(matches!(&s.axes[2].1, Axis::List { values } if values.len() == 2));
    assert_eq!(s.points().len(), 4);
}

#[test]
fn designs_too_large_to_list_are_refused_before_anything_is_allocated() {
    let e = spec("base = \"a.toml\"\nseeds = [1]\n[axes]\n\"energy.pue\" = { from = 1.0, to = 2.0, steps = 4294967296 }\n").unwrap_err();
    assert!(e.contains("axes.\"energy.pue\".steps") && e.contains("more than the 10000"), "{e}");
    let e = spec("base = \"a.toml\"\nseeds = [1, 2, 3, 4]\n[axes]\n\"a\" = { from = 1, to = 2, steps = 10000 }\n\"b\" = { from = 1, to = 2, steps = 10000 }\n").unwrap_err();
    assert!(e.contains("4e8 runs") && e.contains("1e7"), "{e}");
    let e = spec(
        "base = \"a.toml\"\nseeds = [1]\n[design]\nmethod = \"lhs\"\ncount = 9223372036854775807\n[axes]\n\"a\" = { from = 1, to = 2 }\n",
    )
    .unwrap_err();
    assert!(e.contains("design.count") && e.contains("runs"), "{e}");
    assert!(spec("base = \"a.toml\"\nseeds = [1, 2]\n[axes]\n\"a\" = { from = 1, to = 2, steps = 10000 }\n").is_ok());
}
