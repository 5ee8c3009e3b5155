//! Arrival processes: rate traces to arrival times, request traces, constant-rate Poisson.
//!
//! A rate trace gives requests per second for consecutive 1-second steps. Inside each step,
//! arrivals are a Poisson process of that rate (piecewise-constant rate; by memorylessness the
//! process restarts at each step boundary), or evenly spaced with `process = "uniform"`.
//! Arrivals are generated lazily, one at a time, so memory does not grow with the trace.

use rand_distr::{Distribution, Exp1};
use serde::{Deserialize, Serialize};

use crate::core::{SimDuration, SimTime, StreamRng, time::NANOS_PER_SEC};

/// How arrivals are placed inside each second of a rate trace.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArrivalProcess {
    #[default]
    Poisson,
    /// Evenly spaced: the k-th arrival of the trace is at the time the cumulative rate reaches k.
    Uniform,
}

/// A resolved workload.
#[derive(Clone, Debug, PartialEq)]
pub enum ArrivalSpec {
    /// Requests per second for consecutive 1-second steps (already multiplied by `rate_scale`).
    Rate { rates_rps: Vec<f64>, process: ArrivalProcess },
    /// Explicit arrival times in seconds, sorted.
    Times { arrivals_s: Vec<f64> },
}

impl ArrivalSpec {
    /// Nominal end of the workload (last step or last arrival), in simulated time.
    pub fn end(&self) -> SimTime {
        match self {
            ArrivalSpec::Rate { rates_rps, .. } => SimTime::from_secs(rates_rps.len() as u64),
            ArrivalSpec::Times { arrivals_s } => arrivals_s.last().map_or(SimTime::ZERO, |&t| SimTime::from_secs_f64(t)),
        }
    }

    /// Expected number of requests.
    pub fn expected_requests(&self) -> f64 {
        match self {
            ArrivalSpec::Rate { rates_rps, .. } => rates_rps.iter().sum(),
            ArrivalSpec::Times { arrivals_s } => arrivals_s.len() as f64,
        }
    }
}

/// Lazily yields arrival times of an [`ArrivalSpec`].
pub struct ArrivalGen<'a> {
    spec: &'a ArrivalSpec,
    rng: StreamRng,
    /// Current step (rate traces) or next index (time lists).
    k: usize,
    /// Position inside the current step, in seconds (Poisson), or cumulative count (uniform).
    offset_s: f64,
    cum: f64,
    emitted: u64,
    max_requests: u64,
}

impl<'a> ArrivalGen<'a> {
    pub fn new(spec: &'a ArrivalSpec, rng: StreamRng, max_requests: Option<u64>) -> Self {
        ArrivalGen { spec, rng, k: 0, offset_s: 0.0, cum: 0.0, emitted: 0, max_requests: max_requests.unwrap_or(u64::MAX) }
    }

    /// The next arrival time, or `None` when the workload is exhausted.
    #[inline]
    pub fn next_arrival(&mut self) -> Option<SimTime> {
        if self.emitted >= self.max_requests {
            return None;
        }
        let t = match self.spec {
            ArrivalSpec::Times { arrivals_s } => {
                let t = *arrivals_s.get(self.k)?;
                self.k += 1;
                SimTime::from_secs_f64(t)
            }
            ArrivalSpec::Rate { rates_rps, process: ArrivalProcess::Poisson } => loop {
                let rate = *rates_rps.get(self.k)?;
                if rate > 0.0 {
                    let e: f64 = Exp1.sample(&mut self.rng);
                    let next = self.offset_s + e / rate;
                    if next < 1.0 {
                        self.offset_s = next;
                        break SimTime(self.k as u64 * NANOS_PER_SEC) + SimDuration::from_secs_f64(next);
                    }
                }
                self.k += 1;
                self.offset_s = 0.0;
            },
            ArrivalSpec::Rate { rates_rps, process: ArrivalProcess::Uniform } => loop {
                // the (n+1)-th arrival is where the cumulative rate reaches n + 1
                let rate = *rates_rps.get(self.k)?;
                let target = self.emitted as f64 + 1.0;
                if self.cum + rate >= target && rate > 0.0 {
                    let frac = (target - self.cum) / rate;
                    break SimTime(self.k as u64 * NANOS_PER_SEC) + SimDuration::from_secs_f64(frac.min(1.0));
                }
                self.cum += rate;
                self.k += 1;
            },
        };
        self.emitted += 1;
        Some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::RngStreams;

    fn collect(spec: &ArrivalSpec, seed: u64) -> Vec<SimTime> {
        let mut g = ArrivalGen::new(spec, RngStreams::new(seed).stream("arrivals"), None);
        std::iter::from_fn(|| g.next_arrival()).collect()
    }

    #[test]
    fn poisson_counts_follow_the_rate_per_step() {
        let spec = ArrivalSpec::Rate { rates_rps: vec![1000.0, 0.0, 3000.0], process: ArrivalProcess::Poisson };
        let t = collect(&spec, 1);
        let per_sec = |s: u64| t.iter().filter(|x| x.0 / NANOS_PER_SEC == s).count() as f64;
        assert!((per_sec(0) - 1000.0).abs() < 4.0 * 1000f64.sqrt());
        assert_eq!(per_sec(1), 0.0);
        assert!((per_sec(2) - 3000.0).abs() < 4.0 * 3000f64.sqrt());
        assert!(t.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn uniform_spacing_is_exact() {
        let spec = ArrivalSpec::Rate { rates_rps: vec![4.0, 2.0], process: ArrivalProcess::Uniform };
        let t: Vec<f64> = collect(&spec, 1).iter().map(|t| t.as_secs_f64()).collect();
        assert_eq!(t, vec![0.25, 0.5, 0.75, 1.0, 1.5, 2.0]);
    }

    #[test]
    fn max_requests_caps_the_stream() {
        let spec = ArrivalSpec::Rate { rates_rps: vec![100.0; 10], process: ArrivalProcess::Poisson };
        let mut g = ArrivalGen::new(&spec, RngStreams::new(1).stream("a"), Some(5));
        assert_eq!(std::iter::from_fn(|| g.next_arrival()).count(), 5);
    }
}
