//! Cost tables: how long a batch takes on a (model, backend, device) and how much energy the
//! whole device draws meanwhile.
//!
//! A row gives the mean `latency_ms` and `energy_j` of one batch of `batch_size` requests.
//! The service time is deterministic unless the row says otherwise:
//! - `distribution = "exponential"`: exponential with mean `latency_ms` (for queueing checks);
//! - latency quantile columns (`latency_p50_ms`, `latency_p90_ms`, `latency_p95_ms`,
//!   `latency_p99_ms`, optional `latency_min_ms` / `latency_max_ms`): the inverse CDF is the
//!   piecewise-linear curve through those points, flat below the lowest and above the highest
//!   given quantile;
//! - `samples_ms`: the empirical distribution of recorded latencies (drawn uniformly).
//!
//! When the service time is drawn, the batch's energy is `energy_j × drawn / latency_ms`: the
//! device's active power during a batch (`energy_j / latency_ms`) is taken as constant, so a
//! slower batch costs proportionally more. With a deterministic row, energy is exactly `energy_j`.

use rand::RngExt;
use rand_distr::{Distribution, Exp1};
use serde::{Deserialize, Serialize};

use crate::core::{Joules, SimDuration, StreamRng};

/// How a row's service time is distributed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LatencyDistribution {
    #[default]
    Deterministic,
    Exponential,
    Quantiles,
    Samples,
}

/// One row of a cost table, as written in an experiment's `[[cost]]` or a cost CSV.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CostRow {
    pub model: String,
    pub backend: String,
    pub device: String,
    pub batch_size: u32,
    pub latency_ms: f64,
    pub energy_j: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution: Option<LatencyDistribution>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_min_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_p50_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_p90_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_p95_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_p99_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_max_ms: Option<f64>,
    /// Recorded latencies (ms) of this batch size; drawn uniformly when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub samples_ms: Option<Vec<f64>>,
    /// True when `energy_j` comes from an estimate rather than a hardware counter.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub energy_estimated: bool,
}

/// Why a row cannot be turned into a service-time distribution.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CostError {
    #[error("`{field}` must be a finite number > 0 (got {value})")]
    NotPositive { field: &'static str, value: f64 },
    #[error("`energy_j` must be a finite number >= 0 (got {0})")]
    BadEnergy(f64),
    #[error("`batch_size` must be at least 1")]
    ZeroBatch,
    #[error("distribution = \"quantiles\" needs at least one latency_pXX_ms column")]
    NoQuantiles,
    #[error("latency quantiles must not decrease with the quantile ({0})")]
    QuantilesDecrease(String),
    #[error("distribution = \"samples\" needs a non-empty `samples_ms` list of positive latencies")]
    NoSamples,
}

/// A service-time distribution with its energy model, resolved from a row.
#[derive(Clone, Debug, PartialEq)]
pub enum ServiceDist {
    Deterministic {
        latency: SimDuration,
        energy: Joules,
    },
    Exponential {
        mean_s: f64,
        power_w: f64,
    },
    /// Inverse CDF through `(probability, latency_s)` knots, sorted by probability.
    Quantiles {
        knots: Vec<(f64, f64)>,
        power_w: f64,
    },
    Samples {
        samples_s: Vec<f64>,
        power_w: f64,
    },
}

fn positive(field: &'static str, v: f64) -> Result<f64, CostError> {
    if v.is_finite() && v > 0.0 { Ok(v) } else { Err(CostError::NotPositive { field, value: v }) }
}

impl CostRow {
    /// A deterministic row (convenience for tests and generated tables).
    pub fn fixed(model: &str, backend: &str, device: &str, batch_size: u32, latency_ms: f64, energy_j: f64) -> Self {
        CostRow {
            model: model.into(),
            backend: backend.into(),
            device: device.into(),
            batch_size,
            latency_ms,
            energy_j,
            distribution: None,
            latency_min_ms: None,
            latency_p50_ms: None,
            latency_p90_ms: None,
            latency_p95_ms: None,
            latency_p99_ms: None,
            latency_max_ms: None,
            samples_ms: None,
            energy_estimated: false,
        }
    }

    fn quantile_knots(&self) -> Vec<(f64, f64)> {
        [
            (0.0, self.latency_min_ms),
            (0.5, self.latency_p50_ms),
            (0.9, self.latency_p90_ms),
            (0.95, self.latency_p95_ms),
            (0.99, self.latency_p99_ms),
            (1.0, self.latency_max_ms),
        ]
        .into_iter()
        .filter_map(|(p, v)| v.map(|v| (p, v / 1e3)))
        .collect()
    }

    /// The distribution this row describes, after validating its numbers.
    pub fn service_dist(&self) -> Result<ServiceDist, CostError> {
        if self.batch_size == 0 {
            return Err(CostError::ZeroBatch);
        }
        let latency_ms = positive("latency_ms", self.latency_ms)?;
        if !(self.energy_j.is_finite() && self.energy_j >= 0.0) {
            return Err(CostError::BadEnergy(self.energy_j));
        }
        let power_w = self.energy_j / (latency_ms / 1e3);
        let has_quantiles = self.quantile_knots().iter().any(|(p, _)| *p > 0.0 && *p < 1.0);
        let dist = self.distribution.unwrap_or(if self.samples_ms.is_some() {
            LatencyDistribution::Samples
        } else if has_quantiles {
            LatencyDistribution::Quantiles
        } else {
            LatencyDistribution::Deterministic
        });
        Ok(match dist {
            LatencyDistribution::Deterministic => {
                ServiceDist::Deterministic { latency: SimDuration::from_millis_f64(latency_ms), energy: Joules(self.energy_j) }
            }
            LatencyDistribution::Exponential => ServiceDist::Exponential { mean_s: latency_ms / 1e3, power_w },
            LatencyDistribution::Quantiles => {
                let knots = self.quantile_knots();
                if !has_quantiles {
                    return Err(CostError::NoQuantiles);
                }
                for (_, v) in &knots {
                    positive("latency quantile", *v * 1e3)?;
                }
                if knots.windows(2).any(|w| w[1].1 < w[0].1) {
                    let s = knots.iter().map(|(p, v)| format!("p{}={}ms", p * 100.0, v * 1e3)).collect::<Vec<_>>().join(", ");
                    return Err(CostError::QuantilesDecrease(s));
                }
                ServiceDist::Quantiles { knots, power_w }
            }
            LatencyDistribution::Samples => {
                let s = self.samples_ms.as_deref().unwrap_or(&[]);
                if s.is_empty() || s.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
                    return Err(CostError::NoSamples);
                }
                ServiceDist::Samples { samples_s: s.iter().map(|v| v / 1e3).collect(), power_w }
            }
        })
    }
}

impl ServiceDist {
    /// Draws one batch's service time and energy. Deterministic rows draw nothing, so adding
    /// randomness elsewhere never changes a deterministic run.
    #[inline]
    pub fn draw(&self, rng: &mut StreamRng) -> (SimDuration, Joules) {
        match self {
            ServiceDist::Deterministic { latency, energy } => (*latency, *energy),
            ServiceDist::Exponential { mean_s, power_w } => {
                let e: f64 = Exp1.sample(rng);
                let s = e * mean_s;
                (SimDuration::from_secs_f64(s), Joules(power_w * s))
            }
            ServiceDist::Quantiles { knots, power_w } => {
                let u: f64 = rng.random();
                let s = interpolate_inverse_cdf(knots, u);
                (SimDuration::from_secs_f64(s), Joules(power_w * s))
            }
            ServiceDist::Samples { samples_s, power_w } => {
                let s = samples_s[rng.random_range(0..samples_s.len())];
                (SimDuration::from_secs_f64(s), Joules(power_w * s))
            }
        }
    }

    /// Mean service time in seconds (what a predictor or controller may assume).
    pub fn mean_s(&self) -> f64 {
        match self {
            ServiceDist::Deterministic { latency, .. } => latency.as_secs_f64(),
            ServiceDist::Exponential { mean_s, .. } => *mean_s,
            ServiceDist::Quantiles { knots, .. } => {
                // integral of the piecewise-linear inverse CDF over [0, 1]
                let mut m = 0.0;
                let first = knots[0];
                m += first.0 * first.1;
                for w in knots.windows(2) {
                    m += (w[1].0 - w[0].0) * (w[0].1 + w[1].1) / 2.0;
                }
                let last = knots[knots.len() - 1];
                m + (1.0 - last.0) * last.1
            }
            ServiceDist::Samples { samples_s, .. } => samples_s.iter().sum::<f64>() / samples_s.len() as f64,
        }
    }

    /// The same distribution `d` later (a fixed per-execution overhead added), at the row's power.
    /// An exponential row has no shifted form in this enum and is returned unchanged.
    pub fn shifted(&self, d: SimDuration) -> ServiceDist {
        let s = d.as_secs_f64();
        match self {
            ServiceDist::Deterministic { latency, .. } => {
                let to = SimDuration(latency.0 + d.0);
                ServiceDist::Deterministic { latency: to, energy: self.energy_for(to) }
            }
            ServiceDist::Exponential { .. } => self.clone(),
            ServiceDist::Quantiles { knots, power_w } => {
                ServiceDist::Quantiles { knots: knots.iter().map(|&(p, v)| (p, v + s)).collect(), power_w: *power_w }
            }
            ServiceDist::Samples { samples_s, power_w } => {
                ServiceDist::Samples { samples_s: samples_s.iter().map(|v| v + s).collect(), power_w: *power_w }
            }
        }
    }

    /// The energy of a batch that took `d` (an observed execution time): the row's power × `d`.
    pub fn energy_for(&self, d: SimDuration) -> Joules {
        match self {
            ServiceDist::Deterministic { latency, energy } if latency.0 > 0 => Joules(energy.0 * d.0 as f64 / latency.0 as f64),
            ServiceDist::Deterministic { energy, .. } => *energy,
            ServiceDist::Exponential { power_w, .. } | ServiceDist::Quantiles { power_w, .. } | ServiceDist::Samples { power_w, .. } => {
                Joules(power_w * d.as_secs_f64())
            }
        }
    }

    /// Mean energy of one batch.
    pub fn mean_energy(&self) -> Joules {
        match self {
            ServiceDist::Deterministic { energy, .. } => *energy,
            ServiceDist::Exponential { power_w, .. } | ServiceDist::Quantiles { power_w, .. } | ServiceDist::Samples { power_w, .. } => {
                Joules(power_w * self.mean_s())
            }
        }
    }
}

fn interpolate_inverse_cdf(knots: &[(f64, f64)], u: f64) -> f64 {
    let first = knots[0];
    if u <= first.0 {
        return first.1;
    }
    for w in knots.windows(2) {
        let ((p0, v0), (p1, v1)) = (w[0], w[1]);
        if u <= p1 {
            return v0 + (v1 - v0) * (u - p0) / (p1 - p0);
        }
    }
    knots[knots.len() - 1].1
}

/// Linear interpolation of latency and energy between two measured batch sizes.
pub fn interpolate_rows(lo: &CostRow, hi: &CostRow, batch_size: u32) -> CostRow {
    let f = (batch_size - lo.batch_size) as f64 / (hi.batch_size - lo.batch_size) as f64;
    let mut r = CostRow::fixed(
        &lo.model,
        &lo.backend,
        &lo.device,
        batch_size,
        lo.latency_ms + f * (hi.latency_ms - lo.latency_ms),
        lo.energy_j + f * (hi.energy_j - lo.energy_j),
    );
    r.distribution = match (lo.distribution, hi.distribution) {
        (Some(LatencyDistribution::Exponential), Some(LatencyDistribution::Exponential)) => Some(LatencyDistribution::Exponential),
        _ => None,
    };
    r.energy_estimated = lo.energy_estimated || hi.energy_estimated;
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::RngStreams;

    #[test]
    fn deterministic_row_is_exact() {
        let d = CostRow::fixed("m", "b", "d", 4, 5.5, 1.1).service_dist().unwrap();
        let mut rng = RngStreams::new(1).stream("s");
        assert_eq!(d.draw(&mut rng), (SimDuration(5_500_000), Joules(1.1)));
    }

    #[test]
    fn quantile_inverse_cdf_interpolates_and_energy_scales() {
        let mut r = CostRow::fixed("m", "b", "d", 1, 10.0, 2.0);
        r.latency_p50_ms = Some(10.0);
        r.latency_p99_ms = Some(20.0);
        let ServiceDist::Quantiles { knots, power_w } = r.service_dist().unwrap() else { panic!() };
        assert_eq!(interpolate_inverse_cdf(&knots, 0.3), 0.010);
        assert!((interpolate_inverse_cdf(&knots, 0.745) - 0.015).abs() < 1e-12);
        assert_eq!(interpolate_inverse_cdf(&knots, 0.999), 0.020);
        assert!((power_w - 200.0).abs() < 1e-9);
    }

    #[test]
    fn bad_rows_are_rejected() {
        assert_eq!(CostRow::fixed("m", "b", "d", 0, 1.0, 1.0).service_dist(), Err(CostError::ZeroBatch));
        assert!(matches!(CostRow::fixed("m", "b", "d", 1, f64::NAN, 1.0).service_dist(), Err(CostError::NotPositive { .. })));
        assert_eq!(CostRow::fixed("m", "b", "d", 1, 1.0, -1.0).service_dist(), Err(CostError::BadEnergy(-1.0)));
    }

    #[test]
    fn exponential_mean_is_right() {
        let mut r = CostRow::fixed("m", "b", "d", 1, 2.0, 1.0);
        r.distribution = Some(LatencyDistribution::Exponential);
        let d = r.service_dist().unwrap();
        let mut rng = RngStreams::new(3).stream("s");
        let n = 200_000;
        let mean = (0..n).map(|_| d.draw(&mut rng).0.as_secs_f64()).sum::<f64>() / n as f64;
        assert!((mean / 0.002 - 1.0).abs() < 0.01, "{mean}");
    }
}
