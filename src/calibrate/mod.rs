//! `basin calibrate CAL.toml`: cost and quality tables measured on the host it runs on, in the
//! format the simulator reads, with their provenance.
//!
//! For each backend × model × batch size: warm-up, then windows of timed batches until the
//! stop rule holds ([`measure`]); latency quantiles and a samples file; energy per batch and
//! mean power from the chosen meter (estimates flagged); idle power measured separately. Then
//! the per-sample quality tables, recomputed with ONNX Runtime on the digits test split and
//! checked against `scripts/build_models.py`'s. Everything is measured first and written last,
//! atomically, under `calibration/<host-id>/`:
//!
//! | file | contents |
//! |---|---|
//! | `cost.csv` | one row per (model, backend, batch size): `io::tables` cost columns |
//! | `samples/<model>-<backend>-b<size>.txt` | measured batch latencies (ms), referenced by `samples_path` |
//! | `devices.csv` | `name,idle_power_w,estimated,meter` |
//! | `quality.csv` | `sample,model,confidence,correct` (when `[quality]` is given) |
//! | `points.csv` | per point: stop reason, windows, warm-up, wall time, harness overhead |
//! | `overhead.csv` | with `[transport]`: per Triton model × batch size, the replay's request pattern (b concurrent one-row requests): client round trip, server queue/compute, overhead = round trip − (queue + compute); the service samples replace the Triton cost rows |
//! | `triton_stats.csv` | per Triton point: server-side queue/compute means from the statistics extension |
//! | `manifest.toml` | host (CPU/GPU, driver), runtime versions, threads, meter, idle power, date, git revision, config, and `[tables]`: what each CSV holds (the CSVs themselves are plain, header first) |
//! | `latency_per_request.{svg,png}`, `energy_per_request.{svg,png}` | against batch size, one line per model/backend |
//!
//! Backends need the cargo features `ort` and `triton`; without them the corresponding
//! backend is a clear error. Every error names the model, backend, file or URL involved, and
//! leaves no output directory behind.

pub mod config;
pub mod load_profile;
pub mod measure;
pub mod output;
pub mod transport;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

pub use config::CalConfig;
use config::{ProviderName, TritonConfig};
use measure::{MeasureError, Point, Tick, measure_point};

use crate::hw::backend::InferenceBackend;
use crate::hw::meter::{self, EnergyMeter, IdlePower, MeterKind};
use crate::io::manifest::Host;
use crate::spec::BackendKind;

/// How `basin calibrate` was asked to run.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub config: PathBuf,
    /// Output folder (default: `<folder of CAL.toml>/<host-id>`).
    pub out: Option<PathBuf>,
    pub quick: bool,
    pub overrides: Vec<String>,
    /// Draw a progress bar (stderr) and print one line per point.
    pub progress: bool,
}

/// Server-side statistics of one Triton point (means in ms over the point's requests).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct TritonPointStats {
    pub model: String,
    pub batch_size: u32,
    pub requests: u64,
    pub executions: u64,
    pub success_ms: f64,
    pub queue_ms: f64,
    pub compute_input_ms: f64,
    pub compute_infer_ms: f64,
    pub compute_output_ms: f64,
    /// Client-side mean latency of the same batches.
    pub client_mean_ms: f64,
}

/// Cumulative counters of one model, read before and after a point.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StatsSnapshot {
    pub inference_count: u64,
    pub execution_count: u64,
    /// (count, ns) of success, queue, compute_input, compute_infer, compute_output.
    pub durations: [(u64, u64); 5],
}

impl StatsSnapshot {
    fn since(&self, e: &StatsSnapshot, model: &str, p: &Point) -> TritonPointStats {
        let mean = |i: usize| {
            let (c, ns) = (self.durations[i].0.saturating_sub(e.durations[i].0), self.durations[i].1.saturating_sub(e.durations[i].1));
            if c > 0 { ns as f64 / c as f64 / 1e6 } else { f64::NAN }
        };
        TritonPointStats {
            model: model.into(),
            batch_size: p.batch_size,
            requests: self.inference_count.saturating_sub(e.inference_count),
            executions: self.execution_count.saturating_sub(e.execution_count),
            success_ms: mean(0),
            queue_ms: mean(1),
            compute_input_ms: mean(2),
            compute_infer_ms: mean(3),
            compute_output_ms: mean(4),
            client_mean_ms: p.stats.mean_ms,
        }
    }
}

/// One measured (model, backend, batch size).
#[derive(Clone, Debug)]
pub struct Measured {
    pub model: String,
    pub backend: String,
    pub device: String,
    pub meter: String,
    pub estimated: bool,
    pub point: Point,
}

/// A backend opened for one model, with what the manifest needs to know about it.
pub struct Opened {
    pub backend: Box<dyn InferenceBackend>,
    /// Device name for the cost table.
    pub device: String,
    /// Reads the server's statistics (Triton).
    pub stats: Option<Box<dyn FnMut() -> Result<StatsSnapshot>>>,
}

/// What ran, for the manifest.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RuntimeInfo {
    pub onnxruntime_version: Option<String>,
    pub onnxruntime_library: Option<String>,
    /// How inputs reach the session, e.g. `io_binding: inputs and outputs on cuda:0`.
    pub onnxruntime_input_path: Option<String>,
    pub triton_version: Option<String>,
    pub triton_url: Option<String>,
}

#[cfg_attr(all(feature = "ort", feature = "triton"), allow(dead_code))]
fn not_compiled(feature: &str) -> anyhow::Error {
    anyhow!(
        "basin was built without the `{feature}` feature; rebuild with --features ort,triton (e.g. `cargo build --release --features ort,triton`)"
    )
}

/// The ONNX Runtime library: the config's, `BASIN_ORT_LIB`, or `.cache/onnxruntime/libonnxruntime.so` above the file.
pub fn ort_library(file: &Path, configured: Option<&str>) -> Result<PathBuf> {
    if let Some(raw) = configured {
        return Ok(config::expand(file, raw)?);
    }
    if let Some(v) = std::env::var_os("BASIN_ORT_LIB") {
        return Ok(PathBuf::from(v));
    }
    let dir = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    Ok(config::find_above(dir, ".cache/onnxruntime/libonnxruntime.so")
        .unwrap_or_else(|| PathBuf::from(".cache/onnxruntime/libonnxruntime.so")))
}

/// Whether an NVIDIA driver is loaded on this host.
pub fn nvidia_driver() -> Option<String> {
    std::fs::read_to_string("/proc/driver/nvidia/version").ok().and_then(|t| t.lines().next().map(|l| l.trim().to_string()))
}

/// GPU model names from the driver's procfs (empty without a driver).
pub fn gpu_models() -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc/driver/nvidia/gpus") {
        for e in rd.flatten() {
            if let Ok(t) = std::fs::read_to_string(e.path().join("information"))
                && let Some(m) = t.lines().find_map(|l| l.strip_prefix("Model:"))
            {
                out.push(m.trim().to_string());
            }
        }
    }
    out
}

#[cfg(feature = "ort")]
pub fn open_ort(file: &Path, cfg: &CalConfig, model: &str, path: &Path, rt: &mut RuntimeInfo) -> Result<Opened> {
    use crate::hw::backend::RandomInputs;
    use crate::hw::backend::onnx::{OrtBackend, OrtOptions, Provider};
    let o = cfg.backends.onnxruntime.clone().unwrap_or_default();
    let lib = ort_library(file, o.library.as_deref())?;
    let provider = match o.provider {
        ProviderName::Cpu => Provider::Cpu,
        ProviderName::Cuda => {
            if nvidia_driver().is_none() {
                bail!(
                    "ONNX Runtime's CUDA provider was requested (backends.onnxruntime.provider = \"cuda\") but this host has no NVIDIA GPU (no driver at /proc/driver/nvidia); use provider = \"cpu\""
                );
            }
            Provider::Cuda { device: o.device }
        }
    };
    let opts = OrtOptions {
        threads: o.threads,
        provider,
        random: RandomInputs { seed: cfg.seed, ..RandomInputs::default() },
        ..OrtOptions::default()
    };
    let b = OrtBackend::open(&lib, path, opts).with_context(|| format!("onnxruntime: opening model `{model}`"))?;
    rt.onnxruntime_version = Some(b.info().version.clone());
    rt.onnxruntime_library = Some(lib.display().to_string());
    rt.onnxruntime_input_path = Some(b.info().input_path.clone());
    let device = b.info().device.clone();
    Ok(Opened { backend: Box::new(b), device, stats: None })
}

#[cfg(not(feature = "ort"))]
pub fn open_ort(_: &Path, cfg: &CalConfig, _: &str, _: &Path, _: &mut RuntimeInfo) -> Result<Opened> {
    if cfg.backends.onnxruntime.as_ref().is_some_and(|o| o.provider == ProviderName::Cuda) && nvidia_driver().is_none() {
        bail!(
            "ONNX Runtime's CUDA provider was requested but this host has no NVIDIA GPU (no driver at /proc/driver/nvidia), and {}",
            not_compiled("ort")
        );
    }
    Err(not_compiled("ort"))
}

#[cfg(feature = "triton")]
pub fn open_triton(t: &TritonConfig, seed: u64, model: &str, rt: &mut RuntimeInfo) -> Result<Opened> {
    use crate::hw::backend::RandomInputs;
    use crate::hw::backend::triton::{Timeouts, TritonBackend, TritonClient, TritonOptions};
    let timeouts =
        Timeouts { connect: Duration::from_secs_f64(t.connect_timeout_s), request: Duration::from_secs_f64(t.request_timeout_s) };
    let opts =
        TritonOptions { timeouts, binary: t.binary, random: RandomInputs { seed, ..RandomInputs::default() }, ..TritonOptions::default() };
    let b = TritonBackend::open(&t.url, model, opts).with_context(|| format!("triton: opening model `{model}` at {}", t.url))?;
    rt.triton_version = Some(b.info().version.clone());
    rt.triton_url = Some(t.url.clone());
    let client = TritonClient::new(&t.url, timeouts)?;
    let name = model.to_string();
    let stats = move || -> Result<StatsSnapshot> {
        let s = client.model_stats(&name)?;
        let i = &s.inference_stats;
        let d = |x: &crate::hw::backend::triton::StatDuration| (x.count, x.ns);
        Ok(StatsSnapshot {
            inference_count: s.inference_count,
            execution_count: s.execution_count,
            durations: [d(&i.success), d(&i.queue), d(&i.compute_input), d(&i.compute_infer), d(&i.compute_output)],
        })
    };
    Ok(Opened { backend: Box::new(b), device: t.device.clone(), stats: Some(Box::new(stats)) })
}

#[cfg(not(feature = "triton"))]
pub fn open_triton(_: &TritonConfig, _: u64, _: &str, _: &mut RuntimeInfo) -> Result<Opened> {
    Err(not_compiled("triton"))
}

/// Cumulative counters of `model` for the transport measurement.
#[cfg(feature = "triton")]
fn transport_stats(t: &TritonConfig, model: &str) -> Result<Box<dyn FnMut() -> Result<transport::ServerSnapshot>>> {
    use crate::hw::backend::triton::{Timeouts, TritonClient};
    let client = TritonClient::new(
        &t.url,
        Timeouts { connect: Duration::from_secs_f64(t.connect_timeout_s), request: Duration::from_secs_f64(t.request_timeout_s) },
    )?;
    let name = model.to_string();
    Ok(Box::new(move || Ok(transport::ServerSnapshot::from(&client.model_stats(&name)?))))
}

#[cfg(not(feature = "triton"))]
fn transport_stats(_: &TritonConfig, _: &str) -> Result<Box<dyn FnMut() -> Result<transport::ServerSnapshot>>> {
    Err(not_compiled("triton"))
}

/// The server pid for the process-set estimate: from `server_pid_file` or
/// `.cache/triton/triton.pid` above the calibration file, when the URL is on loopback and the
/// process runs. `Err` carries why not (for the manifest).
fn triton_server_pid(file: &Path, t: &TritonConfig) -> std::result::Result<u32, String> {
    let host = t.url.split("://").nth(1).unwrap_or("").split(['/', ':']).next().unwrap_or("");
    if !matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
        return Err(format!("the server at {} is not on loopback", t.url));
    }
    let dir = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let pid_file = match &t.server_pid_file {
        Some(raw) => config::expand(file, raw).map_err(|e| e.to_string())?,
        None => config::find_above(dir, ".cache/triton/triton.pid").ok_or("no .cache/triton/triton.pid above the calibration file")?,
    };
    let text = std::fs::read_to_string(&pid_file).map_err(|e| format!("{}: {e}", pid_file.display()))?;
    let pid: u32 = text.trim().parse().map_err(|_| format!("{}: not a pid: {:?}", pid_file.display(), text.trim()))?;
    if !Path::new(&format!("/proc/{pid}")).exists() {
        return Err(format!("{}: pid {pid} is not running", pid_file.display()));
    }
    Ok(pid)
}

/// A meter per backend, and notes on how they were chosen.
pub struct Meters {
    pub ort: Option<Box<dyn EnergyMeter>>,
    pub triton: Option<Box<dyn EnergyMeter>>,
    pub notes: Vec<String>,
}

/// Opens the configured meter for each backend; with the CPU-time estimate, Triton points
/// charge the server's session too (see [`crate::hw::meter::procset`]).
pub fn open_meters(file: &Path, cfg: &CalConfig) -> Result<Meters> {
    let choice = cfg.meter.choice(file)?;
    let mut notes = Vec::new();
    let open = |notes: &mut Vec<String>| -> Result<Box<dyn EnergyMeter>> {
        let sel =
            meter::open_explained(choice.clone()).with_context(|| format!("opening the {:?} energy meter (meter.kind)", cfg.meter.kind))?;
        for (k, why) in &sel.skipped {
            let n = format!("meter auto: skipped {k:?}: {why}");
            if !notes.contains(&n) {
                notes.push(n);
            }
        }
        Ok(sel.meter)
    };
    let ort = if cfg.backends.onnxruntime.is_some() { Some(open(&mut notes)?) } else { None };
    let triton = match &cfg.backends.triton {
        None => None,
        Some(t) => {
            let m = open(&mut notes)?;
            if m.info().kind == MeterKind::Estimate {
                match triton_server_pid(file, t) {
                    Ok(pid) => {
                        let pm = meter::procset::ProcessSetMeter::open(cfg.meter.estimate_config(), pid)?;
                        notes.push(format!(
                            "triton: CPU-time estimate over basin + {} server processes (session of pid {pid})",
                            pm.server_processes()
                        ));
                        Some(Box::new(pm) as Box<dyn EnergyMeter>)
                    }
                    Err(why) => {
                        notes.push(format!("triton: the CPU-time estimate covers the basin client only, not the server ({why})"));
                        Some(m)
                    }
                }
            } else {
                Some(m)
            }
        }
    };
    Ok(Meters { ort, triton, notes })
}

/// Everything a calibration produced, before it is written.
pub struct Calibration {
    pub config: CalConfig,
    pub config_file: PathBuf,
    pub host_id: String,
    pub host: Host,
    /// What NVML reported about the GPUs before measuring, or why it could not.
    pub nvml: std::result::Result<meter::NvmlSystem, String>,
    pub measured: Vec<Measured>,
    pub triton_stats: Vec<TritonPointStats>,
    /// `[transport]` points (Triton measured as the replay uses it).
    pub transport: Vec<transport::TransportPoint>,
    /// Notes on the transport measurement (e.g. a batch size never formed).
    pub transport_notes: Vec<String>,
    /// (device name, idle power, backend whose meter measured it).
    pub idle: Vec<(String, IdlePower, String)>,
    pub quality: Option<output::QualityResult>,
    pub runtime: RuntimeInfo,
    pub meter_notes: Vec<String>,
    pub started_at: String,
    pub wall_s: f64,
    pub command_line: Vec<String>,
    pub host_probe: crate::hw::probe::ProbeSummary,
}

/// Reads the configuration, measures every point, writes the output folder. Returns the folder.
pub fn run(opts: &Options) -> Result<(PathBuf, Calibration)> {
    let t0 = Instant::now();
    let started_at = crate::io::manifest::now_rfc3339();
    let file = &opts.config;
    let mut cfg = CalConfig::load(file, &opts.overrides)?;
    if opts.quick {
        cfg.quicken();
    }
    let host = Host::describe();
    let probe = crate::hw::probe::HostProbe::start(t0)?;
    let nvml = meter::describe_gpus().map_err(|e| e.to_string());
    let host_id = cfg.host_id.clone().unwrap_or_else(|| config::default_host_id(&host.hostname, &host.cpu_model));
    let out =
        opts.out.clone().unwrap_or_else(|| file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).join(&host_id));

    // Resolve and check model files up front (clear errors before anything runs).
    let mut models = Vec::new();
    for (name, raw) in &cfg.models {
        let p = config::expand(file, raw)?;
        if !p.is_file() {
            bail!(
                "{}: `models.{name}`: ONNX file not found: {} (run scripts/build-models.sh, or set BASIN_MODELS_DIR)",
                file.display(),
                p.display()
            );
        }
        models.push((name.clone(), p));
    }
    let mut meters = open_meters(file, &cfg)?;
    let mut rt = RuntimeInfo::default();

    // The plan: (backend, model) pairs.
    let mut plan: Vec<(BackendKind, String, PathBuf)> = Vec::new();
    if let Some(o) = &cfg.backends.onnxruntime {
        for (m, p) in &models {
            if o.models.as_ref().is_none_or(|l| l.contains(m)) {
                plan.push((BackendKind::OnnxRuntime, m.clone(), p.clone()));
            }
        }
    }
    if let Some(t) = &cfg.backends.triton {
        for (m, p) in &models {
            if t.models.as_ref().is_none_or(|l| l.contains(m)) {
                plan.push((BackendKind::Triton, m.clone(), p.clone()));
            }
        }
    }
    // Open every backend before measuring anything: a missing server or a corrupt model fails fast.
    let mut opened = Vec::new();
    for (backend, model, path) in &plan {
        let o = match backend {
            BackendKind::OnnxRuntime => open_ort(file, &cfg, model, path, &mut rt)?,
            BackendKind::Triton => open_triton(cfg.backends.triton.as_ref().expect("planned"), cfg.seed, model, &mut rt)?,
        };
        opened.push((*backend, model.clone(), o));
    }

    // Idle power, once per device, with nothing running.
    let mut idle: Vec<(String, IdlePower, String)> = Vec::new();
    if cfg.meter.idle_s > 0.0 {
        // With `[transport]` the Triton meter (client + server session, as the replay meters
        // it) measures a device shared by both backends: the simulation's idle power then
        // covers what that meter counts with no load.
        let mut order: Vec<usize> = (0..opened.len()).collect();
        if cfg.transport.is_some() {
            order.sort_by_key(|&i| opened[i].0 != BackendKind::Triton);
        }
        for (backend, _, o) in order.iter().map(|&i| &opened[i]) {
            if idle.iter().any(|(d, _, b)| d == &o.device || b == backend.name()) {
                continue;
            }
            let m = match backend {
                BackendKind::OnnxRuntime => meters.ort.as_mut(),
                BackendKind::Triton => meters.triton.as_mut(),
            };
            if let Some(m) = m {
                let ip = meter::measure_idle_power(m, Duration::from_secs_f64(cfg.meter.idle_s)).context("measuring idle power")?;
                idle.push((o.device.clone(), ip, backend.to_string()));
            }
        }
    }

    let by_transport = |backend: BackendKind, model: &str| {
        backend == BackendKind::Triton
            && cfg.transport.as_ref().is_some_and(|t| t.models.as_ref().is_none_or(|l| l.iter().any(|m| m == model)))
    };
    let n_points = opened.len() * cfg.batch_sizes.len();
    let pb = if opts.progress { indicatif::ProgressBar::new(n_points as u64) } else { indicatif::ProgressBar::hidden() };
    pb.set_style(
        indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let mut measured = Vec::new();
    let mut triton_stats = Vec::new();
    for (backend, model, mut o) in opened {
        let m = match backend {
            BackendKind::OnnxRuntime => meters.ort.as_mut(),
            BackendKind::Triton => meters.triton.as_mut(),
        }
        .ok_or_else(|| anyhow!("no meter for {backend}"))?;
        let mcfg = cfg.measure_for(&model);
        if by_transport(backend, &model) {
            pb.inc(cfg.batch_sizes.len() as u64);
            continue;
        }
        for &b in &cfg.batch_sizes {
            let label = format!("{model} {backend} b={b}");
            pb.set_message(label.clone());
            let before = o.stats.as_mut().map(|f| f()).transpose().with_context(|| format!("{label}: reading Triton statistics"))?;
            let pbc = pb.clone();
            let mut tick = |t: Tick| pbc.set_message(format!("{label}: {} batches, {:.1} s", t.batches, t.elapsed.as_secs_f64()));
            let point = measure_point(o.backend.as_mut(), m.as_mut(), b, &mcfg, &mut tick).map_err(|e| match e {
                MeasureError::Backend(be) => {
                    anyhow::Error::new(be).context(format!("calibrating `{model}` on {backend} at batch size {b}"))
                }
                other => anyhow::Error::new(other).context(format!("calibrating `{model}` on {backend} at batch size {b}")),
            })?;
            if let (Some(before), Some(f)) = (before, o.stats.as_mut()) {
                let after = f().with_context(|| format!("{label}: reading Triton statistics"))?;
                triton_stats.push(after.since(&before, &model, &point));
            }
            if opts.progress {
                pb.suspend(|| {
                    eprintln!(
                        "{label:<28} p50 {:>9.3} ms  p99 {:>9.3} ms  {:>11.6} J/batch  {:>5} batches  {}",
                        point.stats.p50_ms,
                        point.stats.p99_ms,
                        point.energy_per_batch_j(),
                        point.batches(),
                        point.stop.as_str()
                    )
                });
            }
            let info = m.info();
            measured.push(Measured {
                model: model.clone(),
                backend: backend.name().into(),
                device: o.device.clone(),
                meter: info.name.clone(),
                estimated: info.estimated,
                point,
            });
            pb.inc(1);
        }
    }
    pb.finish_and_clear();

    // Triton as the replay uses it: concurrent one-row requests.
    let mut transport_points = Vec::new();
    let mut transport_notes = Vec::new();
    if let (Some(tc), Some(t)) = (&cfg.transport, &cfg.backends.triton) {
        let models: Vec<String> = plan.iter().filter(|(b, m, _)| by_transport(*b, m)).map(|(_, m, _)| m.clone()).collect();
        let max_b = cfg.batch_sizes.iter().copied().max().unwrap_or(1) as usize;
        for model in models {
            let m = meters.triton.as_mut().ok_or_else(|| anyhow!("no meter for triton"))?;
            let mut backends = Vec::new();
            let mut stats = None;
            for _ in 0..max_b {
                let o = open_triton(t, cfg.seed, &model, &mut rt)?;
                stats = stats.or(Some(transport_stats(t, &model)?));
                backends.push(o.backend);
            }
            let mut stats = stats.ok_or_else(|| anyhow!("no batch sizes"))?;
            let device = t.device.clone();
            let mut pts = Vec::new();
            for &b in &cfg.batch_sizes {
                let p = transport::measure_transport(&model, &mut backends, &mut *stats, m.as_mut(), b, tc)
                    .with_context(|| format!("transport calibration of `{model}` on triton at batch size {b}"))?;
                if opts.progress {
                    eprintln!(
                        "{model} triton b={b} (concurrent 1-row): rtt {:.3} ms, queue {:.3} ms, compute {:.3} ms, overhead p50 {:.3} ms, {} rounds, {} executions",
                        p.client_mean_ms, p.queue_ms, p.compute_ms, p.overhead_p50_ms, p.rounds, p.executions
                    );
                }
                pts.push(p);
            }
            let info = m.info();
            for &b in &cfg.batch_sizes {
                match transport::cost_point(&pts, b) {
                    Some(point) => measured.push(Measured {
                        model: model.clone(),
                        backend: BackendKind::Triton.name().into(),
                        device: device.clone(),
                        meter: info.name.clone(),
                        estimated: info.estimated,
                        point,
                    }),
                    None => transport_notes
                        .push(format!("{model}: Triton never executed a batch of exactly {b} alone in a round; no cost row for it")),
                }
            }
            transport_points.extend(pts);
        }
    }

    let quality = match &cfg.quality {
        Some(q) => Some(output::recompute_quality(file, &cfg, q, &models)?),
        None => None,
    };
    let cal = Calibration {
        config: cfg,
        config_file: file.clone(),
        host_id,
        host,
        nvml,
        measured,
        triton_stats,
        transport: transport_points,
        transport_notes,
        idle,
        quality,
        runtime: rt,
        meter_notes: std::mem::take(&mut meters.notes),
        started_at,
        wall_s: t0.elapsed().as_secs_f64(),
        command_line: std::env::args().collect(),
        host_probe: crate::hw::probe::summarize(&probe.finish()),
    };
    output::write(&out, &cal)?;
    Ok((out, cal))
}
