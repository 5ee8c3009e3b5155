//! The real-time replay driver against deterministic backends (mock models, mock meter), its
//! fault paths (errors, a dying server, a stalled server, a stop request), and a short real
//! replay on ONNX Runtime gated by BASIN_REQUIRE_HW / the library's presence.
//!
//! No assertion depends on timing: the tests check that outputs are complete and consistent
//! (every request accounted for exactly once, failures counted with a reason, the run ends).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use basin::hw::backend::*;
use basin::hw::meter::{EnergyMeter, EnergyReading, MeterError, MeterInfo, MeterKind};
use basin::io::experiment;
use basin::io::outputs;
use basin::model::request::Outcome;
use basin::replay::{self, BackendFactory, Dataset, ReplayOptions, ReplayResult};
use basin::spec::SimSpec;

const FEATURES: usize = 8;

fn dataset(rows: usize) -> Dataset {
    let mut features = Vec::new();
    let mut labels = Vec::new();
    for r in 0..rows {
        for j in 0..FEATURES {
            features.push(((r * 7 + j * 3) % 17) as f32);
        }
        labels.push((r % 3) as u32);
    }
    Dataset { dim: FEATURES, features, labels }
}

/// Writes an experiment (constant-rate workload, inline costs, a quality table) and loads it.
fn spec(dir: &Path, server: &str, controller: &str, extra: &str) -> (SimSpec, u64) {
    let mut q = String::from("sample,model,confidence,correct\n");
    for s in 0..20 {
        q += &format!("{s},m,0.9,1\n{s},ee,{:.2},{}\n", 0.3 + 0.03 * s as f64, s % 2);
    }
    std::fs::write(dir.join("quality.csv"), q).unwrap();
    let mut costs = String::new();
    for b in 1..=4 {
        for backend in ["mock", "mockremote"] {
            costs += &format!(
                "[[cost]]\nmodel = \"m\"\nbackend = \"{backend}\"\ndevice = \"cpu\"\nbatch_size = {b}\nlatency_ms = {}\nenergy_j = {}\n",
                1.0 + 0.2 * b as f64,
                0.1 * b as f64
            );
        }
    }
    costs += "[[cost]]\nmodel = \"ee\"\nbackend = \"mock\"\ndevice = \"cpu\"\nbatch_size = 1\nlatency_ms = 0.3\nenergy_j = 0.01\n";
    let text = format!(
        r#"
name = "replay-test"
seed = 5
slo_ms = 100
[workload]
rate_rps = 150
duration_s = 1
[[device]]
name = "cpu"
idle_power_w = 0
{costs}
{server}
[early_exit]
model = "ee"
backend = "mock"
device = "cpu"
[quality]
path = "quality.csv"
[controller]
{controller}
[output]
requests = true
batches = true
{extra}
"#
    );
    let f = dir.join("exp.toml");
    std::fs::write(&f, text).unwrap();
    let l = experiment::load(&f, &[], None).unwrap();
    (l.spec, l.experiment.seed)
}

const LOCAL: &str = "[[server]]\nname = \"a\"\nkind = \"batched\"\nmodel = \"m\"\nbackend = \"mock\"\ndevice = \"cpu\"\ninstances = 2\nmax_batch_size = 4\nmax_queue_delay_us = 2000\n";
const REMOTE: &str = "[[server]]\nname = \"b\"\nkind = \"batched\"\nmodel = \"m\"\nbackend = \"mockremote\"\ndevice = \"cpu\"\ninstances = 1\nmax_batch_size = 4\nmax_queue_delay_us = 2000\n";

/// What the mock models do on each call.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    None,
    /// Every n-th call fails.
    ErrorEvery(u64),
    /// After n calls (of the whole factory), the "server" is gone: connection refused.
    DieAfter(u64),
    /// After n calls, calls block far longer than the drain timeout.
    StallAfter(u64),
}

struct Faulty {
    inner: MockBackend,
    fault: Fault,
    calls: Arc<AtomicU64>,
}

impl InferenceBackend for Faulty {
    fn info(&self) -> &BackendInfo {
        self.inner.info()
    }
    fn inputs(&self) -> &[TensorSpec] {
        self.inner.inputs()
    }
    fn prepare(&mut self, b: usize) -> Result<(), BackendError> {
        self.inner.prepare(b)
    }
    fn set_inputs(&mut self, d: &InputData) -> Result<(), BackendError> {
        self.inner.set_inputs(d)
    }
    fn infer(&mut self) -> Result<InferOutput, BackendError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        match self.fault {
            Fault::ErrorEvery(k) if n.is_multiple_of(k) => {
                return Err(BackendError::Http { url: "mock://".into(), status: 500, message: format!("injected error on call {n}") });
            }
            Fault::DieAfter(k) if n > k => {
                return Err(BackendError::Unreachable { url: "mock://".into(), reason: "connection refused".into() });
            }
            Fault::StallAfter(k) if n > k => std::thread::sleep(Duration::from_secs(3600)),
            _ => {}
        }
        self.inner.infer()
    }
}

struct Mocks {
    fault: Fault,
    calls: Arc<AtomicU64>,
}

impl Mocks {
    fn new(fault: Fault) -> Self {
        Mocks { fault, calls: Arc::new(AtomicU64::new(0)) }
    }
}

impl BackendFactory for Mocks {
    fn open(&self, model: &str, _backend: &str) -> Result<Box<dyn InferenceBackend>, BackendError> {
        let latency = MockLatency::Linear { base: Duration::from_micros(300), per_item: Duration::from_micros(50) };
        let inner = MockBackend::classifier(model, FEATURES, 3, latency).with_sleeper(Box::new(ThreadSleep));
        // the early-exit model never fails: faults are the server's
        let fault = if model == "ee" { Fault::None } else { self.fault };
        Ok(Box::new(Faulty { inner, fault, calls: if model == "ee" { Arc::new(AtomicU64::new(0)) } else { self.calls.clone() } }))
    }
    fn batches_remotely(&self, backend: &str) -> bool {
        backend == "mockremote"
    }
}

/// A constant-power meter on the wall clock (a stand-in for a real counter).
struct WallMeter {
    info: MeterInfo,
    t0: std::time::Instant,
    watts: f64,
}

impl EnergyMeter for WallMeter {
    fn info(&self) -> &MeterInfo {
        &self.info
    }
    fn read(&mut self) -> Result<EnergyReading, MeterError> {
        let at = self.t0.elapsed();
        Ok(EnergyReading { energy_j: self.watts * at.as_secs_f64(), at })
    }
}

fn run_with(spec: &SimSpec, seed: u64, f: &dyn BackendFactory, opts: &ReplayOptions) -> ReplayResult {
    let info = MeterInfo { kind: MeterKind::Mock, name: "test:wall-clock 50 W".into(), estimated: true, domains: vec![] };
    let mut meter = WallMeter { info, t0: std::time::Instant::now(), watts: 50.0 };
    let m: &mut dyn EnergyMeter = &mut meter;
    replay::run(spec, seed, f, Some(Arc::new(dataset(20))), m, opts).unwrap()
}

fn opts() -> ReplayOptions {
    ReplayOptions { drain_timeout: Duration::from_millis(800), early_exit_backend: "mock".into(), ..ReplayOptions::default() }
}

/// Every request appears exactly once, and the summary's counts agree with the rows.
fn check_complete(res: &ReplayResult) {
    let s = &res.output.summary;
    let r = res.output.requests.as_ref().expect("requests recorded");
    assert_eq!(s.mode, "replay");
    assert_eq!(r.len() as u64, s.requests, "one row per request");
    let mut ids = r.id.clone();
    ids.dedup();
    assert_eq!(ids.len(), r.len(), "no duplicate rows");
    let count = |o: Outcome| r.decision.iter().filter(|&&d| d == o).count() as u64;
    assert_eq!(count(Outcome::Skipped), s.skipped);
    assert_eq!(count(Outcome::Rejected), s.rejected);
    assert_eq!(count(Outcome::Failed), s.failed);
    assert_eq!(count(Outcome::Admitted), s.completed);
    assert_eq!(s.requests, s.skipped + s.rejected + s.completed + s.failed, "every request has one fate");
    for (i, d) in r.decision.iter().enumerate() {
        if *d == Outcome::Failed {
            assert!(r.reason[i].as_deref().is_some_and(|x| !x.is_empty()), "a failed request has a reason");
        }
    }
    assert_eq!(res.extras.schedule_error_ms.n, s.requests, "schedule error measured for every arrival");
    let se = &res.extras.schedule_error_ms;
    assert!(se.p50 <= se.p99 && se.p99 <= se.max);
    // the files are complete and readable
    let dir = tempfile::tempdir().unwrap();
    outputs::write_run_files(dir.path(), &res.output).unwrap();
    let df = outputs::read_parquet(&dir.path().join(outputs::REQUESTS)).unwrap();
    assert_eq!(df.height() as u64, s.requests);
    assert!(dir.path().join(outputs::TIMESERIES).is_file());
}

#[test]
fn local_replay_mirrors_the_simulation_arrivals_and_is_complete() {
    let dir = tempfile::tempdir().unwrap();
    let (spec, seed) = spec(dir.path(), LOCAL, "kind = \"open_loop\"", "");
    let res = run_with(&spec, seed, &Mocks::new(Fault::None), &opts());
    check_complete(&res);
    let s = &res.output.summary;
    assert_eq!(s.failed, 0);
    assert_eq!(s.completed, s.admitted);
    assert!(s.batches > 0 && s.mean_batch_size.is_some());
    assert!(!res.extras.interrupted);
    // the same arrivals and samples as the simulation of the same spec and seed
    let sim = basin::sim::run(&spec, seed);
    let (a, b) = (sim.requests.unwrap(), res.output.requests.as_ref().unwrap().clone());
    assert_eq!(a.arrival_s, b.arrival_s, "identical arrival times");
    assert_eq!(sim.summary.requests, s.requests);
    // correctness came from the model output against the data set's labels
    assert_eq!(res.extras.scored_requests, s.completed);
    assert!(s.accuracy.is_some());
    // energy from the meter: 50 W constant over the run
    assert!(s.energy_j > 0.0);
    assert!(res.output.summary.energy.estimated, "the meter's estimate label is carried");
    assert!(
        (s.energy_j / s.duration_s - 50.0).abs() < 10.0,
        "mock meter energy integrates to its power: {} J over {} s",
        s.energy_j,
        s.duration_s
    );
}

#[test]
fn bio_controller_uses_real_early_exit_confidence() {
    let dir = tempfile::tempdir().unwrap();
    let (spec, seed) = spec(dir.path(), LOCAL, "kind = \"bio_threshold\"\ntau0 = 0.4\nk = 0.0\ntau_inf = 0.4", "");
    let res = run_with(&spec, seed, &Mocks::new(Fault::None), &opts());
    check_complete(&res);
    let s = &res.output.summary;
    assert_eq!(s.failed, 0);
    assert_eq!(s.skipped + s.admitted + s.rejected, s.requests);
    // the threshold is in the time series
    assert!(res.output.timeseries.tau.iter().any(|t| t.is_some()));
}

#[test]
fn remote_errors_are_failed_with_a_reason_and_the_run_continues() {
    let dir = tempfile::tempdir().unwrap();
    let (spec, seed) = spec(dir.path(), REMOTE, "kind = \"open_loop\"", "");
    let res = run_with(&spec, seed, &Mocks::new(Fault::ErrorEvery(4)), &opts());
    check_complete(&res);
    let s = &res.output.summary;
    assert!(s.failed > 0, "injected errors are counted");
    assert!(s.completed > 0, "the run continued after errors");
    assert!(res.extras.failed_reasons.keys().any(|k| k.contains("mockremote")), "{:?}", res.extras.failed_reasons);
    let r = res.output.requests.as_ref().unwrap();
    assert!(r.reason.iter().flatten().any(|x| x.contains("injected error")));
}

#[test]
fn a_dying_server_fails_the_rest_and_outputs_are_complete() {
    let dir = tempfile::tempdir().unwrap();
    for server in [LOCAL, REMOTE] {
        let (spec, seed) = spec(dir.path(), server, "kind = \"open_loop\"", "");
        let res = run_with(&spec, seed, &Mocks::new(Fault::DieAfter(20)), &opts());
        check_complete(&res);
        let s = &res.output.summary;
        assert!(s.failed > 0 && s.completed > 0);
        let r = res.output.requests.as_ref().unwrap();
        assert!(r.reason.iter().flatten().any(|x| x.contains("not reachable")), "reason names the cause");
    }
}

#[test]
fn a_stalled_server_times_out_in_flight_requests_without_hanging() {
    let dir = tempfile::tempdir().unwrap();
    for server in [LOCAL, REMOTE] {
        let (spec, seed) = spec(dir.path(), server, "kind = \"open_loop\"", "");
        let res = run_with(&spec, seed, &Mocks::new(Fault::StallAfter(10)), &opts());
        check_complete(&res);
        let s = &res.output.summary;
        assert!(s.failed > 0, "stalled requests are failed at the drain deadline");
        assert!(res.extras.failed_reasons.keys().any(|k| k.starts_with("drain timeout")), "{:?}", res.extras.failed_reasons);
    }
}

#[test]
fn a_stop_request_ends_arrivals_drains_and_writes_complete_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let (mut spec, seed) = spec(dir.path(), LOCAL, "kind = \"open_loop\"", "");
    if let basin::model::arrivals::ArrivalSpec::Rate { rates_rps, .. } = &mut spec.arrivals {
        *rates_rps = vec![150.0; 30];
    }
    let o = opts();
    let stop = o.stop.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::SeqCst);
    });
    let res = run_with(&spec, seed, &Mocks::new(Fault::None), &o);
    t.join().unwrap();
    check_complete(&res);
    assert!(res.extras.interrupted);
    assert!((res.output.summary.requests as f64) < spec.arrivals.expected_requests(), "arrivals stopped early");
    assert_eq!(res.output.summary.failed, 0, "in-flight requests drained");
}

#[test]
fn time_compression_keeps_the_same_arrivals_in_simulation_and_replay() {
    let dir = tempfile::tempdir().unwrap();
    let (spec, seed) = spec(dir.path(), LOCAL, "kind = \"open_loop\"", "");
    let scaled = replay::scaled_spec(&spec, seed, 2.0, 1.0, None).unwrap();
    let base = basin::sim::run(&spec, seed).requests.unwrap();
    let fast = basin::sim::run(&scaled, seed).requests.unwrap();
    assert_eq!(base.len(), fast.len());
    for (a, b) in base.arrival_s.iter().zip(&fast.arrival_s) {
        assert!((a / 2.0 - b).abs() < 1e-6);
    }
    let res = run_with(&scaled, seed, &Mocks::new(Fault::None), &opts());
    check_complete(&res);
    assert_eq!(res.output.requests.as_ref().unwrap().arrival_s, fast.arrival_s);
}

// ---- real hardware: ONNX Runtime on the digits model --------------------------------------

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[cfg(feature = "ort")]
#[test]
fn short_real_replay_on_onnx_runtime() {
    let require = std::env::var("BASIN_REQUIRE_HW").is_ok_and(|v| v == "1");
    let lib = std::env::var_os("BASIN_ORT_LIB").map(PathBuf::from).unwrap_or_else(|| repo().join(".cache/onnxruntime/libonnxruntime.so"));
    let models = std::env::var_os("BASIN_MODELS_DIR").map(PathBuf::from).unwrap_or_else(|| repo().join(".cache/models"));
    if !lib.is_file() || !models.join("digits_small.onnx").is_file() || !models.join("quality.csv").is_file() {
        let msg = format!("ONNX Runtime ({}) or the digits models ({}) missing", lib.display(), models.display());
        assert!(!require, "BASIN_REQUIRE_HW=1: {msg}");
        eprintln!("skipping: {msg} (scripts/setup-ort.sh, scripts/build-models.sh)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
name = "real-short"
seed = 3
slo_ms = 50
[workload]
rate_rps = 100
duration_s = 2
[[device]]
name = "cpu"
idle_power_w = 0
[[cost]]
model = "digits_small"
backend = "onnxruntime"
device = "cpu"
batch_size = 1
latency_ms = 0.1
energy_j = 0.001
[[cost]]
model = "digits_small"
backend = "onnxruntime"
device = "cpu"
batch_size = 2
latency_ms = 0.1
energy_j = 0.001
[[server]]
name = "local"
kind = "local"
model = "digits_small"
backend = "onnxruntime"
device = "cpu"
instances = 1
batch_size = 2
[quality]
path = "{q}"
[output]
requests = true
"#,
        q = models.join("quality.csv").display()
    );
    let f = dir.path().join("exp.toml");
    std::fs::write(&f, text).unwrap();
    let l = experiment::load(&f, &[], None).unwrap();
    let sec = basin::replay::real::ReplaySection {
        model_dir: models.display().to_string(),
        ort_lib: lib.display().to_string(),
        ..Default::default()
    };
    let backends = basin::replay::real::RealBackends::new(&sec, Path::new("/"));
    let data = Arc::new(Dataset::load_csv(&models.join("digits_test.csv")).unwrap());
    let mut meter = basin::hw::meter::open(basin::hw::meter::MeterChoice::Auto).unwrap();
    let res = replay::run(&l.spec, l.experiment.seed, &backends, Some(data), meter.as_mut(), &ReplayOptions::default()).unwrap();
    check_complete(&res);
    let s = &res.output.summary;
    assert_eq!(s.failed, 0);
    assert_eq!(res.extras.scored_requests, s.completed);
    let acc = s.accuracy.unwrap();
    assert!(acc > 0.5, "digits_small is a real classifier (accuracy {acc})");
    eprintln!("real replay: {} requests, accuracy {acc:.3}, schedule error {:?}", s.requests, res.extras.schedule_error_ms);
}
