//! The run summary (`summary.json`, docs/src/metrics.md) and the streaming collector behind it.
//!
//! Latency percentiles come from an HDR histogram (3 significant digits: any recorded value,
//! hence any percentile, is within 0.1% of the exact one), so memory stays flat however long
//! the run. Means are exact (integer nanosecond sums).

use serde::{Deserialize, Serialize};

use crate::core::SimDuration;
use crate::metrics::latency_counts::LatencyCounts;

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub mean: Option<f64>,
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

/// How the run's energy splits (an extension of the metrics contract; all facility joules, × PUE).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EnergyBreakdown {
    /// Σ batch energy.
    pub active_j: f64,
    /// Σ idle power × idle time over devices.
    pub idle_j: f64,
    /// The cascade's early-exit model.
    pub early_exit_j: f64,
    /// Warm-up of instances added by reconfiguration.
    pub reconfig_j: f64,
    /// Energy attributed to requests (their `energy_j`); the rest (idle, warm-up) is spread only
    /// in `energy_j_per_request`.
    pub attributed_j: f64,
    pub pue: f64,
    /// True when any cost-table energy was estimated rather than measured.
    pub estimated: bool,
}

/// `summary.json` (docs/src/metrics.md): the contract's keys first, extensions after.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub schema_version: u32,
    pub mode: String,
    pub requests: u64,
    pub admitted: u64,
    pub skipped: u64,
    pub rejected: u64,
    pub failed: u64,
    pub completed: u64,
    pub admission_rate: Option<f64>,
    pub duration_s: f64,
    pub throughput_rps: f64,
    pub latency_ms: LatencySummary,
    pub slo_ms: f64,
    pub slo_violation_rate: Option<f64>,
    pub accuracy: Option<f64>,
    pub mean_batch_size: Option<f64>,
    pub energy_j: f64,
    pub energy_j_per_request: Option<f64>,
    pub energy_kwh: f64,
    pub mean_power_w: f64,
    pub co2_g: f64,
    pub co2_g_per_request: Option<f64>,
    // extensions
    pub name: String,
    pub seed: u64,
    pub rejected_queue_full: u64,
    pub batches: u64,
    pub mean_queue_len: f64,
    pub carbon_g_per_kwh_mean: f64,
    pub energy: EnergyBreakdown,
}

fn ratio(a: u64, b: u64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// Streams per-request outcomes into the summary's counters and latency histogram.
#[derive(Clone, Debug)]
pub struct SummaryCollector {
    pub requests: u64,
    pub admitted: u64,
    pub skipped: u64,
    pub rejected: u64,
    pub rejected_queue_full: u64,
    pub failed: u64,
    pub completed: u64,
    hist: LatencyCounts,
    lat_sum_ns: u128,
    lat_max_ns: u64,
    slo_ns: u64,
    slo_violations: u64,
    answered: u64,
    correct: u64,
    pub batches: u64,
    batch_requests: u64,
}

impl SummaryCollector {
    pub fn new(slo: SimDuration) -> Self {
        SummaryCollector {
            requests: 0,
            admitted: 0,
            skipped: 0,
            rejected: 0,
            rejected_queue_full: 0,
            failed: 0,
            completed: 0,
            hist: LatencyCounts::default(),
            lat_sum_ns: 0,
            lat_max_ns: 0,
            slo_ns: slo.0,
            slo_violations: 0,
            answered: 0,
            correct: 0,
            batches: 0,
            batch_requests: 0,
        }
    }

    /// An admitted request finished after `latency`.
    #[inline]
    pub fn completed(&mut self, latency: SimDuration) {
        self.completed += 1;
        let ns = latency.0;
        self.hist.record(ns);
        self.lat_sum_ns += ns as u128;
        self.lat_max_ns = self.lat_max_ns.max(ns);
        if ns > self.slo_ns {
            self.slo_violations += 1;
        }
    }

    /// A request was answered (served or skipped); `correct` is `None` without a quality model.
    #[inline]
    pub fn answered(&mut self, correct: Option<bool>) {
        if let Some(c) = correct {
            self.answered += 1;
            self.correct += c as u64;
        }
    }

    #[inline]
    pub fn batch(&mut self, size: u32) {
        self.batches += 1;
        self.batch_requests += size as u64;
    }

    /// The fields that come from counters; [`crate::gateway::Metrics::summarize`] fills the rest.
    pub fn summarize(&self, duration_s: f64) -> Summary {
        let ms = |ns: f64| ns / 1e6;
        let hist = self.hist.histogram();
        let quantile_ms = |q: f64| (self.completed > 0).then(|| ms(hist.value_at_quantile(q) as f64));
        Summary {
            schema_version: SCHEMA_VERSION,
            requests: self.requests,
            admitted: self.admitted,
            skipped: self.skipped,
            rejected: self.rejected,
            failed: self.failed,
            completed: self.completed,
            admission_rate: ratio(self.admitted, self.requests),
            duration_s,
            throughput_rps: if duration_s > 0.0 { self.completed as f64 / duration_s } else { 0.0 },
            latency_ms: LatencySummary {
                mean: (self.completed > 0).then(|| ms(self.lat_sum_ns as f64 / self.completed as f64)),
                p50: quantile_ms(0.50),
                p95: quantile_ms(0.95),
                p99: quantile_ms(0.99),
                max: (self.completed > 0).then(|| ms(self.lat_max_ns as f64)),
            },
            slo_ms: ms(self.slo_ns as f64),
            // the contract: share of admitted requests over slo_ms (all admitted requests complete in a
            // simulation; in a replay, unfinished ones count as violations via `failed`).
            slo_violation_rate: ratio(self.slo_violations, self.admitted),
            accuracy: ratio(self.correct, self.answered),
            mean_batch_size: ratio(self.batch_requests, self.batches),
            rejected_queue_full: self.rejected_queue_full,
            batches: self.batches,
            ..Summary::default()
        }
    }
}
