//! Triton measured **as the replay uses it**: per batch size `b`, rounds of `b` concurrent
//! one-row requests (one client thread and one backend each, released together by a barrier),
//! so that the server's dynamic batcher forms the batch, exactly like `basin replay`'s client
//! threads do. From the server's statistics (read before and after every round) come:
//!
//! * the **service time per execution** of each batch size (compute_input + compute_infer +
//!   compute_output of `batch_stats`, one sample per execution that was alone of its size in a
//!   round) — the cost table's latency for `backend = "triton"`, i.e. what occupies the instance;
//! * the **per-request transport overhead**: client round trip − (queue + service) of the same
//!   requests (server-side means per round; service = the execution's compute as in the cost
//!   row, so that cost row + overhead + queue = round trip in the mean), i.e. the time a request spends outside Triton's
//!   queue and compute (HTTP, (de)serialisation, client and server threads). The simulator adds
//!   it on the response path (`[[server]] request_overhead_ms`).
//!
//! Energy: the meter's energy over the rounds divided by the requests, times `b` (per batch of
//! `b`), so it charges what the replay pays per request (client threads + server session with
//! the process-set meter). Written to `overhead.csv`; the manifest prints the value to use.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::Instant;

use anyhow::{Context, Result, anyhow};

use super::measure::{LatencyStats, Point, StopReason};
use crate::hw::backend::InferenceBackend;
pub use crate::hw::backend::stats::{ServerSnapshot, diff};
use crate::hw::meter::EnergyMeter;

/// `[transport]`: rounds per batch size.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransportConfig {
    /// Rounds before measuring (not counted).
    pub warmup_rounds: u32,
    /// Measured rounds per batch size (fewer if `max_time_s` is reached first).
    pub rounds: u32,
    pub max_time_s: f64,
    /// Models to measure this way (default: every Triton model).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub models: Option<Vec<String>>,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig { warmup_rounds: 5, rounds: 200, max_time_s: 5.0, models: None }
    }
}

/// One batch size measured with concurrent one-row requests.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct TransportPoint {
    pub model: String,
    pub batch_size: u32,
    pub rounds: u32,
    pub requests: u64,
    pub executions: u64,
    /// Client round trip per request (ms).
    pub client_mean_ms: f64,
    pub client_p50_ms: f64,
    /// Server-side means per request (ms).
    pub queue_ms: f64,
    pub compute_ms: f64,
    /// client round trip − (queue + compute), per round, ms.
    pub overhead_mean_ms: f64,
    pub overhead_p50_ms: f64,
    /// Service time samples (ms) per executed batch size: (size, samples).
    #[serde(skip)]
    pub service: Vec<(u32, Vec<f64>)>,
    pub energy_j: f64,
    pub meter_elapsed_s: f64,
    pub wall_s: f64,
}

/// Measures batch size `b`: `backends` must hold at least `b` backends of the same model (one
/// per client thread); `stats` reads the server's cumulative counters.
pub fn measure_transport(
    model: &str,
    backends: &mut [Box<dyn InferenceBackend>],
    stats: &mut dyn FnMut() -> Result<ServerSnapshot>,
    meter: &mut dyn EnergyMeter,
    b: u32,
    cfg: &TransportConfig,
) -> Result<TransportPoint> {
    let n = b as usize;
    if n == 0 || backends.len() < n {
        return Err(anyhow!("transport measurement of `{model}` at batch size {b}: needs {b} client backends, have {}", backends.len()));
    }
    for be in backends.iter_mut().take(n) {
        be.prepare(1).with_context(|| format!("preparing `{model}` for one-row requests"))?;
    }
    let start = Barrier::new(n + 1);
    let done = Barrier::new(n + 1);
    let stop = AtomicBool::new(false);
    let rtts: Mutex<Vec<f64>> = Mutex::new(Vec::new());
    let errors: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let total = cfg.warmup_rounds + cfg.rounds.max(1);
    let mut out = TransportPoint { model: model.into(), batch_size: b, ..Default::default() };
    let mut overheads = Vec::new();
    let mut client_all = Vec::new();
    let (mut q_ns, mut c_ns) = (0u64, 0u64);
    let mut service: Vec<(u32, Vec<f64>)> = Vec::new();
    let result: Result<()> = std::thread::scope(|sc| {
        for be in backends.iter_mut().take(n) {
            let (start, done, stop, rtts, errors) = (&start, &done, &stop, &rtts, &errors);
            sc.spawn(move || {
                loop {
                    start.wait();
                    if stop.load(Ordering::Acquire) {
                        break;
                    }
                    let t = Instant::now();
                    match be.infer() {
                        Ok(_) => rtts.lock().unwrap_or_else(|p| p.into_inner()).push(t.elapsed().as_secs_f64() * 1e3),
                        Err(e) => errors.lock().unwrap_or_else(|p| p.into_inner()).push(e.to_string()),
                    }
                    done.wait();
                }
            });
        }
        let mut run = || -> Result<()> {
            let mut before = stats()?;
            let mut t0 = Instant::now();
            let mut e0 = meter.read()?;
            for r in 0..total {
                if r == cfg.warmup_rounds {
                    before = stats()?;
                    t0 = Instant::now();
                    e0 = meter.read()?;
                }
                rtts.lock().unwrap_or_else(|p| p.into_inner()).clear();
                start.wait();
                done.wait();
                if let Some(e) = errors.lock().unwrap_or_else(|p| p.into_inner()).first() {
                    return Err(anyhow!("`{model}` at batch size {b}: a one-row request failed: {e}"));
                }
                let after = stats()?;
                if r >= cfg.warmup_rounds {
                    let d = diff(&after, &before);
                    let rt = rtts.lock().unwrap_or_else(|p| p.into_inner()).clone();
                    if d.inference_count > 0 && !rt.is_empty() {
                        let mean_rt = rt.iter().sum::<f64>() / rt.len() as f64;
                        // each request is charged the service time of the execution it
                        // was in (what the simulator charges), else its own compute
                        let batched: u64 = d.batches.iter().map(|&(size, _, ns)| size * ns).sum();
                        let service = if batched > 0 { batched } else { d.compute_ns };
                        let server = (d.queue_ns + service) as f64 / d.inference_count as f64 / 1e6;
                        overheads.push(mean_rt - server);
                    }
                    client_all.extend(rt);
                    out.rounds += 1;
                    out.requests += d.inference_count;
                    out.executions += d.execution_count;
                    q_ns += d.queue_ns;
                    c_ns += d.compute_ns;
                    for &(size, count, ns) in &d.batches {
                        if count == 1 {
                            let size = size as u32;
                            match service.iter_mut().find(|x| x.0 == size) {
                                Some((_, v)) => v.push(ns as f64 / 1e6),
                                None => service.push((size, vec![ns as f64 / 1e6])),
                            }
                        }
                    }
                    if t0.elapsed().as_secs_f64() >= cfg.max_time_s {
                        break;
                    }
                }
                before = after;
            }
            let e1 = meter.read()?;
            out.energy_j = (e1.energy_j - e0.energy_j).max(0.0);
            out.meter_elapsed_s = e1.at.saturating_sub(e0.at).as_secs_f64();
            out.wall_s = t0.elapsed().as_secs_f64();
            Ok(())
        };
        let r = run();
        stop.store(true, Ordering::Release);
        start.wait();
        r
    });
    result?;
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    out.client_mean_ms = mean(&client_all);
    out.client_p50_ms = LatencyStats::of(&client_all).p50_ms;
    out.overhead_mean_ms = mean(&overheads);
    out.overhead_p50_ms = LatencyStats::of(&overheads).p50_ms;
    if out.requests > 0 {
        out.queue_ms = q_ns as f64 / out.requests as f64 / 1e6;
        out.compute_ms = c_ns as f64 / out.requests as f64 / 1e6;
    }
    service.sort_by_key(|x| x.0);
    out.service = service;
    Ok(out)
}

/// The cost-table point of batch size `b` from the transport measurements: the service samples
/// of executions of size `b` (from any round), energy per request × `b`. `None` when no
/// execution of that size was seen alone in a round.
pub fn cost_point(points: &[TransportPoint], b: u32) -> Option<Point> {
    let samples: Vec<f64> = points.iter().flat_map(|p| p.service.iter().filter(|x| x.0 == b).flat_map(|x| x.1.iter().copied())).collect();
    if samples.is_empty() {
        return None;
    }
    let own = points.iter().find(|p| p.batch_size == b).or_else(|| points.first())?;
    let per_request = if own.requests > 0 { own.energy_j / own.requests as f64 } else { 0.0 };
    let k = samples.len();
    Some(Point {
        batch_size: b,
        warmup_batches: 0,
        stats: LatencyStats::of(&samples),
        samples_ms: samples,
        windows: Vec::new(),
        stop: StopReason::MaxRepetitions,
        energy_j: per_request * f64::from(b) * k as f64,
        meter_elapsed_s: own.meter_elapsed_s,
        wall_s: own.wall_s,
        meter_read_s: 0.0,
    })
}

/// The per-request overhead to use for a model: the median over its batch sizes of the per-point
/// median overheads (robust to a noisy point).
pub fn overhead_ms(points: &[TransportPoint], model: &str) -> Option<f64> {
    let v: Vec<f64> = points.iter().filter(|p| p.model == model && p.overhead_p50_ms.is_finite()).map(|p| p.overhead_p50_ms).collect();
    (!v.is_empty()).then(|| LatencyStats::of(&v).p50_ms)
}
