//! Validation level 0: the replay driver on a virtual clock with cost-table backends
//! (`basin replay --virtual`) is the simulator. For every controller kind, both paths (a local
//! worker pool and a Triton-style batcher), a cascade and a load profile, its outputs equal
//! `basin simulate`'s exactly — so any later simulation-vs-replay error belongs to the model or
//! the host, not to a second copy of the request path.

use std::path::Path;

use basin::io::experiment;
use basin::metrics::RunOutput;

/// An experiment with a cascade (early exit + quality table), a local server and a batched
/// server behind a load profile, so every part of the request path is exercised.
fn write_experiment(dir: &Path, controller: &str) -> std::path::PathBuf {
    let mut quality = String::from("sample,model,confidence,correct\n");
    for s in 0..50 {
        quality += &format!("{s},m,0.95,{}\n{s},ee,{:.3},{}\n", (s % 10 != 0) as u8, 0.2 + 0.015 * s as f64, (s % 3 != 0) as u8);
    }
    std::fs::write(dir.join("quality.csv"), quality).unwrap();
    std::fs::write(dir.join("load.csv"), "rps,service_factor,overhead_ms,energy_factor\n0,1.0,0.2,1.0\n200,1.2,0.5,1.1\n600,1.5,1.0,1.3\n")
        .unwrap();
    let mut costs = String::new();
    for b in 1..=8 {
        for backend in ["onnxruntime", "triton"] {
            costs += &format!(
                "[[cost]]\nmodel = \"m\"\nbackend = \"{backend}\"\ndevice = \"cpu\"\nbatch_size = {b}\nlatency_ms = {}\nenergy_j = {}\ndistribution = \"exponential\"\n",
                2.0 + 0.6 * b as f64,
                0.05 + 0.02 * b as f64
            );
        }
    }
    costs += "[[cost]]\nmodel = \"ee\"\nbackend = \"onnxruntime\"\ndevice = \"cpu\"\nbatch_size = 1\nlatency_ms = 0.4\nenergy_j = 0.004\n";
    let text = format!(
        r#"
name = "virtual-equals-sim"
seed = 11
slo_ms = 40
[workload]
rate_rps = 900
duration_s = 4
[[device]]
name = "cpu"
idle_power_w = 12
{costs}
[[server]]
name = "local"
kind = "local"
model = "m"
backend = "onnxruntime"
device = "cpu"
instances = 2
batch_size = 1
[[server]]
name = "triton"
kind = "batched"
model = "m"
backend = "triton"
device = "cpu"
instances = 2
max_batch_size = 8
max_queue_delay_us = 2000
load_profile = "load.csv"
[early_exit]
model = "ee"
backend = "onnxruntime"
device = "cpu"
[quality]
path = "quality.csv"
[routing]
kind = "shortest_queue"
[controller]
{controller}
[output]
requests = true
batches = true
"#
    );
    let file = dir.join("exp.toml");
    std::fs::write(&file, text).unwrap();
    file
}

fn assert_same(kind: &str, sim: &RunOutput, virt: &RunOutput) {
    let mut vs = virt.summary.clone();
    assert_eq!(vs.mode, "replay_virtual");
    vs.mode = sim.summary.mode.clone();
    assert_eq!(sim.summary, vs, "{kind}: summary");
    assert_eq!(sim.timeseries, virt.timeseries, "{kind}: time series");
    assert_eq!(sim.requests, virt.requests, "{kind}: request records");
    assert_eq!(sim.batches, virt.batches, "{kind}: batch records");
    assert!(sim.summary.completed > 100, "{kind}: the run served requests");
    let batched = sim.batches.as_ref().unwrap();
    assert!(batched.server.contains(&0) && batched.server.contains(&1), "{kind}: both paths served batches");
    assert!(sim.batches.as_ref().unwrap().size.iter().any(|&b| b > 1), "{kind}: the batcher formed batches");
}

fn check(kind: &str, controller: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = write_experiment(dir.path(), controller);
    let loaded = experiment::load(&file, &[], None).unwrap_or_else(|e| panic!("{kind}: {e}"));
    let seed = loaded.experiment.seed;
    let sim = basin::sim::run(&loaded.spec, seed);
    let virt = basin::replay::run_virtual(&loaded.spec, seed).unwrap();
    assert_same(kind, &sim, &virt.output);
    // (the histogram's lowest value is 1 ns)
    assert!(virt.extras.schedule_error_ms.max <= 1e-6, "{kind}: a virtual clock dispatches every arrival on time");
}

#[test]
fn open_loop() {
    check("open_loop", "kind = \"open_loop\"");
}

#[test]
fn static_threshold() {
    check("static_threshold", "kind = \"static_threshold\"\nthreshold = 0.5");
}

#[test]
fn bio_threshold() {
    check("bio_threshold", "kind = \"bio_threshold\"\ntau0 = 0.6\ntau_inf = 0.2\nk = 0.3");
}

#[test]
fn bio_threshold_with_feedback() {
    check(
        "bio_threshold+feedback",
        "kind = \"bio_threshold\"\ntau0 = 0.6\ntau_inf = 0.2\nk = 0.3\n[controller.feedback]\nwindow_s = 1.0\nslo_violation_target = 0.05",
    );
}

#[test]
fn ipa() {
    check("ipa", "kind = \"ipa\"");
}

#[test]
fn fa2_low() {
    check("fa2_low", "kind = \"fa2_low\"");
}

#[test]
fn fa2_high() {
    check("fa2_high", "kind = \"fa2_high\"");
}

#[test]
fn rim_high() {
    check("rim_high", "kind = \"rim_high\"");
}

#[test]
fn qlearn() {
    check("qlearn", "kind = \"qlearn\"");
}

#[test]
fn carbon() {
    check("carbon", "kind = \"carbon\"");
}

/// Every kind the configuration knows is covered above.
#[test]
fn every_controller_kind_is_covered() {
    let covered = ["open_loop", "static_threshold", "bio_threshold", "ipa", "fa2_low", "fa2_high", "rim_high", "qlearn", "carbon"];
    let mut kinds: Vec<&str> = basin::model::controller::ControllerConfig::KINDS.to_vec();
    kinds.sort();
    let mut c = covered.to_vec();
    c.sort();
    assert_eq!(kinds, c);
}

/// The CLI: `basin replay --virtual` writes the same metrics and time series as `basin simulate`.
#[test]
fn cli_virtual_replay_equals_simulate() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_experiment(dir.path(), "kind = \"bio_threshold\"\ntau0 = 0.6\ntau_inf = 0.2\nk = 0.3");
    let bin = env!("CARGO_BIN_EXE_basin");
    let (a, b) = (dir.path().join("sim"), dir.path().join("virt"));
    for (args, out) in [(vec!["simulate"], &a), (vec!["replay", "--virtual"], &b)] {
        let st = std::process::Command::new(bin).args(&args).arg(&file).arg("--out").arg(out).output().unwrap();
        assert!(st.status.success(), "{args:?}: {}", String::from_utf8_lossy(&st.stderr));
    }
    let read = |d: &Path| -> serde_json::Map<String, serde_json::Value> {
        let mut m: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&std::fs::read_to_string(d.join("summary.json")).unwrap()).unwrap();
        for k in [
            "mode",
            "schedule_error_ms",
            "energy_meter",
            "failed_reasons",
            "interrupted",
            "ignored_reconfigs",
            "scored_requests",
            "host_drift",
            "host_probe",
            "replay_scaling",
        ] {
            m.remove(k);
        }
        m
    };
    assert_eq!(read(&a), read(&b));
    for f in ["timeseries.parquet", "requests.parquet", "batches.parquet"] {
        assert_eq!(std::fs::read(a.join(f)).unwrap(), std::fs::read(b.join(f)).unwrap(), "{f}");
    }
}
