//! Overhead of the calibration harness itself, against the smallest latency it measured.
//!
//! `cargo bench --bench calibrate [-- COST_CSV]` (default: the newest `calibration/*/cost.csv`
//! other than `example`). Prints:
//! - **timer bias**: what an empty batch measures as latency (`Instant` before and after
//!   nothing): the harness's share inside every latency sample;
//! - **loop cost per batch**: the whole measurement loop (`measure_point`) on a backend that
//!   returns at once, per batch (bookkeeping outside the timed region included);
//! - **meter read**: one `read()` of the meter `auto` picks on this host, and its share when
//!   amortised over a window (two reads per window of at least `window_s` = 0.25 s);
//! - each as a fraction of the smallest p50 latency in the cost table (criterion: < 1 %).

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use basin::calibrate::config::{MeasureConfig, Timing};
use basin::calibrate::measure::measure_point;
use basin::hw::backend::{BackendError, BackendInfo, InferOutput, InferenceBackend, InputData, TensorSpec};
use basin::hw::meter::{self, MeterChoice, MockMeter};

struct Null {
    info: BackendInfo,
    b: usize,
}

impl InferenceBackend for Null {
    fn info(&self) -> &BackendInfo {
        &self.info
    }
    fn inputs(&self) -> &[TensorSpec] {
        &[]
    }
    fn prepare(&mut self, b: usize) -> Result<(), BackendError> {
        self.b = b;
        Ok(())
    }
    fn set_inputs(&mut self, _: &InputData) -> Result<(), BackendError> {
        Ok(())
    }
    fn infer(&mut self) -> Result<InferOutput, BackendError> {
        Ok(InferOutput { batch_size: self.b, num_classes: 0, probs: Vec::new(), elapsed_ms: 0.0 })
    }
}

fn cost_csv() -> Option<PathBuf> {
    if let Some(a) = std::env::args().skip(1).find(|a| a.ends_with(".csv")) {
        return Some(a.into());
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("calibration");
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&root)
        .ok()?
        .flatten()
        .filter(|e| e.file_name() != "example")
        .map(|e| e.path().join("cost.csv"))
        .filter(|p| p.is_file())
        .filter_map(|p| Some((p.metadata().ok()?.modified().ok()?, p)))
        .collect();
    found.sort();
    found.pop().map(|(_, p)| p)
}

fn smallest_p50_ms(path: &PathBuf) -> Option<(f64, String)> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut lines = text.lines().filter(|l| !l.starts_with('#'));
    let head: Vec<&str> = lines.next()?.split(',').collect();
    let col = |n: &str| head.iter().position(|h| *h == n);
    let (p50, m, b, bs) = (col("latency_p50_ms")?, col("model")?, col("backend")?, col("batch_size")?);
    lines
        .filter_map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            Some((c.get(p50)?.parse::<f64>().ok()?, format!("{} {} b={}", c[m], c[b], c[bs])))
        })
        .min_by(|a, b| a.0.total_cmp(&b.0))
}

fn main() {
    // Timer bias: the median of 1e6 empty timed regions.
    let mut v: Vec<f64> = (0..1_000_000)
        .map(|_| {
            let t0 = Instant::now();
            black_box(());
            t0.elapsed().as_secs_f64()
        })
        .collect();
    v.sort_by(f64::total_cmp);
    let timer_bias = v[v.len() / 2];

    // The whole loop on a null backend with a mock meter.
    let cfg = MeasureConfig {
        warmup: 1,
        min_repetitions: 2_000_000,
        max_repetitions: 2_000_000,
        window_batches: 5,
        window_s: 0.25,
        max_time_s: 60.0,
        min_time_s: 0.0,
        timing: Timing::Wall,
        ..MeasureConfig::default()
    };
    let mut null = Null {
        info: BackendInfo {
            backend: "null".into(),
            model: "null".into(),
            device: "cpu".into(),
            provider: "-".into(),
            version: "-".into(),
            input_path: "-".into(),
        },
        b: 1,
    };
    let mut mock = MockMeter::constant_power(1.0, Duration::from_millis(1));
    let t0 = Instant::now();
    let p = measure_point(&mut null, &mut mock, 1, &cfg, &mut |_| {}).expect("null backend");
    let loop_cost = t0.elapsed().as_secs_f64() / p.batches() as f64;

    // The real meter of this host.
    let sel = meter::open_explained(MeterChoice::Auto).expect("auto meter");
    let mut m = sel.meter;
    for _ in 0..100 {
        let _ = m.read();
    }
    let n = 20_000;
    let t0 = Instant::now();
    for _ in 0..n {
        black_box(m.read().expect("meter read"));
    }
    let read = t0.elapsed().as_secs_f64() / n as f64;
    let window_share = 2.0 * read / cfg.window_s;

    println!("timer bias per batch (median empty region): {:.1} ns", timer_bias * 1e9);
    println!("measurement loop per batch (null backend):  {:.1} ns", loop_cost * 1e9);
    println!(
        "meter read ({}): {:.2} us; 2 reads per >= {} s window: {:.4} % of measured time",
        m.info().name,
        read * 1e6,
        cfg.window_s,
        window_share * 100.0
    );
    match cost_csv().and_then(|p| smallest_p50_ms(&p).map(|s| (p, s))) {
        Some((path, (p50, which))) => {
            let l = p50 / 1e3;
            println!("smallest p50 latency: {p50:.4} ms ({which}, {})", path.display());
            println!("timer bias / smallest p50:                 {:.3} %", timer_bias / l * 100.0);
            println!("(timer bias + amortised meter reads) / p50: {:.3} %", (timer_bias / l + window_share) * 100.0);
            println!(
                "loop cost per batch / smallest p50:        {:.3} %  (outside the timed region except the timer bias)",
                loop_cost / l * 100.0
            );
        }
        None => println!("no calibration/<host>/cost.csv found: pass one as an argument to get the ratios"),
    }
}
