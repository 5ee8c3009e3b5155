//! The measurement loop of one (model, backend, batch size) point, its stop rule, and the
//! statistics written to the cost table.
//!
//! Each batch is timed with `Instant` alone (two clock reads, ~25 ns each here). The energy
//! meter is read once per **window** of at least `window_batches` batches lasting at least
//! `window_s`, never inside a timed request, so the harness's share of the measured time stays
//! far below 1 % (see `benches/calibrate.rs`, and `harness_overhead` in the manifest, which
//! records the time actually spent in meter reads).
//!
//! Stop rule, after Triton's perf analyzer (which stops when the last 3 measurement windows'
//! throughput and latency are within ±10 % of their mean): after each window the p50 and p99 of
//! all batches measured so far are computed; the point is **stable** when at least
//! `min_repetitions` batches were measured and the p50 values at the end of the last
//! `stable_windows` windows, and likewise the p99 values, are all within ±`tolerance` of their
//! mean, and at least `min_time_s` was measured (energy resolution). Otherwise the point stops at `max_repetitions` batches or after `max_time_s`, and the
//! reason is recorded.
//!
//! Energy per batch = energy metered over all measured windows / batches in them (the
//! batch-weighted mean of the windows' energy per batch); mean power = that energy / the
//! meter's elapsed time over the windows. The meter is read at the start and end of each
//! window, so the harness's bookkeeping between windows is in neither. This is the whole metered domain's energy (idle
//! floor included), which is what a cost-table row means.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::config::{MeasureConfig, Timing};
use crate::hw::backend::{BackendError, InferenceBackend};
use crate::hw::meter::{EnergyMeter, MeterError};

/// Why a point stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    Stable,
    MaxRepetitions,
    MaxTime,
}

impl StopReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            StopReason::Stable => "stable",
            StopReason::MaxRepetitions => "max_repetitions",
            StopReason::MaxTime => "max_time",
        }
    }
}

/// One meter window.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Window {
    pub batches: u64,
    pub energy_j: f64,
    /// On the meter's clock.
    pub elapsed_s: f64,
    /// p50 and p99 of all batches measured up to the end of this window (the stop rule's input).
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Latency statistics of a set of samples (ms). Quantiles interpolate linearly between order
/// statistics (Hyndman & Fan type 7, numpy's default).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LatencyStats {
    pub n: usize,
    pub mean_ms: f64,
    pub std_ms: f64,
    pub min_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// The `q` quantile (0..=1) of sorted samples, type 7.
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        1 => sorted[0],
        n => {
            let h = (n - 1) as f64 * q.clamp(0.0, 1.0);
            let lo = h.floor() as usize;
            let hi = (lo + 1).min(n - 1);
            sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
        }
    }
}

impl LatencyStats {
    pub fn of(samples: &[f64]) -> LatencyStats {
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        let n = s.len();
        let mean = s.iter().sum::<f64>() / n.max(1) as f64;
        let var = if n > 1 { s.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64 } else { 0.0 };
        let q = |p| quantile_sorted(&s, p);
        LatencyStats {
            n,
            mean_ms: mean,
            std_ms: var.sqrt(),
            min_ms: q(0.0),
            p50_ms: q(0.5),
            p90_ms: q(0.9),
            p95_ms: q(0.95),
            p99_ms: q(0.99),
            max_ms: q(1.0),
        }
    }
}

/// p50 and p99 (type 7) without sorting everything.
fn p50_p99(samples: &[f64]) -> (f64, f64) {
    let mut s = samples.to_vec();
    let n = s.len();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mut q = |p: f64| {
        let h = (n - 1) as f64 * p;
        let lo = h.floor() as usize;
        let (_, &mut a, rest) = s.select_nth_unstable_by(lo, f64::total_cmp);
        let b = if lo + 1 < n { rest.iter().copied().fold(f64::INFINITY, f64::min) } else { a };
        a + (h - lo as f64) * (b - a)
    };
    (q(0.5), q(0.99))
}

/// Whether the last `k` values are all within ±`tol` (relative) of their mean.
pub fn within_tolerance(values: &[f64], k: usize, tol: f64) -> bool {
    if k == 0 || values.len() < k {
        return false;
    }
    let last = &values[values.len() - k..];
    let mean = last.iter().sum::<f64>() / k as f64;
    mean > 0.0 && last.iter().all(|v| ((v - mean) / mean).abs() <= tol)
}

/// The stop rule on the windows measured so far.
pub fn is_stable(windows: &[Window], k: usize, tol: f64) -> bool {
    let p50: Vec<f64> = windows.iter().map(|w| w.p50_ms).collect();
    let p99: Vec<f64> = windows.iter().map(|w| w.p99_ms).collect();
    within_tolerance(&p50, k, tol) && within_tolerance(&p99, k, tol)
}

/// Everything measured at one point.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Point {
    pub batch_size: u32,
    pub warmup_batches: u32,
    /// Latency of each measured batch, ms, in time order.
    #[serde(skip)]
    pub samples_ms: Vec<f64>,
    pub windows: Vec<Window>,
    pub stop: StopReason,
    pub stats: LatencyStats,
    pub energy_j: f64,
    pub meter_elapsed_s: f64,
    /// Wall time of the measured part (warm-up excluded).
    pub wall_s: f64,
    /// Wall time spent in meter reads.
    pub meter_read_s: f64,
}

impl Point {
    pub fn batches(&self) -> u64 {
        self.samples_ms.len() as u64
    }
    /// Metered energy per batch.
    pub fn energy_per_batch_j(&self) -> f64 {
        self.energy_j / self.batches().max(1) as f64
    }
    /// Mean power over the measured windows (None when the meter's clock did not move).
    pub fn mean_power_w(&self) -> Option<f64> {
        (self.meter_elapsed_s > 0.0).then(|| self.energy_j / self.meter_elapsed_s)
    }
    /// Time spent in the harness's meter reads as a share of the measured latencies.
    pub fn meter_overhead(&self) -> f64 {
        let busy: f64 = self.samples_ms.iter().sum::<f64>() / 1e3;
        if busy > 0.0 { self.meter_read_s / busy } else { 0.0 }
    }
}

/// Errors of one point.
#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("energy meter: {0}")]
    Meter(#[from] MeterError),
    #[error("model `{model}` returned a batch of {got} for a request of {want}")]
    BatchMismatch { model: String, want: usize, got: usize },
}

/// Progress of a point, for a progress bar.
#[derive(Clone, Copy, Debug)]
pub struct Tick {
    pub batches: u64,
    pub elapsed: Duration,
}

/// Runs warm-up and the measured windows of one batch size (see the module docs).
pub fn measure_point(
    backend: &mut dyn InferenceBackend,
    meter: &mut dyn EnergyMeter,
    batch_size: u32,
    cfg: &MeasureConfig,
    tick: &mut dyn FnMut(Tick),
) -> Result<Point, MeasureError> {
    let b = batch_size as usize;
    backend.prepare(b)?;
    let model = backend.info().model.clone();
    let warm0 = Instant::now();
    let mut warmup_batches = 0;
    let warmup_max = Duration::from_secs_f64(cfg.warmup_max_s.max(0.0));
    // At least one call (it validates the output shape), then up to `warmup` within the budget.
    loop {
        let out = backend.infer()?;
        if out.batch_size != b {
            return Err(MeasureError::BatchMismatch { model, want: b, got: out.batch_size });
        }
        warmup_batches += 1;
        if warmup_batches >= cfg.warmup.max(1) || warm0.elapsed() >= warmup_max {
            break;
        }
    }

    let max_time = Duration::from_secs_f64(cfg.max_time_s);
    let window_min = Duration::from_secs_f64(cfg.window_s.max(0.0));
    let mut samples: Vec<f64> = Vec::with_capacity(cfg.max_repetitions.min(100_000) as usize);
    let mut windows = Vec::new();
    let mut meter_read = Duration::ZERO;
    let (mut energy_j, mut meter_elapsed) = (0.0, Duration::ZERO);
    let min_time = Duration::from_secs_f64(cfg.min_time_s.max(0.0));
    let t_read = Instant::now();
    let mut r0 = meter.read()?;
    meter_read += t_read.elapsed();
    let begin = Instant::now();
    let mut w_start = begin;
    let mut w_batches = 0u64;
    let stop = loop {
        let t0 = Instant::now();
        let out = backend.infer()?;
        let dt = t0.elapsed();
        samples.push(match cfg.timing {
            Timing::Wall => dt.as_secs_f64() * 1e3,
            Timing::Backend => out.elapsed_ms,
        });
        w_batches += 1;
        let n = samples.len() as u64;
        let now = Instant::now();
        let over_time = now.duration_since(begin) >= max_time;
        let at_max = n >= u64::from(cfg.max_repetitions);
        let window_done = w_batches >= u64::from(cfg.window_batches) && now.duration_since(w_start) >= window_min;
        if !(window_done || over_time || at_max) {
            continue;
        }
        let t_read = Instant::now();
        let r1 = meter.read()?;
        meter_read += t_read.elapsed();
        let (e, el) = (r1.energy_j - r0.energy_j, r1.at.saturating_sub(r0.at));
        energy_j += e;
        meter_elapsed += el;
        // The bookkeeping below (sorting for the stop rule) happens between windows: outside
        // both the timed batches and the metered windows.
        let (p50_ms, p99_ms) = p50_p99(&samples);
        windows.push(Window { batches: w_batches, energy_j: e, elapsed_s: el.as_secs_f64(), p50_ms, p99_ms });
        tick(Tick { batches: n, elapsed: now.duration_since(begin) });
        w_batches = 0;
        let stable = n >= u64::from(cfg.min_repetitions)
            && now.duration_since(begin) >= min_time
            && is_stable(&windows, cfg.stable_windows as usize, cfg.tolerance);
        if !(stable || at_max || over_time) {
            let t_read = Instant::now();
            r0 = meter.read()?;
            meter_read += t_read.elapsed();
            w_start = Instant::now();
        }
        if stable {
            break StopReason::Stable;
        }
        if at_max {
            break StopReason::MaxRepetitions;
        }
        if over_time {
            break StopReason::MaxTime;
        }
    };
    let wall_s = begin.elapsed().as_secs_f64();
    Ok(Point {
        batch_size,
        warmup_batches,
        stats: LatencyStats::of(&samples),
        windows,
        stop,
        energy_j,
        meter_elapsed_s: meter_elapsed.as_secs_f64(),
        wall_s,
        meter_read_s: meter_read.as_secs_f64(),
        samples_ms: samples,
    })
}

/// At most `max` of `samples`, evenly spaced in time order (all of them when fewer).
pub fn thin(samples: &[f64], max: usize) -> Vec<f64> {
    if samples.len() <= max || max == 0 {
        return samples.to_vec();
    }
    (0..max).map(|i| samples[i * samples.len() / max]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type7_quantiles_match_numpy() {
        let s = [1.0, 2.0, 3.0, 4.0];
        // numpy.quantile([1,2,3,4], [0, .5, .9, .99, 1]) = 1, 2.5, 3.7, 3.97, 4
        assert_eq!(quantile_sorted(&s, 0.0), 1.0);
        assert_eq!(quantile_sorted(&s, 0.5), 2.5);
        assert!((quantile_sorted(&s, 0.9) - 3.7).abs() < 1e-12);
        assert!((quantile_sorted(&s, 0.99) - 3.97).abs() < 1e-12);
        assert_eq!(quantile_sorted(&s, 1.0), 4.0);
        let st = LatencyStats::of(&[4.0, 1.0, 3.0, 2.0]);
        assert_eq!((st.min_ms, st.p50_ms, st.max_ms, st.mean_ms), (1.0, 2.5, 4.0, 2.5));
        assert!((st.std_ms - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn selection_quantiles_equal_sorted_ones() {
        let v: Vec<f64> = (0..1001).map(|i| ((i * 7919) % 1009) as f64 * 0.37).collect();
        let st = LatencyStats::of(&v);
        let (p50, p99) = p50_p99(&v);
        assert_eq!((p50, p99), (st.p50_ms, st.p99_ms));
        assert_eq!(p50_p99(&[3.0]), (3.0, 3.0));
    }

    #[test]
    fn tolerance_needs_k_values_all_close_to_their_mean() {
        assert!(!within_tolerance(&[1.0, 1.0], 3, 0.05));
        assert!(within_tolerance(&[5.0, 1.0, 1.04, 0.97], 3, 0.05));
        assert!(!within_tolerance(&[1.0, 1.2, 1.0], 3, 0.05));
    }

    #[test]
    fn thinning_keeps_time_order_and_count() {
        let v: Vec<f64> = (0..10).map(f64::from).collect();
        assert_eq!(thin(&v, 20), v);
        assert_eq!(thin(&v, 5), vec![0.0, 2.0, 4.0, 6.0, 8.0]);
    }
}
