//! `basin validate --level`: bad input fails clearly and writes nothing; a level-1 validation of
//! a local (Path A) experiment runs end to end on controlled-service workers (no hardware
//! needed); with the project's venv, a Triton that cannot start (a model it cannot serve, a
//! port in use) is a clear error and nothing keeps running.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn basin(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_basin")).args(args).current_dir(cwd).output().expect("run basin")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A local batched server (5 ms + 1 ms per request, up to 4) at ~45% utilisation, 3 s.
fn local_experiment(dir: &Path) -> PathBuf {
    let mut text = String::from(
        r#"name = "validate-local"
seed = 5
slo_ms = 100
[workload]
rate_rps = 80
duration_s = 3
[[device]]
name = "cpu"
idle_power_w = 10
[[server]]
name = "local"
kind = "batched"
model = "m"
backend = "onnxruntime"
device = "cpu"
instances = 1
max_batch_size = 4
max_queue_delay_us = 1000
[output]
requests = true
"#,
    );
    for b in 1..=4 {
        text += &format!(
            "[[cost]]\nmodel = \"m\"\nbackend = \"onnxruntime\"\ndevice = \"cpu\"\nbatch_size = {b}\nlatency_ms = {}\nenergy_j = 0.1\n",
            5.0 + b as f64
        );
    }
    let f = dir.join("local.toml");
    std::fs::write(&f, text).unwrap();
    f
}

#[test]
fn an_unknown_level_zero_repeats_or_a_bad_host_pass_fails_clearly_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let exp = local_experiment(dir.path());
    let out = dir.path().join("v");
    let o = basin(&["validate", "--experiment", exp.to_str().unwrap(), "--level", "fast", "--out", out.to_str().unwrap()], dir.path());
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("`fast`") && e.contains("controlled, conditioned, predicted"), "{e}");
    let o = basin(&["validate", "--experiment", exp.to_str().unwrap(), "--repeats", "0", "--out", out.to_str().unwrap()], dir.path());
    assert!(!o.status.success() && stderr(&o).contains("--repeats must be at least 1"), "{}", stderr(&o));
    for (level, secs, expect) in [("predicted", "0.5", "at least 1 s"), ("controlled", "5", "--level predicted")] {
        let o = basin(
            &["validate", "--experiment", exp.to_str().unwrap(), "--level", level, "--host-pass-s", secs, "--out", out.to_str().unwrap()],
            dir.path(),
        );
        assert!(!o.status.success() && stderr(&o).contains(expect), "{}", stderr(&o));
    }
    assert!(!out.exists());
    // a directory that is not a validation report is not replaced
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    let o =
        basin(&["validate", "--experiment", exp.to_str().unwrap(), "--level", "controlled", "--out", out.to_str().unwrap()], dir.path());
    assert!(!o.status.success() && stderr(&o).contains("is not a validation report"), "{}", stderr(&o));
    assert!(out.join("notes.txt").is_file());
}

#[test]
fn level_one_on_controlled_workers_writes_a_complete_report() {
    let dir = tempfile::tempdir().unwrap();
    let exp = local_experiment(dir.path());
    let out = dir.path().join("v");
    let o = basin(
        &["validate", "--experiment", exp.to_str().unwrap(), "--level", "controlled", "--repeats", "3", "--out", out.to_str().unwrap()],
        &repo(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(out.join("validation.json")).unwrap()).unwrap();
    assert_eq!(v["level"], "controlled");
    assert_eq!(v["repeats"], 3);
    assert!(v["host_drift"].is_number() && v["unreliable"].is_boolean());
    for m in ["latency_mean_ms", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "throughput_rps", "mean_batch_size", "energy_j"] {
        let x = &v["metrics"][m];
        for k in ["sim", "replay_mean", "replay_ci95", "replay_cv", "rel_error", "within_band", "tost_10", "tost_5"] {
            assert!(!x[k].is_null(), "{m}.{k} missing: {x}");
        }
        assert_eq!(x["replays"].as_array().unwrap().len(), 3);
    }
    assert!(v["metrics"]["latency_mean_ms"]["ks"].is_number());
    // the same arrivals and every request answered: throughput agrees closely; the batcher and
    // the workers' holds keep the mean batch size near the simulation's (loose: a shared host)
    let err = |m: &str| v["metrics"][m]["rel_error"].as_f64().unwrap().abs();
    assert!(err("throughput_rps") < 0.02, "throughput off by {}", err("throughput_rps"));
    assert!(err("mean_batch_size") < 0.25, "mean batch size off by {}", err("mean_batch_size"));
    for f in ["validation.md", "latency_cdf.png", "timeseries.png", "sim-1/summary.json", "sim-3/summary.json", "replay-3/summary.json"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let r: Value = serde_json::from_str(&std::fs::read_to_string(out.join("replay-1/summary.json")).unwrap()).unwrap();
    assert!(r["host_drift"].is_number() && r["host_probe"]["samples"].as_u64().unwrap() > 0);
}

/// The venv holding tritonserver, or why the Triton tests cannot run.
fn venv() -> Option<PathBuf> {
    let require = std::env::var("BASIN_REQUIRE_HW").is_ok_and(|v| v == "1");
    let v = repo().join(".venv/bin/python");
    if v.is_file() {
        return Some(v);
    }
    assert!(!require, "BASIN_REQUIRE_HW=1: no project venv (scripts/setup-python.sh)");
    eprintln!("skipping: no project venv (scripts/setup-python.sh)");
    None
}

/// A Path B experiment serving `model` on Triton (cost rows inline), 2 s at 50 req/s.
fn triton_experiment(dir: &Path, model: &str) -> PathBuf {
    let mut text = format!(
        r#"name = "validate-triton"
seed = 5
slo_ms = 100
[workload]
rate_rps = 50
duration_s = 2
[[device]]
name = "cpu"
idle_power_w = 10
[[server]]
name = "triton"
kind = "batched"
model = "{model}"
backend = "triton"
device = "cpu"
instances = 1
max_batch_size = 2
max_queue_delay_us = 1000
"#
    );
    for b in 1..=2 {
        text += &format!(
            "[[cost]]\nmodel = \"{model}\"\nbackend = \"triton\"\ndevice = \"cpu\"\nbatch_size = {b}\nlatency_ms = 3\nenergy_j = 0.1\n"
        );
    }
    let f = dir.join("triton.toml");
    std::fs::write(&f, text).unwrap();
    f
}

/// `basin validate` on `model` with Triton on `port` fails naming `expect`, writes no report
/// and leaves no Triton running (its private BASIN_CACHE has no pid file).
fn triton_failure_leaves_nothing(model: &str, port: u16, expect: &str) {
    let dir = tempfile::tempdir().unwrap();
    let exp = triton_experiment(dir.path(), model);
    let out = dir.path().join("v");
    let cache = dir.path().join("cache");
    let o = Command::new(env!("CARGO_BIN_EXE_basin"))
        .args(["validate", "--experiment", exp.to_str().unwrap(), "--level", "predicted", "--repeats", "1"])
        .args(["--triton-port", &port.to_string(), "--out", out.to_str().unwrap()])
        .env("BASIN_CACHE", &cache)
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("start-triton.sh") && e.contains(expect), "{e}");
    assert!(!out.exists(), "a failed validation left {}", out.display());
    assert!(!cache.join("triton/triton.pid").exists(), "a Triton is still recorded as running: {e}");
}

#[test]
fn a_model_triton_cannot_serve_is_a_clear_error() {
    if venv().is_none() {
        return;
    }
    triton_failure_leaves_nothing("no_such_model", 8791, "no_such_model");
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    if venv().is_none() {
        return;
    }
    let busy = TcpListener::bind("127.0.0.1:8794").expect("a free port for the test");
    triton_failure_leaves_nothing("digits_large", 8794, "8794");
    drop(busy);
}

/// Level 3 with a host pass: before each replay a short load pass on the real model, and each
/// replay's simulation on the profile rescaled to what its pass found.
#[test]
fn level_three_re_measures_the_host_before_each_replay() {
    if venv().is_none() {
        return;
    }
    if !repo().join(".cache/models/digits_large.onnx").is_file() {
        assert!(std::env::var("BASIN_REQUIRE_HW").as_deref() != Ok("1"), "BASIN_REQUIRE_HW=1: no digits models");
        eprintln!("skipping: no digits models (scripts/build-models.sh)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exp = triton_experiment(dir.path(), "digits_large");
    let text = std::fs::read_to_string(&exp)
        .unwrap()
        .replace("max_queue_delay_us = 1000\n", "max_queue_delay_us = 1000\nload_profile = \"load.csv\"\n");
    std::fs::write(&exp, text).unwrap();
    std::fs::write(dir.path().join("load.csv"), "rps,service_factor,overhead_ms,energy_factor\n10,1.0,0.5,1.0\n100,2.0,1.0,1.0\n").unwrap();
    let out = dir.path().join("v");
    let o = Command::new(env!("CARGO_BIN_EXE_basin"))
        .args(["validate", "--experiment", exp.to_str().unwrap(), "--level", "predicted", "--repeats", "2", "--host-pass-s", "1"])
        .args(["--triton-port", "8797", "--out", out.to_str().unwrap()])
        .env("BASIN_CACHE", dir.path().join("cache"))
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(out.join("validation.json")).unwrap()).unwrap();
    let passes = v["inputs"]["triton.host_pass"].as_array().expect("the host passes are kept");
    assert_eq!(passes.len(), 2);
    for p in passes {
        // the pass ran at the rate the simulation sends the server (50 req/s, all of it)
        let rps = p["rps"].as_f64().unwrap();
        assert!((rps - 50.0).abs() < 15.0, "{p}");
        // the profile read at the pass's rate: linear between its two points
        assert!((p["profile_service_factor"].as_f64().unwrap() - (1.0 + (rps - 10.0) / 90.0)).abs() < 1e-9, "{p}");
        assert!(p["service_factor"].as_f64().unwrap() > 0.0, "{p}");
    }
    assert!(v["taken_from_run"].as_str().unwrap().contains("load pass"));
    for f in ["host-pass-1/summary.json", "host-pass-2/summary.json", "sim-1/summary.json", "sim-2/summary.json", "replay-2/summary.json"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
}
