//! `basin calibrate`: the measurement loop on deterministic doubles (stop rule, quantiles,
//! energy per batch, exactly), the error paths (nothing half-written), and, with the ONNX
//! Runtime library and the project's models present, a real calibration whose cost table the
//! simulator runs. Without those assets the real test prints a notice and passes, unless
//! `BASIN_REQUIRE_HW=1` (CI), where it fails.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use basin::calibrate::config::{MeasureConfig, Timing};
use basin::calibrate::measure::{MeasureError, StopReason, measure_point};
use basin::calibrate::{self, Options};
use basin::hw::backend::*;
use basin::hw::meter::MockMeter;

fn require_hw() -> bool {
    std::env::var("BASIN_REQUIRE_HW").is_ok_and(|v| v == "1")
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn models_dir() -> PathBuf {
    std::env::var_os("BASIN_MODELS_DIR").map(PathBuf::from).unwrap_or_else(|| repo().join(".cache/models"))
}

fn ort_lib() -> PathBuf {
    std::env::var_os("BASIN_ORT_LIB").map(PathBuf::from).unwrap_or_else(|| repo().join(".cache/onnxruntime/libonnxruntime.so"))
}

/// Some(()) when the ONNX Runtime library and the digits models exist; a notice otherwise.
fn hw_assets() -> Option<()> {
    let need = [ort_lib(), models_dir().join("digits_small.onnx"), models_dir().join("digits_test.csv"), models_dir().join("quality.csv")];
    if let Some(missing) = need.iter().find(|p| !p.is_file()) {
        let msg = format!(
            "{} not found (run scripts/setup-ort.sh and scripts/build-models.sh, or set BASIN_ORT_LIB / BASIN_MODELS_DIR)",
            missing.display()
        );
        assert!(!require_hw(), "BASIN_REQUIRE_HW=1: {msg}");
        eprintln!("skipping: {msg}");
        return None;
    }
    Some(())
}

fn cfg(min_reps: u32, max_reps: u32, window: u32, stable: u32, tol: f64) -> MeasureConfig {
    MeasureConfig {
        warmup: 2,
        warmup_max_s: 60.0,
        min_repetitions: min_reps,
        max_repetitions: max_reps,
        window_batches: window,
        window_s: 0.0,
        stable_windows: stable,
        tolerance: tol,
        max_time_s: 3600.0,
        min_time_s: 0.0,
        timing: Timing::Backend,
        samples_max: 1000,
    }
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

#[test]
fn mock_point_quantiles_and_energy_per_batch_are_exact() {
    let lat = MockLatency::Table([(4usize, ms(5))].into_iter().collect());
    let mut backend = MockBackend::classifier("m", 8, 3, lat);
    // Reads at the start and the end of each window; the gaps between windows are not counted.
    let mut meter = MockMeter::replay(vec![(ms(0), 0.0), (ms(10), 0.8), (ms(11), 0.9), (ms(21), 1.7), (ms(22), 1.8), (ms(32), 2.6)]);
    let mut ticks = 0;
    let p = measure_point(&mut backend, &mut meter, 4, &cfg(6, 100, 2, 3, 0.01), &mut |_| ticks += 1).unwrap();
    assert_eq!(p.stop, StopReason::Stable);
    assert_eq!(p.batches(), 6);
    assert_eq!(p.warmup_batches, 2);
    assert_eq!(backend.calls(), 8);
    assert_eq!(p.windows.len(), 3);
    assert_eq!(ticks, 3);
    assert!(p.samples_ms.iter().all(|&s| s == 5.0));
    let st = &p.stats;
    assert_eq!((st.min_ms, st.p50_ms, st.p99_ms, st.max_ms, st.mean_ms, st.std_ms), (5.0, 5.0, 5.0, 5.0, 5.0, 0.0));
    assert!((p.energy_j - 2.4).abs() < 1e-12, "{}", p.energy_j);
    assert!((p.energy_per_batch_j() - 0.4).abs() < 1e-12);
    assert!((p.meter_elapsed_s - 0.030).abs() < 1e-12);
    assert!((p.mean_power_w().unwrap() - 80.0).abs() < 1e-9);
    for w in &p.windows {
        assert_eq!(w.batches, 2);
        assert!((w.energy_j - 0.8).abs() < 1e-12);
    }
}

/// A backend that reports a scripted latency sequence (ms), cycling.
struct Scripted {
    info: BackendInfo,
    specs: Vec<TensorSpec>,
    seq: Vec<f64>,
    i: usize,
    batch: usize,
}

impl Scripted {
    fn new(seq: Vec<f64>) -> Self {
        let info = BackendInfo {
            backend: "scripted".into(),
            model: "s".into(),
            device: "cpu".into(),
            provider: "-".into(),
            version: "-".into(),
            input_path: "-".into(),
        };
        Scripted { info, specs: vec![], seq, i: 0, batch: 0 }
    }
}

impl InferenceBackend for Scripted {
    fn info(&self) -> &BackendInfo {
        &self.info
    }
    fn inputs(&self) -> &[TensorSpec] {
        &self.specs
    }
    fn prepare(&mut self, b: usize) -> Result<(), BackendError> {
        self.batch = b;
        Ok(())
    }
    fn set_inputs(&mut self, _: &InputData) -> Result<(), BackendError> {
        Ok(())
    }
    fn infer(&mut self) -> Result<InferOutput, BackendError> {
        let v = self.seq[self.i % self.seq.len()];
        self.i += 1;
        Ok(InferOutput { batch_size: self.batch, num_classes: 1, probs: vec![1.0; self.batch], elapsed_ms: v })
    }
}

#[test]
fn stop_rule_waits_for_min_repetitions_and_stable_windows() {
    let power = || MockMeter::constant_power(10.0, ms(1));
    // Constant latency: stable as soon as 3 windows exist and 10 batches were measured.
    let mut b = Scripted::new(vec![1.0]);
    let p = measure_point(&mut b, &mut power(), 1, &cfg(10, 1000, 2, 3, 0.05), &mut |_| {}).unwrap();
    assert_eq!((p.stop, p.batches(), p.windows.len()), (StopReason::Stable, 10, 5));

    // Warm-up is excluded (2 slow calls), then steady: the same.
    let mut seq = vec![100.0, 100.0];
    seq.extend(std::iter::repeat_n(1.0, 998));
    let mut b = Scripted::new(seq);
    let p = measure_point(&mut b, &mut power(), 1, &cfg(4, 1000, 2, 3, 0.05), &mut |_| {}).unwrap();
    assert_eq!((p.stop, p.batches()), (StopReason::Stable, 6));
    assert_eq!(p.stats.max_ms, 1.0);

    // A latency that keeps growing never settles: the cap stops it, with that reason.
    let mut b = Scripted::new((1..=10_000).map(f64::from).collect());
    let p = measure_point(&mut b, &mut power(), 1, &cfg(4, 40, 2, 3, 0.001), &mut |_| {}).unwrap();
    assert_eq!((p.stop, p.batches()), (StopReason::MaxRepetitions, 40));
    // The window p50s are of all batches so far: 1..=2k has median k + 0.5.
    let p50s: Vec<f64> = p.windows.iter().map(|w| w.p50_ms).collect();
    assert_eq!(&p50s[..3], &[3.5, 4.5, 5.5]); // warm-up took 1 and 2

    // Alternating 1/3 ms with zero tolerance: p50 is 2 at every window, p99 is 2.98 after the
    // first window and 3 from the second on, so windows 2-4 agree: 8 batches.
    let mut b = Scripted::new(vec![1.0, 3.0]);
    let p = measure_point(&mut b, &mut power(), 1, &cfg(2, 1000, 2, 3, 0.0), &mut |_| {}).unwrap();
    assert_eq!((p.stop, p.batches()), (StopReason::Stable, 8));
    assert_eq!((p.stats.p50_ms, p.stats.min_ms, p.stats.max_ms), (2.0, 1.0, 3.0));

    // The time cap.
    let mut b = Scripted::new(vec![1.0]);
    let mut c = cfg(1_000_000_000, 1_000_000_000, 1, 3, 0.05);
    c.max_time_s = 0.05;
    c.timing = Timing::Wall;
    let t0 = Instant::now();
    let p = measure_point(&mut b, &mut power(), 1, &c, &mut |_| {}).unwrap();
    assert_eq!(p.stop, StopReason::MaxTime);
    assert!(t0.elapsed() < Duration::from_secs(30));
}

#[test]
fn inputs_that_do_not_match_the_model_are_a_clear_error() {
    // A model whose batch dimension is fixed at 1, calibrated at batch size 2.
    let spec = TensorSpec { name: "input".into(), dtype: DType::F32, shape: vec![1, 4] };
    let mut b = MockBackend::new("fixed", vec![spec], 3, MockLatency::Linear { base: ms(1), per_item: ms(0) });
    let mut meter = MockMeter::constant_power(10.0, ms(1));
    let e = measure_point(&mut b, &mut meter, 2, &cfg(1, 10, 1, 1, 0.1), &mut |_| {}).unwrap_err();
    assert!(matches!(e, MeasureError::Backend(BackendError::InputMismatch { .. })), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("fixed") && msg.contains("batch"), "{msg}");

    // A backend that answers with another batch size than asked.
    struct Wrong(Scripted);
    impl InferenceBackend for Wrong {
        fn info(&self) -> &BackendInfo {
            self.0.info()
        }
        fn inputs(&self) -> &[TensorSpec] {
            self.0.inputs()
        }
        fn prepare(&mut self, b: usize) -> Result<(), BackendError> {
            self.0.prepare(b)
        }
        fn set_inputs(&mut self, d: &InputData) -> Result<(), BackendError> {
            self.0.set_inputs(d)
        }
        fn infer(&mut self) -> Result<InferOutput, BackendError> {
            let mut o = self.0.infer()?;
            o.batch_size = 1;
            Ok(o)
        }
    }
    let mut w = Wrong(Scripted::new(vec![1.0]));
    let e = measure_point(&mut w, &mut meter, 4, &cfg(1, 10, 1, 1, 0.1), &mut |_| {}).unwrap_err();
    assert!(e.to_string().contains("returned a batch of 1 for a request of 4"), "{e}");
}

/// Writes a calibration file in a temp dir; returns (dir, file, out).
fn cal_file(body: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("cal.toml");
    std::fs::write(&f, body).unwrap();
    let out = dir.path().join("out");
    (dir, f, out)
}

fn run_err(f: &Path, out: &Path) -> String {
    let opts = Options { config: f.to_path_buf(), out: Some(out.to_path_buf()), quick: true, overrides: vec![], progress: false };
    let e = match calibrate::run(&opts) {
        Ok(_) => panic!("calibration of {} should fail", f.display()),
        Err(e) => format!("{e:#}"),
    };
    assert!(!out.exists(), "{} was left behind after: {e}", out.display());
    let leftovers: Vec<_> = std::fs::read_dir(out.parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().starts_with(".out"))
        .collect();
    assert!(leftovers.is_empty(), "temporary output left behind: {leftovers:?}");
    e
}

#[test]
fn a_missing_onnx_file_is_named() {
    let (_d, f, out) = cal_file("batch_sizes = [1]\n[models]\nm = \"nope/missing.onnx\"\n[backends.onnxruntime]\n");
    let e = run_err(&f, &out);
    assert!(e.contains("ONNX file not found") && e.contains("missing.onnx") && e.contains("models.m"), "{e}");
}

#[test]
fn a_corrupt_onnx_file_is_a_clear_error() {
    if hw_assets().is_none() {
        return;
    }
    let (d, f, out) = cal_file(&format!(
        "batch_sizes = [1]\n[models]\nm = \"bad.onnx\"\n[backends.onnxruntime]\nlibrary = \"{}\"\n[meter]\nidle_s = 0\n",
        ort_lib().display()
    ));
    std::fs::write(d.path().join("bad.onnx"), b"this is not a protobuf \x00\x01\x02").unwrap();
    let e = run_err(&f, &out);
    assert!(e.contains("cannot load ONNX model") && e.contains("bad.onnx"), "{e}");
}

fn dummy_model(d: &Path) {
    std::fs::write(d.join("m.onnx"), b"unused: served by the (absent) Triton").unwrap();
}

#[test]
fn triton_down_is_connection_refused_not_a_hang() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port(); // closed again
    let (d, f, out) = cal_file(&format!(
        "batch_sizes = [1]\n[models]\nm = \"m.onnx\"\n[backends.triton]\nurl = \"http://127.0.0.1:{port}\"\n[meter]\nkind = \"estimate\"\nidle_s = 0\n"
    ));
    dummy_model(d.path());
    let t0 = Instant::now();
    let e = run_err(&f, &out);
    assert!(e.contains("not reachable") && e.contains(&port.to_string()), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(20));
}

#[test]
fn a_triton_that_never_answers_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accepts connections and holds them open without ever answering.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten() {
            held.push(s);
        }
    });
    let (d, f, out) = cal_file(&format!(
        "batch_sizes = [1]\n[models]\nm = \"m.onnx\"\n[backends.triton]\nurl = \"http://127.0.0.1:{port}\"\nconnect_timeout_s = 1\nrequest_timeout_s = 0.5\n[meter]\nkind = \"estimate\"\nidle_s = 0\n"
    ));
    dummy_model(d.path());
    let t0 = Instant::now();
    let e = run_err(&f, &out);
    assert!(e.contains("timed out after 0.5 s"), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(20));
}

#[test]
fn cuda_or_nvml_without_a_gpu_is_a_clear_error() {
    if Path::new("/proc/driver/nvidia").exists() {
        eprintln!("skipping: this host has an NVIDIA driver");
        return;
    }
    let (d, f, out) = cal_file(
        "batch_sizes = [1]\n[models]\nm = \"m.onnx\"\n[backends.onnxruntime]\nprovider = \"cuda\"\n[meter]\nkind = \"estimate\"\nidle_s = 0\n",
    );
    dummy_model(d.path());
    let e = run_err(&f, &out);
    assert!(e.contains("CUDA provider was requested") && e.contains("no NVIDIA GPU"), "{e}");

    let (d, f, out) = cal_file("batch_sizes = [1]\n[models]\nm = \"m.onnx\"\n[backends.onnxruntime]\n[meter]\nkind = \"nvml\"\n");
    dummy_model(d.path());
    let e = run_err(&f, &out);
    assert!(e.contains("NVML") && (e.contains("without the `nvml` feature") || e.contains("not available on this host")), "{e}");
}

#[test]
fn a_real_onnx_runtime_calibration_feeds_the_simulator() {
    if hw_assets().is_none() {
        return;
    }
    let m = models_dir();
    let (d, f, out) = cal_file(&format!(
        "batch_sizes = [1, 2, 4]\n\
         [models]\ndigits_small = \"{m}/digits_small.onnx\"\ndigits_tiny = \"{m}/digits_tiny.onnx\"\n\
         [backends.onnxruntime]\nlibrary = \"{lib}\"\n\
         [measure]\nmin_repetitions = 20\nmax_time_s = 0.5\nmin_time_s = 0.2\nwindow_s = 0.05\n\
         [meter]\nkind = \"auto\"\nidle_s = 0.2\n\
         [quality]\nmodels = [\"digits_small\", \"digits_tiny\"]\ntest_csv = \"{m}/digits_test.csv\"\nreference = \"{m}/quality.csv\"\n",
        m = m.display(),
        lib = ort_lib().display()
    ));
    let opts = Options { config: f.clone(), out: Some(out.clone()), quick: false, overrides: vec![], progress: false };
    let (dir, cal) = calibrate::run(&opts).unwrap();
    assert_eq!(dir, out);
    assert_eq!(cal.measured.len(), 6);
    for name in
        ["cost.csv", "devices.csv", "quality.csv", "points.csv", "manifest.toml", "latency_per_request.svg", "energy_per_request.png"]
    {
        assert!(out.join(name).is_file(), "{name} missing");
    }
    // Quality recomputed by basin equals build_models' table.
    let chk = cal.quality.as_ref().unwrap().summary.check.as_ref().unwrap();
    assert!(chk.equal && chk.rows_compared == 2 * 540, "{chk:?}");
    for p in &cal.measured {
        assert!(p.point.stats.p50_ms > 0.0 && p.point.energy_per_batch_j() >= 0.0);
        assert!(out.join(format!("samples/{}-onnxruntime-b{}.txt", p.model, p.point.batch_size)).is_file());
    }
    let manifest = std::fs::read_to_string(out.join("manifest.toml")).unwrap();
    assert!(manifest.contains("onnxruntime_version = \"onnxruntime ") && manifest.contains("git_revision"), "{manifest}");

    // The simulator runs an experiment on the produced tables.
    let exp = d.path().join("exp.toml");
    std::fs::write(
        &exp,
        "name = \"on-calibrated\"\nseed = 3\nslo_ms = 5\n\
         [workload]\nrate_rps = 2000\nduration_s = 2\n\
         [[device]]\nname = \"cpu\"\nidle_power_w = 0\n\
         [cost_table]\npath = \"out/cost.csv\"\ninterpolate = true\n\
         [[server]]\nname = \"s\"\nkind = \"batched\"\nmodel = \"digits_small\"\nbackend = \"onnxruntime\"\ndevice = \"cpu\"\nmax_batch_size = 4\nmax_queue_delay_us = 200\n\
         [quality]\npath = \"out/quality.csv\"\n",
    )
    .unwrap();
    let loaded = basin::io::experiment::load(&exp, &[], None).unwrap();
    assert!(loaded.spec.energy_estimated == cal.measured.iter().any(|m| m.estimated));
    let run = basin::sim::run(&loaded.spec, 3);
    assert!(run.summary.completed > 3000, "{:?}", run.summary);
    assert!(run.summary.energy_j > 0.0 || cal.measured.iter().all(|m| m.point.energy_j == 0.0));
}
