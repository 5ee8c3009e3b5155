//! Load-dependent service: a server whose service and transport times grow with the rate of
//! requests it receives (PURE).
//!
//! On a host where the model execution shares CPU cores with the serving stack (HTTP frontend,
//! (de)serialisation, a backend proxy, the client's own threads), every request in flight takes
//! CPU time from the batch that is executing, so a batch of `b` takes longer at 600 requests/s
//! than alone, and so does the request's way in and out of the server. A cost table measured in
//! isolation cannot show that. A [`LoadProfile`] is what `basin load-profile` measures on the
//! real pipeline under open-loop Poisson load at several rates: per rate, the factor by which
//! the mean execution time exceeds the cost table's (weighted by the batch sizes that actually
//! ran) and the per-request transport overhead. The simulator estimates the server's current
//! arrival rate over a sliding window ([`RateWindow`]), multiplies each dispatched batch's
//! service time by the factor at that rate and adds the overhead at that rate on the response
//! path, interpolating linearly between measured rates and holding the end values outside them.
//! The batch's energy is multiplied by the profile's energy factor at that rate: the measured
//! energy of the whole pipeline at that rate over what the cost table predicts for the batches
//! that ran (per-request work of the serving stack that isolated calibration rounds count
//! differently); 1 where the profile does not measure energy.

use std::collections::VecDeque;

use crate::core::{SimDuration, SimTime};

/// The rate window a profile is read at unless `load_window_ms` says otherwise (ms).
pub const DEFAULT_WINDOW_MS: f64 = 200.0;

/// One measured rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LoadPoint {
    /// Requests per second reaching the server.
    pub rps: f64,
    /// Mean execution time at this rate / the cost table's mean (same batch-size mix), ≥ 0.
    pub service_factor: f64,
    /// Per-request time outside the server's queue and execution at this rate (ms).
    pub overhead_ms: f64,
    /// Energy of the pipeline per batch at this rate / the cost table's (1 where not measured).
    pub energy_factor: f64,
}

impl LoadPoint {
    /// Finite values, `rps ≥ 0`, factors `> 0`, overhead `≥ 0`; the message names the field.
    pub fn check(&self) -> Result<(), String> {
        if !(self.rps.is_finite() && self.rps >= 0.0) {
            return Err(format!("`rps` must be a finite number >= 0, got {}", self.rps));
        }
        for (name, v) in [("service_factor", self.service_factor), ("energy_factor", self.energy_factor)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!("`{name}` must be a finite number > 0, got {v} (at {} req/s)", self.rps));
            }
        }
        if !(self.overhead_ms.is_finite() && self.overhead_ms >= 0.0) {
            return Err(format!("`overhead_ms` must be a finite number >= 0, got {} (at {} req/s)", self.overhead_ms, self.rps));
        }
        Ok(())
    }
}

/// The profile's values at one arrival rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LoadAt {
    pub service_factor: f64,
    pub overhead_ms: f64,
    pub energy_factor: f64,
}

/// Service factor and transport overhead as functions of the arrival rate.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadProfile {
    /// Sorted by `rps`, strictly increasing, at least one point.
    points: Vec<LoadPoint>,
    /// The sliding window over which the arrival rate is estimated.
    pub window: SimDuration,
}

impl LoadProfile {
    /// Checks the points (finite, non-negative, strictly increasing rates) and the window.
    pub fn new(mut points: Vec<LoadPoint>, window: SimDuration) -> Result<Self, String> {
        if points.is_empty() {
            return Err("a load profile needs at least one point".into());
        }
        if window.0 == 0 {
            return Err("the rate window must be positive".into());
        }
        for p in &points {
            p.check()?;
        }
        points.sort_by(|a, b| a.rps.total_cmp(&b.rps));
        if let Some(w) = points.windows(2).find(|w| w[0].rps == w[1].rps) {
            return Err(format!("rate {} appears twice", w[0].rps));
        }
        Ok(LoadProfile { points, window })
    }

    /// The values at `rps`: linear between points, the end values outside.
    pub fn at(&self, rps: f64) -> LoadAt {
        let p = &self.points;
        let v = |q: &LoadPoint| LoadAt { service_factor: q.service_factor, overhead_ms: q.overhead_ms, energy_factor: q.energy_factor };
        let (first, last) = (&p[0], &p[p.len() - 1]);
        if rps <= first.rps {
            return v(first);
        }
        if rps >= last.rps {
            return v(last);
        }
        let i = p.partition_point(|q| q.rps <= rps); // 1..len-1
        let (a, b) = (&p[i - 1], &p[i]);
        let w = (rps - a.rps) / (b.rps - a.rps);
        let mix = |x: f64, y: f64| x + w * (y - x);
        LoadAt {
            service_factor: mix(a.service_factor, b.service_factor),
            overhead_ms: mix(a.overhead_ms, b.overhead_ms),
            energy_factor: mix(a.energy_factor, b.energy_factor),
        }
    }

    /// The profile on a host `service`× as slow and `energy`× as costly per batch at every rate,
    /// with `overhead_shift_ms` more transport (clamped at 0): one short pass at one rate tells
    /// how the host stands now against when the profile was measured.
    pub fn rescaled(&self, service: f64, overhead_shift_ms: f64, energy: f64) -> Result<Self, String> {
        let points = self
            .points
            .iter()
            .map(|p| LoadPoint {
                rps: p.rps,
                service_factor: p.service_factor * service,
                overhead_ms: (p.overhead_ms + overhead_shift_ms).max(0.0),
                energy_factor: p.energy_factor * energy,
            })
            .collect();
        LoadProfile::new(points, self.window)
    }
}

/// The arrival rate over the last `window` of simulated time: a count of arrival times kept in
/// a queue (memory: the arrivals of one window).
#[derive(Clone, Debug, Default)]
pub struct RateWindow {
    times: VecDeque<SimTime>,
}

impl RateWindow {
    /// Records an arrival at `now` (times must not decrease).
    #[inline]
    pub fn arrival(&mut self, now: SimTime, window: SimDuration) {
        self.times.push_back(now);
        self.expire(now, window);
    }

    #[inline]
    fn expire(&mut self, now: SimTime, window: SimDuration) {
        while self.times.front().is_some_and(|&t| now.0.saturating_sub(t.0) >= window.0) {
            self.times.pop_front();
        }
    }

    /// Arrivals in `(now − window, now]` per second of window.
    #[inline]
    pub fn rate(&mut self, now: SimTime, window: SimDuration) -> f64 {
        self.expire(now, window);
        self.times.len() as f64 / window.as_secs_f64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile() -> LoadProfile {
        LoadProfile::new(
            vec![
                LoadPoint { rps: 400.0, service_factor: 1.6, overhead_ms: 3.0, energy_factor: 0.5 },
                LoadPoint { rps: 100.0, service_factor: 1.0, overhead_ms: 1.0, energy_factor: 1.0 },
            ],
            SimDuration::from_micros(100_000),
        )
        .unwrap()
    }

    #[test]
    fn interpolates_linearly_and_holds_the_ends() {
        let p = profile();
        let at = |r: f64| {
            let a = p.at(r);
            (a.service_factor, a.overhead_ms, a.energy_factor)
        };
        assert_eq!(at(0.0), (1.0, 1.0, 1.0));
        assert_eq!(at(100.0), (1.0, 1.0, 1.0));
        let (f, o, e) = at(250.0);
        assert!((f - 1.3).abs() < 1e-12 && (o - 2.0).abs() < 1e-12 && (e - 0.75).abs() < 1e-12);
        assert_eq!(at(400.0), (1.6, 3.0, 0.5));
        assert_eq!(at(1e6), (1.6, 3.0, 0.5));
    }

    #[test]
    fn rejects_bad_points() {
        let w = SimDuration::from_micros(100_000);
        assert!(LoadProfile::new(vec![], w).is_err());
        assert!(LoadProfile::new(vec![LoadPoint { rps: 1.0, service_factor: 0.0, overhead_ms: 0.0, energy_factor: 1.0 }], w).is_err());
        assert!(LoadProfile::new(vec![LoadPoint { rps: f64::NAN, service_factor: 1.0, overhead_ms: 0.0, energy_factor: 1.0 }], w).is_err());
        assert!(LoadProfile::new(vec![LoadPoint { rps: 1.0, service_factor: 1.0, overhead_ms: -1.0, energy_factor: 1.0 }], w).is_err());
        assert!(LoadProfile::new(vec![LoadPoint { rps: 1.0, service_factor: 1.0, overhead_ms: 0.0, energy_factor: 0.0 }], w).is_err());
        let p = LoadPoint { rps: 1.0, service_factor: 1.0, overhead_ms: 0.0, energy_factor: 1.0 };
        assert!(LoadProfile::new(vec![p, p], w).is_err());
        assert!(LoadProfile::new(vec![p], SimDuration::ZERO).is_err());
    }

    #[test]
    fn rescaled_scales_factors_and_shifts_overhead() {
        let r = profile().rescaled(1.5, -2.0, 2.0).unwrap();
        let a = r.at(100.0);
        assert_eq!((a.service_factor, a.overhead_ms, a.energy_factor), (1.5, 0.0, 2.0));
        let b = r.at(400.0);
        assert!((b.service_factor - 2.4).abs() < 1e-12 && (b.overhead_ms - 1.0).abs() < 1e-12 && b.energy_factor == 1.0);
        assert!(profile().rescaled(0.0, 0.0, 1.0).is_err());
    }

    #[test]
    fn window_counts_the_last_window_only() {
        let w = SimDuration::from_micros(100_000);
        let mut r = RateWindow::default();
        for ms in [0u64, 10, 20, 50, 99] {
            r.arrival(SimTime(ms * 1_000_000), w);
        }
        assert!((r.rate(SimTime(99_000_000), w) - 50.0).abs() < 1e-9); // 5 in 0.1 s
        // at 115 ms, arrivals at 0 and 10 ms have left (age >= 100 ms)
        assert!((r.rate(SimTime(115_000_000), w) - 30.0).abs() < 1e-9);
        assert_eq!(r.rate(SimTime(1_000_000_000), w), 0.0);
    }
}
