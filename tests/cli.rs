//! The `basin` binary end to end: determinism, `--set`, and bad inputs (clear error, non-zero
//! exit, no panic, no output directory).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn basin(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_basin")).args(args).current_dir(cwd).output().expect("the basin binary runs")
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn same_seed_gives_byte_identical_outputs() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = repo().join("experiments/bursty-batched.toml");
    let exp = exp.to_str().unwrap();
    for d in ["a", "b"] {
        let o = basin(&["simulate", exp, "--out", d, "--set", "workload.duration_s=300"], tmp.path());
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    for f in ["summary.json", "timeseries.parquet", "requests.parquet"] {
        let a = std::fs::read(tmp.path().join("a").join(f)).unwrap();
        let b = std::fs::read(tmp.path().join("b").join(f)).unwrap();
        assert!(a == b, "{f} differs between two runs with one seed");
    }
    let o = basin(&["simulate", exp, "--out", "c", "--seed", "8", "--set", "workload.duration_s=300"], tmp.path());
    assert!(o.status.success());
    assert_ne!(std::fs::read(tmp.path().join("a/summary.json")).unwrap(), std::fs::read(tmp.path().join("c/summary.json")).unwrap());
}

#[test]
fn set_overrides_keys_and_manifest_records_them() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = repo().join("experiments/steady_low-batched.toml");
    let o = basin(
        &[
            "simulate",
            exp.to_str().unwrap(),
            "--out",
            "r",
            "--set",
            "workload.duration_s=60",
            "--set",
            "server[0].max_batch_size=2",
            "--set",
            "energy.pue=1.5",
            "--json",
        ],
        tmp.path(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(tmp.path().join("r/summary.json")).unwrap()).unwrap();
    assert_eq!(s["energy"]["pue"], 1.5);
    assert!(s["mean_batch_size"].as_f64().unwrap() <= 2.0);
    assert!(s["duration_s"].as_f64().unwrap() <= 60.0 + 1.0);
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(tmp.path().join("r/manifest.json")).unwrap()).unwrap();
    assert_eq!(m["mode"], "simulate");
    assert_eq!(m["experiment"]["server"][0]["max_batch_size"], 2);
    let inputs = m["inputs"].as_array().unwrap();
    assert!(inputs.iter().any(|i| i["role"] == "workload.trace" && i["sha256"].as_str().unwrap().len() == 64));
}

const BASE: &str = r#"
name = "bad"
slo_ms = 100
[workload]
trace = "trace.csv"
[[device]]
name = "gpu0"
idle_power_w = 60
[[cost]]
model = "m"
backend = "triton"
device = "gpu0"
batch_size = 1
latency_ms = 5.0
energy_j = 1.0
[[cost]]
model = "m"
backend = "triton"
device = "gpu0"
batch_size = 2
latency_ms = 6.0
energy_j = 1.5
[[server]]
name = "s"
kind = "batched"
model = "m"
backend = "triton"
device = "gpu0"
max_batch_size = 2
max_queue_delay_us = 1000
"#;

/// Runs `simulate` on an experiment made from BASE with `edit`, and a trace file `trace`.
fn bad(edit: impl Fn(&str) -> String, trace_name: &str, trace: Option<&str>) -> (String, PathBuf) {
    let tmp = tempfile::tempdir().unwrap().keep();
    std::fs::write(tmp.join("exp.toml"), edit(BASE)).unwrap();
    if let Some(t) = trace {
        std::fs::write(tmp.join(trace_name), t).unwrap();
    }
    let o = basin(&["simulate", "exp.toml", "--out", "out"], &tmp);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(!o.status.success(), "expected failure, got success; stderr: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    assert!(!tmp.join("out").exists(), "an output directory was left behind");
    assert!(std::fs::read_dir(&tmp).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().contains(".tmp")), "temp files left");
    (err, tmp)
}

const GOOD: &str = "second,rate\n0,5\n1,7\n2,3\n";

fn has(err: &str, parts: &[&str]) {
    for p in parts {
        assert!(err.contains(p), "error message lacks `{p}`: {err}");
    }
}

#[test]
fn missing_experiment_file() {
    let tmp = tempfile::tempdir().unwrap();
    let o = basin(&["simulate", "nope.toml"], tmp.path());
    assert!(!o.status.success());
    has(&String::from_utf8_lossy(&o.stderr), &["nope.toml", "cannot read"]);
}

#[test]
fn missing_trace_file() {
    let (e, _) = bad(|b| b.to_string(), "trace.csv", None);
    has(&e, &["exp.toml", "workload.trace", "trace.csv", "not found"]);
}

#[test]
fn empty_trace() {
    let (e, _) = bad(|b| b.to_string(), "trace.csv", Some(""));
    has(&e, &["exp.toml", "workload.trace", "trace.csv"]);
    let (e, _) = bad(|b| b.to_string(), "trace.csv", Some("second,rate\n"));
    has(&e, &["trace.csv"]);
}

#[test]
fn negative_and_nan_rates_name_the_line() {
    let (e, _) = bad(|b| b.to_string(), "trace.csv", Some("second,rate\n0,5\n1,-2\n"));
    has(&e, &["trace.csv", "line 3", "negative"]);
    let (e, _) = bad(|b| b.to_string(), "trace.csv", Some("second,rate\n0,5\n1,4\n2,NaN\n"));
    has(&e, &["trace.csv", "line 4", "NaN"]);
}

#[test]
fn unsorted_request_times_name_the_line() {
    let (e, _) = bad(
        |b| b.replace("trace = \"trace.csv\"", "trace = \"req.csv\"\nformat = \"request_csv\""),
        "req.csv",
        Some("arrival_s\n0.1\n0.5\n0.3\n"),
    );
    has(&e, &["req.csv", "line 4"]);
}

#[test]
fn unknown_key_lists_allowed_keys() {
    let (e, _) = bad(|b| b.replace("idle_power_w = 60", "idle_power_w = 60\nidle_watts = 3"), "trace.csv", Some(GOOD));
    has(&e, &["exp.toml", "device[0]", "unknown field `idle_watts`", "idle_power_w"]);
    let (e, _) = bad(|b| format!("{b}\n[controller]\nkind = \"magic\"\n"), "trace.csv", Some(GOOD));
    has(&e, &["exp.toml", "controller", "magic", "open_loop", "bio_threshold"]);
}

#[test]
fn wrong_type_names_the_key() {
    let (e, _) = bad(|b| b.replace("max_batch_size = 2", "max_batch_size = \"two\""), "trace.csv", Some(GOOD));
    has(&e, &["exp.toml", "server[0].max_batch_size"]);
}

#[test]
fn batch_size_zero() {
    let (e, _) = bad(|b| b.replace("max_batch_size = 2", "max_batch_size = 0"), "trace.csv", Some(GOOD));
    has(&e, &["exp.toml", "server[0].max_batch_size", "at least 1"]);
    let (e, _) = bad(|b| b.replace("batch_size = 2\n", "batch_size = 0\n"), "trace.csv", Some(GOOD));
    has(&e, &["exp.toml", "batch_size"]);
}

#[test]
fn missing_cost_row_for_a_formable_batch() {
    let (e, _) = bad(|b| b.replace("max_batch_size = 2", "max_batch_size = 3"), "trace.csv", Some(GOOD));
    has(&e, &["exp.toml", "server[0].model", "no cost row", "batch_size 3", "interpolate"]);
}

#[test]
fn unknown_device() {
    let (e, _) = bad(|b| b.replacen("device = \"gpu0\"\nmax_batch_size", "device = \"gpu9\"\nmax_batch_size", 1), "trace.csv", Some(GOOD));
    has(&e, &["exp.toml", "server[0].device", "unknown device `gpu9`", "gpu0"]);
}

#[test]
fn toml_syntax_error_names_the_line() {
    let (e, _) = bad(|b| b.replace("slo_ms = 100", "slo_ms = = 100"), "trace.csv", Some(GOOD));
    has(&e, &["exp.toml", "line 3", "invalid TOML"]);
}

#[test]
fn bad_set_override() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("exp.toml"), BASE).unwrap();
    std::fs::write(tmp.path().join("trace.csv"), GOOD).unwrap();
    let o = basin(&["simulate", "exp.toml", "--out", "out", "--set", "server[5].instances=2"], tmp.path());
    assert!(!o.status.success());
    has(&String::from_utf8_lossy(&o.stderr), &["server[5].instances", "out of range"]);
    let o = basin(&["simulate", "exp.toml", "--out", "out", "--set", "energy.pue=-1"], tmp.path());
    has(&String::from_utf8_lossy(&o.stderr), &["energy.pue"]);
    assert!(!tmp.path().join("out").exists());
    // and the good file does run
    let o = basin(&["simulate", "exp.toml", "--out", "out"], tmp.path());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn wrong_type_inside_the_controller_names_the_key() {
    let (e, _) = bad(|b| format!("{b}\n[controller]\nkind = \"bio_threshold\"\nk = \"fast\"\n"), "trace.csv", Some(GOOD));
    has(&e, &["exp.toml", "`controller.k`", "expected f64"]);
    let (e, _) = bad(|b| format!("{b}\n[controller]\nkind = \"ipa\"\ninterval = 5\n"), "trace.csv", Some(GOOD));
    has(&e, &["exp.toml", "`controller.interval`", "unknown field", "interval_s"]);
}

/// `simulate` with BASE + a load profile file: (stderr, success).
fn with_profile(server_keys: &str, profile: &str) -> (String, bool) {
    let tmp = tempfile::tempdir().unwrap().keep();
    std::fs::write(tmp.join("exp.toml"), format!("{BASE}{server_keys}\n")).unwrap();
    std::fs::write(tmp.join("trace.csv"), GOOD).unwrap();
    std::fs::write(tmp.join("load.csv"), profile).unwrap();
    let o = basin(&["simulate", "exp.toml", "--out", "out"], &tmp);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(!err.contains("panicked"), "panic: {err}");
    if !o.status.success() {
        assert!(!tmp.join("out").exists(), "an output directory was left behind");
    }
    (err, o.status.success())
}

#[test]
fn load_profile_errors_name_the_key_file_and_line() {
    let good = "# comment\nrps,service_factor,overhead_ms,energy_factor,extra\n0,1.0,0.5,1.0,x\n500,1.5,1.0,1.2,y\n";
    let (e, ok) = with_profile("load_profile = \"load.csv\"\nload_window_ms = 100", good);
    assert!(ok, "a valid profile must load: {e}");
    let (e, ok) = with_profile("load_profile = \"load.csv\"\nrequest_overhead_ms = 1.0", good);
    assert!(!ok);
    has(&e, &["exp.toml", "server[0].request_overhead_ms", "not both"]);
    let (e, ok) = with_profile("load_window_ms = 100", good);
    assert!(!ok);
    has(&e, &["exp.toml", "server[0].load_window_ms", "needs `load_profile`"]);
    let (e, ok) = with_profile("load_profile = \"load.csv\"", "rps,service_factor,overhead_ms\n0,1.0,0.5\n100,-1,0.5\n");
    assert!(!ok);
    has(&e, &["exp.toml", "server[0].load_profile", "load.csv", "line 3", "service_factor"]);
    let (e, ok) = with_profile("load_profile = \"load.csv\"", "rps,overhead_ms\n0,0.5\n");
    assert!(!ok);
    has(&e, &["load.csv", "missing column `service_factor`"]);
    let (e, ok) = with_profile("load_profile = \"load.csv\"", "rps,service_factor,overhead_ms\n10,1.0,0.5\n10,1.2,0.5\n");
    assert!(!ok);
    has(&e, &["server[0].load_profile", "appears twice"]);
    let (e, ok) = with_profile("load_profile = \"nope.csv\"", good);
    assert!(!ok);
    has(&e, &["server[0].load_profile", "nope.csv", "not found"]);
}

#[test]
fn a_cost_row_for_an_undeclared_device_names_it_and_the_declared_ones() {
    // inline row: named at once
    let (e, _) = bad(|b| b.replacen("device = \"gpu0\"\nbatch_size = 1", "device = \"gpu\"\nbatch_size = 1", 1), "trace.csv", Some(GOOD));
    has(&e, &["exp.toml", "`cost[0].device`", "no [[device]] declares device `gpu`", "declared devices: `gpu0`"]);
    // table rows: named (file and line) when the lookup misses
    let table = "model,backend,device,batch_size,latency_ms,energy_j\nm,triton,gpu,1,5.0,1.0\nm,triton,gpu,2,6.0,1.5\n";
    let tmp = tempfile::tempdir().unwrap();
    let exp = BASE.replace(&BASE[BASE.find("[[cost]]").unwrap()..BASE.find("[[server]]").unwrap()], "[cost_table]\npath = \"cost.csv\"\n");
    std::fs::write(tmp.path().join("exp.toml"), exp).unwrap();
    std::fs::write(tmp.path().join("trace.csv"), GOOD).unwrap();
    std::fs::write(tmp.path().join("cost.csv"), table).unwrap();
    let o = basin(&["simulate", "exp.toml", "--out", "out"], tmp.path());
    assert!(!o.status.success() && !tmp.path().join("out").exists());
    has(
        &String::from_utf8_lossy(&o.stderr),
        &["exp.toml", "`server[0].model`", "device `gpu`", "cost.csv, line 2", "which no [[device]] declares", "declared devices: `gpu0`"],
    );
}

#[test]
fn set_controller_kind_that_leaves_old_keys_says_to_replace_the_table() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = format!("{BASE}\n[controller]\nkind = \"bio_threshold\"\nk = 2.0\ntau0 = 0.5\n");
    std::fs::write(tmp.path().join("exp.toml"), exp).unwrap();
    std::fs::write(tmp.path().join("trace.csv"), GOOD).unwrap();
    let o = basin(&["simulate", "exp.toml", "--out", "out", "--set", "controller.kind=open_loop"], tmp.path());
    assert!(!o.status.success() && !tmp.path().join("out").exists());
    let e = String::from_utf8_lossy(&o.stderr);
    has(
        &e,
        &[
            "exp.toml",
            "`controller.kind`",
            "from `bio_threshold` to `open_loop`",
            "`k`, `tau0`",
            r#"--set 'controller={kind="open_loop"}'"#,
        ],
    );
    // the suggested command works
    let o = basin(&["simulate", "exp.toml", "--out", "out", "--set", r#"controller={kind="open_loop"}"#], tmp.path());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn a_trace_rate_beyond_what_can_be_simulated_is_an_error_not_a_hang() {
    for rate in ["1e20", "1e308"] {
        let started = std::time::Instant::now();
        let (e, _) = bad(|b| b.to_string(), "trace.csv", Some(&format!("second,rate\n0,5\n1,{rate}\n2,3\n")));
        has(&e, &["exp.toml", "`workload`", "beyond the 1e9 one run can simulate", "peak rate"]);
        assert!(started.elapsed().as_secs() < 30, "took {:?}", started.elapsed());
    }
}

#[test]
fn every_template_writes_a_runnable_experiment_and_new_never_overwrites() {
    let tmp = tempfile::tempdir().unwrap();
    for t in ["batched", "local", "cascade-bio", "ipa", "carbon"] {
        let file = format!("{t}.toml");
        let o = basin(&["new", &file, "--template", t], tmp.path());
        assert!(o.status.success(), "{t}: {}", String::from_utf8_lossy(&o.stderr));
        let text = std::fs::read_to_string(tmp.path().join(&file)).unwrap();
        assert!(text.lines().filter(|l| l.trim_start().starts_with('#')).count() >= 3, "{t}: a commented experiment");
        let out = format!("out-{t}");
        let o = basin(&["simulate", &file, "--set", "workload.duration_s=30", "--out", &out], tmp.path());
        assert!(o.status.success(), "{t}: {}", String::from_utf8_lossy(&o.stderr));
        let s: serde_json::Value = serde_json::from_slice(&std::fs::read(tmp.path().join(&out).join("summary.json")).unwrap()).unwrap();
        assert!(s["completed"].as_u64().unwrap() > 0 && s["energy"]["idle_j"].as_f64().unwrap() > 0.0, "{t}: {s}");
        let m: serde_json::Value = serde_json::from_slice(&std::fs::read(tmp.path().join(&out).join("manifest.json")).unwrap()).unwrap();
        assert!(m["assumptions"][0].as_str().unwrap().contains("idle_power_w = 42.5 W: assumed:"), "{t}: {m}");
    }
    let before = std::fs::read(tmp.path().join("ipa.toml")).unwrap();
    let o = basin(&["new", "ipa.toml", "--template", "local"], tmp.path());
    assert!(!o.status.success());
    has(&String::from_utf8_lossy(&o.stderr), &["ipa.toml exists", "does not overwrite"]);
    assert_eq!(std::fs::read(tmp.path().join("ipa.toml")).unwrap(), before);
    assert!(std::fs::read_dir(tmp.path()).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().contains(".tmp")), "temp files left");
}

#[test]
fn completions_for_bash_zsh_and_fish_name_the_subcommands() {
    for shell in ["bash", "zsh", "fish"] {
        let o = basin(&["completions", shell], repo());
        assert!(o.status.success(), "{shell}");
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(
            text.contains("simulate") && text.contains("calibrate") && text.contains("completions"),
            "{shell}: {}",
            &text[..text.len().min(300)]
        );
    }
    assert!(!basin(&["completions", "tcsh"], repo()).status.success());
}

#[test]
fn the_quickstart_declares_its_idle_power_as_an_assumption() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = repo().join("experiments/bursty-batched.toml");
    let o = basin(&["simulate", exp.to_str().unwrap(), "--set", "workload.duration_s=60", "--out", "q"], tmp.path());
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!stdout.contains("idle 0.0 J"), "{stdout}");
    assert!(stdout.contains("idle_power_w = 42.5 W: assumed:"), "{stdout}");
}

#[cfg(feature = "triton")]
#[test]
fn bench_load_names_an_unreachable_server_and_bad_rates() {
    // a port nothing listens on: bound, then released
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let o = basin(&["bench", "load", &url, "--model", "digits_large", "--seconds", "1"], repo());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && !err.contains("panicked"), "{err}");
    has(&err, &[&url, "digits_large"]);
    for bad in [["--rate", "0"], ["--rate", "NaN"], ["--connections", "0"]] {
        let o = basin(&["bench", "load", &url, "--model", "m", bad[0], bad[1]], repo());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && !err.contains("panicked"), "{bad:?}: {err}");
        has(&err, &["--rate and --seconds must be finite and > 0"]);
    }
}
