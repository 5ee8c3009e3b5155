//! The statistics of a validation: a simulated value against N repeated replays.
//!
//! Every replay metric is treated as a sample of N independent runs; the simulation is one
//! value. Reported per metric: the replays' mean, a 95% confidence interval of that mean
//! (Student t, N − 1 degrees of freedom), their coefficient of variation, the simulation's
//! relative error against the mean, whether the simulation lies inside the interval, and a
//! two one-sided tests (TOST) equivalence test at ±δ of the simulated value. For latency, the
//! two-sample Kolmogorov–Smirnov distance between the simulated and the replays' pooled
//! per-request latencies.

use serde::Serialize;

use crate::analysis::stats::{mean_ci95, student_t_quantile};

/// The N replays of one metric.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Sample {
    pub mean: f64,
    /// Sample standard deviation (N − 1); 0 for one replay.
    pub sd: f64,
    pub n: usize,
}

impl Sample {
    pub fn of(values: &[f64]) -> Option<Sample> {
        let v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        // the seed aggregation's mean and sd (NaN sd for one value: no spread measured)
        let m = mean_ci95(&v);
        Some(Sample { mean: m.mean, sd: if m.n > 1 { m.std } else { 0.0 }, n: m.n })
    }

    fn se(&self) -> f64 {
        self.sd / (self.n as f64).sqrt()
    }

    /// The 95% confidence interval of the mean; unbounded for one replay.
    pub fn ci95(&self) -> [f64; 2] {
        if self.n < 2 {
            return [f64::NEG_INFINITY, f64::INFINITY];
        }
        let h = student_t_quantile(0.975, (self.n - 1) as f64) * self.se();
        [self.mean - h, self.mean + h]
    }

    /// Coefficient of variation: sd / |mean| (0 when the mean is 0 and so is the spread).
    pub fn cv(&self) -> f64 {
        if self.mean == 0.0 { if self.sd == 0.0 { 0.0 } else { f64::INFINITY } } else { self.sd / self.mean.abs() }
    }

    /// TOST at ±`margin` × |`reference`|: both one-sided t tests (α = 0.05) reject that the
    /// replays' mean lies outside `reference ± margin·|reference|`. With no spread at all
    /// (identical replays) it is whether the mean lies inside the margin.
    pub fn equivalent(&self, reference: f64, margin: f64) -> bool {
        let d = margin * reference.abs();
        let (lo, hi) = (reference - d, reference + d);
        let se = self.se();
        if self.n < 2 {
            return false;
        }
        if se == 0.0 {
            return self.mean > lo && self.mean < hi;
        }
        let t = student_t_quantile(0.95, (self.n - 1) as f64);
        (self.mean - lo) / se > t && (hi - self.mean) / se > t
    }
}

/// The two-sample Kolmogorov–Smirnov distance: sup |F_a − F_b| over the pooled values.
pub fn ks_distance(a: &[f64], b: &[f64]) -> Option<f64> {
    let sorted = |v: &[f64]| {
        let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let (a, b) = (sorted(a), sorted(b));
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let (mut i, mut j, mut d) = (0usize, 0usize, 0.0f64);
    while i < a.len() && j < b.len() {
        let x = a[i].min(b[j]);
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        d = d.max((i as f64 / a.len() as f64 - j as f64 / b.len() as f64).abs());
    }
    Some(d)
}

/// (sim − reference) / reference; 0 when both are 0, `None` when either is missing or only
/// the reference is 0.
pub fn rel_error(sim: Option<f64>, reference: Option<f64>) -> Option<f64> {
    match (sim, reference) {
        (Some(a), Some(b)) if b != 0.0 => Some((a - b) / b),
        (Some(a), Some(b)) if a == b => Some(0.0),
        _ => None,
    }
}

/// One metric of a validation (`validation.json`'s `metrics` map).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MetricStats {
    pub sim: Option<f64>,
    pub replay_mean: Option<f64>,
    pub replay_ci95: Option<[f64; 2]>,
    pub replay_cv: Option<f64>,
    /// (sim − replay_mean) / replay_mean.
    pub rel_error: Option<f64>,
    /// The simulation inside the replays' 95% interval.
    pub within_band: Option<bool>,
    pub tost_10: Option<bool>,
    pub tost_5: Option<bool>,
    /// Latency metrics: KS distance between the simulated and the replayed latencies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ks: Option<f64>,
    /// Every replay's value, in run order.
    pub replays: Vec<Option<f64>>,
}

impl MetricStats {
    pub fn new(sim: Option<f64>, replays: &[Option<f64>], ks: Option<f64>) -> Self {
        let values: Vec<f64> = replays.iter().flatten().copied().collect();
        let s = Sample::of(&values);
        let rel_error = rel_error(sim, s.as_ref().map(|s| s.mean));
        let ci = s.as_ref().map(Sample::ci95);
        MetricStats {
            sim,
            replay_mean: s.as_ref().map(|s| s.mean),
            replay_ci95: ci.filter(|c| c.iter().all(|x| x.is_finite())),
            replay_cv: s.as_ref().map(Sample::cv),
            rel_error,
            within_band: sim.zip(ci).map(|(x, c)| x >= c[0] && x <= c[1]),
            tost_10: sim.zip(s.as_ref()).map(|(x, s)| s.equivalent(x, 0.10)),
            tost_5: sim.zip(s.as_ref()).map(|(x, s)| s.equivalent(x, 0.05)),
            ks,
            replays: replays.to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_interval_and_spread_of_three_replays() {
        let s = Sample::of(&[9.0, 10.0, 11.0]).unwrap();
        assert_eq!((s.mean, s.sd, s.n), (10.0, 1.0, 3));
        // t(0.975, 2) = 4.302652729749464 (tabulated to 16 digits), se = 1/√3
        let [lo, hi] = s.ci95();
        let h = 4.302_652_729_749_464 / 3f64.sqrt();
        assert!((hi - 10.0 - h).abs() < 1e-9 && (10.0 - lo - h).abs() < 1e-9);
        assert!((s.cv() - 0.1).abs() < 1e-12);
        assert_eq!(Sample::of(&[]), None);
        assert_eq!(Sample::of(&[4.0]).unwrap().ci95(), [f64::NEG_INFINITY, f64::INFINITY]);
    }

    #[test]
    fn tost_needs_a_tight_sample_inside_the_margin() {
        // mean 100, se 0.577: margin ±10 is far beyond t(0.95, 2) · se = 1.69 → equivalent
        let tight = Sample::of(&[99.0, 100.0, 101.0]).unwrap();
        assert!(tight.equivalent(100.0, 0.10) && tight.equivalent(102.0, 0.05));
        // 91 ± 10% reaches 100.1: the mean is inside, but not by t · se
        assert!(!tight.equivalent(91.0, 0.10));
        assert!(!tight.equivalent(80.0, 0.10));
        // a wide sample cannot show equivalence even centred on the reference
        let wide = Sample::of(&[70.0, 100.0, 130.0]).unwrap();
        assert!(!wide.equivalent(100.0, 0.10));
        // identical replays: inside the margin or not
        let same = Sample::of(&[5.0, 5.0, 5.0]).unwrap();
        assert!(same.equivalent(5.2, 0.05) && !same.equivalent(6.0, 0.05));
    }

    #[test]
    fn ks_distance_of_shifted_and_equal_samples() {
        let a: Vec<f64> = (0..100).map(f64::from).collect();
        assert_eq!(ks_distance(&a, &a), Some(0.0));
        let b: Vec<f64> = (50..150).map(f64::from).collect();
        assert!((ks_distance(&a, &b).unwrap() - 0.5).abs() < 1e-12);
        let c: Vec<f64> = (200..300).map(f64::from).collect();
        assert_eq!(ks_distance(&a, &c), Some(1.0));
        assert_eq!(ks_distance(&a, &[]), None);
    }

    #[test]
    fn metric_stats_report_band_and_error() {
        let m = MetricStats::new(Some(10.5), &[Some(9.0), Some(10.0), Some(11.0)], None);
        assert_eq!(m.replay_mean, Some(10.0));
        assert!((m.rel_error.unwrap() - 0.05).abs() < 1e-12);
        assert_eq!(m.within_band, Some(true));
        assert_eq!(m.tost_10, Some(false)); // se 0.577 → needs |mean − bound| > 1.69; 10 vs 9.45 fails
        let far = MetricStats::new(Some(20.0), &[Some(9.0), Some(10.0), Some(11.0)], None);
        assert_eq!(far.within_band, Some(false));
    }
}
