//! A host speed probe: a fixed small kernel timed on a side thread every [`PROBE_PERIOD`], so a
//! replay, a calibration or a load profile carries its own record of how fast this host was
//! while it ran. On a shared VM the host's speed drifts 2–3× within minutes; a comparison whose
//! probe drifted says so instead of blaming the simulator.
//!
//! The kernel is pure arithmetic on a few registers (no memory traffic, no allocation), about
//! 0.2 ms on a 2020s x86 core, so the probe costs ~0.1% of one core.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde::Serialize;

/// How often the kernel is timed.
pub const PROBE_PERIOD: Duration = Duration::from_millis(250);

/// Samples per rolling median: 2 s at the default period, long enough to ignore one preempted
/// kernel, short enough to follow a host that slows down for a few seconds.
pub const DRIFT_WINDOW: usize = 8;

/// A comparison whose probe drifted by more than this (max/min of the rolling median − 1) is
/// unreliable: the host, not the model, may explain its error.
pub const UNRELIABLE_DRIFT: f64 = 0.10;

/// Iterations of the kernel's loop.
const KERNEL_ITERATIONS: u64 = 100_000;

/// The fixed work timed by the probe: a xorshift chain mixed into a float accumulator.
pub fn kernel() -> f64 {
    let mut x: u64 = black_box(0x9E37_79B9_7F4A_7C15);
    let mut acc = 0.0f64;
    for _ in 0..KERNEL_ITERATIONS {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        acc = acc.mul_add(0.999_999, (x >> 40) as f64);
    }
    black_box(acc)
}

/// One timing of the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ProbeSample {
    /// Seconds since the probe's start.
    pub t_s: f64,
    /// The kernel's wall time, µs.
    pub kernel_us: f64,
}

/// What a run reports of its probe (the summary's `host_probe`).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ProbeSummary {
    /// Max/min of the kernel time's rolling median ([`DRIFT_WINDOW`] samples); 1.0 = steady.
    pub host_drift: Option<f64>,
    pub median_kernel_us: Option<f64>,
    pub samples: usize,
    pub period_ms: f64,
}

/// Times the kernel on a side thread until [`HostProbe::finish`].
pub struct HostProbe {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<ProbeSample>>>,
}

impl HostProbe {
    /// Starts probing; sample times are measured from `t0`.
    pub fn start(t0: Instant) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = thread::Builder::new().name("host-probe".into()).spawn(move || {
            let mut samples = Vec::new();
            let mut next = Instant::now();
            while !flag.load(Ordering::Relaxed) {
                let start = Instant::now();
                kernel();
                let end = Instant::now();
                samples.push(ProbeSample {
                    t_s: start.saturating_duration_since(t0).as_secs_f64(),
                    kernel_us: end.duration_since(start).as_secs_f64() * 1e6,
                });
                next += PROBE_PERIOD;
                // short sleeps so that `finish` returns promptly
                while !flag.load(Ordering::Relaxed) && Instant::now() < next {
                    thread::sleep(next.saturating_duration_since(Instant::now()).min(Duration::from_millis(20)));
                }
            }
            samples
        })?;
        Ok(HostProbe { stop, thread: Some(thread) })
    }

    /// Stops the probe and returns its samples.
    pub fn finish(mut self) -> Vec<ProbeSample> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().and_then(|t| t.join().ok()).unwrap_or_default()
    }
}

impl Drop for HostProbe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

/// Max/min of the rolling median over `window` samples (all of them when fewer); `None` for an
/// empty probe.
pub fn drift(kernel_us: &[f64], window: usize) -> Option<f64> {
    if kernel_us.is_empty() {
        return None;
    }
    let w = window.clamp(1, kernel_us.len());
    let medians: Vec<f64> = kernel_us.windows(w).map(|s| median(&mut s.to_vec())).collect();
    let max = medians.iter().copied().fold(f64::MIN, f64::max);
    let min = medians.iter().copied().fold(f64::MAX, f64::min);
    (min > 0.0).then(|| max / min)
}

/// The summary of a run's probe.
pub fn summarize(samples: &[ProbeSample]) -> ProbeSummary {
    let us: Vec<f64> = samples.iter().map(|s| s.kernel_us).collect();
    ProbeSummary {
        host_drift: drift(&us, DRIFT_WINDOW),
        median_kernel_us: (!us.is_empty()).then(|| median(&mut us.clone())),
        samples: us.len(),
        period_ms: PROBE_PERIOD.as_secs_f64() * 1e3,
    }
}

/// The probe's median kernel time in each interval `[t, t + interval)` of a time series.
pub fn per_interval(samples: &[ProbeSample], t_s: &[f64], interval_s: f64) -> Vec<Option<f64>> {
    t_s.iter()
        .map(|&t| {
            let mut v: Vec<f64> = samples.iter().filter(|s| s.t_s >= t && s.t_s < t + interval_s).map(|s| s.kernel_us).collect();
            (!v.is_empty()).then(|| median(&mut v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_probe_has_no_drift_and_a_slow_stretch_shows() {
        assert_eq!(drift(&[100.0; 20], DRIFT_WINDOW), Some(1.0));
        // one preempted kernel is ignored by the rolling median
        let mut v = vec![100.0; 20];
        v[10] = 900.0;
        assert_eq!(drift(&v, DRIFT_WINDOW), Some(1.0));
        // a host twice as slow for 3 s shows as 2×
        let v: Vec<f64> = (0..40).map(|i| if (10..22).contains(&i) { 200.0 } else { 100.0 }).collect();
        assert_eq!(drift(&v, DRIFT_WINDOW), Some(2.0));
        assert_eq!(drift(&[], DRIFT_WINDOW), None);
        assert_eq!(drift(&[5.0, 10.0], DRIFT_WINDOW), Some(1.0));
    }

    #[test]
    fn samples_fall_into_their_intervals() {
        let s: Vec<ProbeSample> = (0..8).map(|i| ProbeSample { t_s: i as f64 * 0.25, kernel_us: 10.0 + i as f64 }).collect();
        let m = per_interval(&s, &[0.0, 1.0, 2.0], 1.0);
        assert_eq!(m, vec![Some(11.5), Some(15.5), None]);
    }

    #[test]
    fn the_probe_runs_on_its_thread() {
        let p = HostProbe::start(Instant::now()).unwrap();
        thread::sleep(Duration::from_millis(600));
        let s = p.finish();
        assert!(!s.is_empty() && s.len() <= 4, "{} samples in 0.6 s", s.len());
        assert!(s.iter().all(|x| x.kernel_us > 0.0));
        assert!(summarize(&s).host_drift.is_some());
    }
}
