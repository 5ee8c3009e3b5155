//! Every CSV basin ships or writes is a plain CSV: header on the first line, no comment lines,
//! read by polars with its defaults (`polars.read_csv(path)`). Checked on every committed CSV
//! (`git ls-files '*.csv'`) and on the CSVs a trace generation, a sweep + `basin pareto`, and
//! (with ONNX Runtime and the models present) a calibration write.
//!
//! polars comes from the project's venv (`scripts/setup-python.sh`); without it the polars read
//! is skipped with a message, unless `BASIN_REQUIRE_HW=1` (CI), where it fails. The header
//! check runs regardless.

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_basin");

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn require_hw() -> bool {
    std::env::var("BASIN_REQUIRE_HW").is_ok_and(|v| v == "1")
}

/// Skips (with a message) when something a check needs is absent, except under CI.
fn absent(what: &str) {
    assert!(!require_hw(), "BASIN_REQUIRE_HW=1: {what}");
    eprintln!("skipping part of the check: {what}");
}

fn python() -> Option<PathBuf> {
    let p = repo().join(".venv/bin/python");
    if p.is_file() {
        return Some(p);
    }
    absent("no .venv/bin/python (scripts/setup-python.sh)");
    None
}

/// Fails unless every file's first line is a header (no `#`, no blank line) and, with the
/// venv, polars reads every file with its defaults.
fn assert_plain(files: &[PathBuf]) {
    assert!(!files.is_empty(), "no CSV to check");
    for f in files {
        let text = std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let first = text.lines().next().unwrap_or("");
        assert!(
            !first.starts_with('#') && !first.trim().is_empty() && first.contains(','),
            "{}: the first line is not a header: {first:?}",
            f.display()
        );
        assert!(!text.lines().any(|l| l.starts_with('#')), "{}: has a `#` comment line", f.display());
    }
    let Some(py) = python() else { return };
    let out = Command::new(py)
        .args(["-c", "import polars, sys\nfor p in sys.argv[1:]:\n    polars.read_csv(p)\nprint(len(sys.argv) - 1)"])
        .args(files)
        .output()
        .unwrap();
    assert!(out.status.success(), "polars.read_csv failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), files.len().to_string());
}

fn csvs_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            found.extend(csvs_under(&p));
        } else if p.extension().is_some_and(|x| x == "csv") {
            found.push(p);
        }
    }
    found.sort();
    found
}

fn run_ok(args: &[&str]) {
    let out = Command::new(BIN).args(args).env_remove("SLURM_ARRAY_TASK_ID").env_remove("JOB_COMPLETION_INDEX").output().unwrap();
    assert!(out.status.success(), "basin {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn every_committed_csv_is_plain() {
    let out = Command::new("git").args(["ls-files", "*.csv"]).current_dir(repo()).output();
    let files: Vec<PathBuf> = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).lines().map(|l| repo().join(l)).collect(),
        _ => {
            absent("not a git checkout: checking the CSVs under traces/ and calibration/ instead");
            [repo().join("traces"), repo().join("calibration")].iter().flat_map(|d| csvs_under(d)).collect()
        }
    };
    assert!(files.iter().any(|f| f.ends_with("traces/twitter/bursty.csv")), "the bundled traces are committed");
    assert!(files.iter().any(|f| f.ends_with("calibration/vm-amd-epyc/cost.csv")));
    assert_plain(&files);
}

#[test]
fn trace_gen_sweep_and_pareto_write_plain_csvs() {
    let d = tempfile::tempdir().unwrap();
    let trace = d.path().join("gen.csv");
    run_ok(&["trace", "gen", "bursty", "--duration-s", "60", "--out", trace.to_str().unwrap()]);
    let base = "name = \"plain\"\nseed = 1\nslo_ms = 40\n[workload]\nrate_rps = 200\nduration_s = 5\n\
                [[device]]\nname = \"gpu0\"\nidle_power_w = 50\n\
                [[server]]\nname = \"s\"\nkind = \"batched\"\nmodel = \"m\"\nbackend = \"sim\"\ndevice = \"gpu0\"\nmax_batch_size = 4\nmax_queue_delay_us = 2000\n\
                [quality.accuracy]\nm = 0.9\n\
";
    let costs: String = (1..=4)
        .map(|b| {
            format!(
                "[[cost]]\nmodel = \"m\"\nbackend = \"sim\"\ndevice = \"gpu0\"\nbatch_size = {b}\nlatency_ms = {}\nenergy_j = {}\n",
                1.0 + 0.5 * b as f64,
                0.1 * b as f64
            )
        })
        .collect();
    std::fs::write(d.path().join("base.toml"), format!("{base}{costs}")).unwrap();
    std::fs::write(
        d.path().join("sweep.toml"),
        "base = \"base.toml\"\nseeds = [1, 2]\n[axes]\n\"server.0.max_queue_delay_us\" = [500, 4000]\n",
    )
    .unwrap();
    let sweep_out = d.path().join("sweep");
    run_ok(&["sweep", d.path().join("sweep.toml").to_str().unwrap(), "--out", sweep_out.to_str().unwrap(), "--quiet", "--jobs", "1"]);
    run_ok(&["pareto", sweep_out.to_str().unwrap()]);
    let mut files = vec![trace];
    files.extend(csvs_under(&sweep_out));
    assert!(files.iter().any(|f| f.ends_with("results.csv")) && files.iter().any(|f| f.ends_with("pareto.csv")), "{files:?}");
    assert_plain(&files);
}

#[test]
fn a_calibration_writes_plain_csvs() {
    let models = std::env::var_os("BASIN_MODELS_DIR").map(PathBuf::from).unwrap_or_else(|| repo().join(".cache/models"));
    let lib = std::env::var_os("BASIN_ORT_LIB").map(PathBuf::from).unwrap_or_else(|| repo().join(".cache/onnxruntime/libonnxruntime.so"));
    if !models.join("digits_tiny.onnx").is_file() || !lib.is_file() {
        absent("no ONNX Runtime library or models (scripts/setup-ort.sh, scripts/build-models.sh)");
        return;
    }
    if !cfg!(feature = "ort") {
        absent("basin built without the `ort` feature");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("cal.toml");
    std::fs::write(
        &cfg,
        format!(
            "batch_sizes = [1, 2]\n[models]\ndigits_tiny = \"{m}/digits_tiny.onnx\"\n[backends.onnxruntime]\nlibrary = \"{lib}\"\n\
             [measure]\nmin_repetitions = 20\nmax_time_s = 0.3\nmin_time_s = 0.1\nwindow_s = 0.05\n[meter]\nkind = \"auto\"\nidle_s = 0.1\n\
             [quality]\nmodels = [\"digits_tiny\"]\ntest_csv = \"{m}/digits_test.csv\"\n",
            m = models.display(),
            lib = lib.display()
        ),
    )
    .unwrap();
    let out = d.path().join("cal");
    run_ok(&["calibrate", cfg.to_str().unwrap(), "--out", out.to_str().unwrap(), "--quiet"]);
    let files = csvs_under(&out);
    assert!(files.iter().any(|f| f.ends_with("cost.csv")) && files.iter().any(|f| f.ends_with("quality.csv")), "{files:?}");
    assert_plain(&files);
    let manifest = std::fs::read_to_string(out.join("manifest.toml")).unwrap();
    assert!(
        manifest.contains("[tables]") && manifest.contains("\"cost.csv\" = \"Measured by `basin calibrate`"),
        "provenance moved to the manifest: {manifest}"
    );
}
