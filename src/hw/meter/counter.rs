//! Pure counter arithmetic (no I/O): turn raw, wrapping energy-counter samples into one
//! monotonic cumulative energy.
//!
//! Hardware energy counters (RAPL `energy_uj`, NVML total energy) are unsigned integers that
//! only grow and, for RAPL, wrap to zero after `max_energy_range_uj` (about 262 kJ on many
//! Intel parts: roughly an hour at 70 W). [`CounterTracker`] keeps one state per domain and:
//!
//! * **wrap-around**: a sample below the previous one means the counter wrapped once:
//!   `delta = (max_range - previous) + sample`. Any backwards step is read as a wrap, *even a
//!   small one*: energy counters never decrease otherwise, and a counter that is sampled at
//!   least once per wrap period (minutes to hours) cannot wrap twice unseen. A glitch that
//!   steps back a little would therefore be counted as almost a full range; the wrap count in
//!   [`CounterTracker::wraps`] makes that visible. Counters without a known range
//!   (`max_range_uj: None`, e.g. NVML's 64-bit millijoule counter) report a backwards step as
//!   [`MeterError::CounterReset`] instead (a driver reload resets them).
//! * **stalls**: RAPL updates about every millisecond and NVML every ~20–100 ms; a domain whose
//!   value has not changed for longer than `stall_after` (default 100 ms) is flagged
//!   `stalled`. That is a warning (surfaced through [`MeterHealth`]), not an error: a frozen
//!   counter under-reports, and the run summary should say so.
//! * **domains** (package, DRAM, …) are tracked separately and summed.
//! * **disappearance** is detected by the I/O layer, which returns
//!   [`MeterError::Disappeared`] and does not call [`CounterTracker::update`]: the tracker keeps
//!   its last good value, and if the counter comes back the energy in between is recovered
//!   from the next sample.
//!
//! The first sample is the baseline: energy is counted from it.

use std::time::Duration;

use super::{MeterError, MeterHealth};

/// Default stall threshold (RAPL updates every ~1 ms; 100 ms is 100 missed updates).
pub const DEFAULT_STALL_AFTER: Duration = Duration::from_millis(100);

/// One counter domain: its label and wrap range in microjoules (`None`: never wraps).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterDomain {
    pub name: String,
    pub max_range_uj: Option<u64>,
}

#[derive(Debug, Clone)]
struct DomainState {
    spec: CounterDomain,
    last_raw: Option<u64>,
    accumulated_uj: u128,
    last_change_at: Duration,
    stalled: bool,
}

/// Monotonic cumulative energy from raw wrapping counter samples (see the module docs).
#[derive(Debug, Clone)]
pub struct CounterTracker {
    meter: &'static str,
    domains: Vec<DomainState>,
    stall_after: Duration,
    last_at: Option<Duration>,
    wraps: u32,
    stall_events: u32,
}

impl CounterTracker {
    /// `meter` names the source in error messages ("RAPL", "NVML").
    pub fn new(meter: &'static str, domains: Vec<CounterDomain>, stall_after: Duration) -> Self {
        let domains = domains
            .into_iter()
            .map(|spec| DomainState { spec, last_raw: None, accumulated_uj: 0, last_change_at: Duration::ZERO, stalled: false })
            .collect();
        Self { meter, domains, stall_after, last_at: None, wraps: 0, stall_events: 0 }
    }

    /// Feed one sample: `raw_uj[i]` is domain `i`'s counter at time `at`. On error the tracker
    /// is unchanged.
    pub fn update(&mut self, at: Duration, raw_uj: &[u64]) -> Result<(), MeterError> {
        if raw_uj.len() != self.domains.len() {
            return Err(MeterError::InvalidSample(format!("{} values for {} domains", raw_uj.len(), self.domains.len())));
        }
        if let Some(prev) = self.last_at
            && at < prev
        {
            return Err(MeterError::InvalidSample(format!("time went backwards ({prev:?} -> {at:?})")));
        }
        // Validate and compute every delta before mutating, so an error leaves no trace.
        let mut deltas = Vec::with_capacity(raw_uj.len());
        for (d, &raw) in self.domains.iter().zip(raw_uj) {
            if let Some(max) = d.spec.max_range_uj
                && raw > max
            {
                return Err(MeterError::InvalidSample(format!("{} domain {}: value {raw} above its range {max}", self.meter, d.spec.name)));
            }
            let delta = match (d.last_raw, d.spec.max_range_uj) {
                (None, _) => 0,
                (Some(prev), _) if raw >= prev => u128::from(raw - prev),
                (Some(prev), Some(max)) => u128::from(max - prev) + u128::from(raw),
                (Some(prev), None) => {
                    return Err(MeterError::CounterReset { meter: self.meter, previous: prev, current: raw });
                }
            };
            deltas.push(delta);
        }
        for ((d, &raw), delta) in self.domains.iter_mut().zip(raw_uj).zip(deltas) {
            match d.last_raw {
                None => d.last_change_at = at,
                Some(prev) => {
                    if raw < prev {
                        self.wraps += 1;
                    }
                    if raw != prev {
                        d.last_change_at = at;
                        d.stalled = false;
                    } else if !d.stalled && at.saturating_sub(d.last_change_at) > self.stall_after {
                        d.stalled = true;
                        self.stall_events += 1;
                    }
                }
            }
            d.accumulated_uj += delta;
            d.last_raw = Some(raw);
        }
        self.last_at = Some(at);
        Ok(())
    }

    /// Cumulative energy over all domains since the first sample, in joules.
    pub fn energy_j(&self) -> f64 {
        self.domains.iter().map(|d| d.accumulated_uj as f64).sum::<f64>() * 1e-6
    }

    /// Cumulative energy over all domains since the first sample, exact, in microjoules.
    pub fn energy_uj(&self) -> u128 {
        self.domains.iter().map(|d| d.accumulated_uj).sum()
    }

    /// Cumulative energy per domain, in joules.
    pub fn domain_energy_j(&self) -> Vec<(&str, f64)> {
        self.domains.iter().map(|d| (d.spec.name.as_str(), d.accumulated_uj as f64 * 1e-6)).collect()
    }

    /// Time of the last accepted sample.
    pub fn last_at(&self) -> Option<Duration> {
        self.last_at
    }

    /// Wrap-arounds handled so far (over all domains).
    pub fn wraps(&self) -> u32 {
        self.wraps
    }

    /// Names of the domains that are stalled right now.
    pub fn stalled_domains(&self) -> Vec<&str> {
        self.domains.iter().filter(|d| d.stalled).map(|d| d.spec.name.as_str()).collect()
    }

    pub fn health(&self) -> MeterHealth {
        MeterHealth { stalled: self.domains.iter().any(|d| d.stalled), stall_events: self.stall_events, wraps: self.wraps, gaps: 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: u64 = 262_143_328_850; // a real Intel max_energy_range_uj

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn tracker(ranges: &[Option<u64>]) -> CounterTracker {
        let domains = ranges.iter().enumerate().map(|(i, &max_range_uj)| CounterDomain { name: format!("d{i}"), max_range_uj }).collect();
        CounterTracker::new("RAPL", domains, DEFAULT_STALL_AFTER)
    }

    /// Feed a recorded single-domain sequence `(ms, raw)` and return the final energy in µJ.
    fn replay(t: &mut CounterTracker, seq: &[(u64, u64)]) -> u128 {
        for &(at, raw) in seq {
            t.update(ms(at), &[raw]).unwrap();
        }
        t.energy_uj()
    }

    #[test]
    fn plain_increase_counts_from_the_first_sample() {
        let mut t = tracker(&[Some(MAX)]);
        let e = replay(&mut t, &[(0, 1_000_000), (1, 1_075_000), (2, 1_150_000)]);
        assert_eq!(e, 150_000);
        assert_eq!(t.wraps(), 0);
    }

    #[test]
    fn wraps_once() {
        let mut t = tracker(&[Some(MAX)]);
        let e = replay(&mut t, &[(0, MAX - 300), (10, MAX - 100), (20, 400), (30, 900)]);
        // 200 before the wrap, 100 to the top, 400 after it, then 500.
        assert_eq!(e, 1_200);
        assert_eq!(t.wraps(), 1);
    }

    #[test]
    fn wraps_twice() {
        let max = 10_000;
        let mut t = tracker(&[Some(max)]);
        let seq = [(0, 9_000), (50, 2_000), (100, 8_000), (150, 1_000), (200, 1_500)];
        let e = replay(&mut t, &seq);
        let expected = (max - 9_000 + 2_000) + (8_000 - 2_000) + (max - 8_000 + 1_000) + 500;
        assert_eq!(e, u128::from(expected));
        assert_eq!(t.wraps(), 2);
    }

    #[test]
    fn a_small_backwards_step_is_read_as_a_wrap() {
        // Documented behaviour: any decrease is one wrap, however small.
        let max = 10_000;
        let mut t = tracker(&[Some(max)]);
        let e = replay(&mut t, &[(0, 5_000), (1, 4_990)]);
        assert_eq!(e, u128::from(max - 5_000 + 4_990));
        assert_eq!(t.wraps(), 1);
    }

    #[test]
    fn a_counter_without_range_that_goes_back_was_reset() {
        let mut t = tracker(&[None]);
        t.update(ms(0), &[5_000]).unwrap();
        t.update(ms(1), &[6_000]).unwrap();
        let err = t.update(ms(2), &[10]).unwrap_err();
        assert!(matches!(err, MeterError::CounterReset { previous: 6_000, current: 10, .. }));
        assert_eq!(t.energy_uj(), 1_000, "last good value kept");
    }

    #[test]
    fn a_stall_is_flagged_then_cleared_and_counted() {
        let mut t = tracker(&[Some(MAX)]);
        // Updates every 1 ms, then frozen at 2_000 from 2 ms to 150 ms, then moving again.
        let mut seq: Vec<(u64, u64)> = vec![(0, 0), (1, 1_000), (2, 2_000)];
        seq.extend((10..=150).step_by(10).map(|t| (t, 2_000)));
        for &(at, raw) in &seq {
            t.update(ms(at), &[raw]).unwrap();
            let frozen_for = at.saturating_sub(2);
            assert_eq!(t.health().stalled, frozen_for > 100, "at {at} ms");
        }
        assert_eq!(t.stalled_domains(), vec!["d0"]);
        t.update(ms(160), &[3_000]).unwrap();
        let h = t.health();
        assert!(!h.stalled);
        assert_eq!(h.stall_events, 1);
        assert_eq!(t.energy_uj(), 3_000, "a stall is a warning, energy keeps counting");
    }

    #[test]
    fn domains_are_summed_and_reported_separately() {
        let mut t = tracker(&[Some(1_000_000), Some(MAX)]);
        t.update(ms(0), &[999_000, 10]).unwrap();
        t.update(ms(1000), &[74_000, 15_000_010]).unwrap(); // pkg wrapped
        let per = t.domain_energy_j();
        assert_eq!(per[0], ("d0", 0.075));
        assert_eq!(per[1], ("d1", 15.0));
        assert!((t.energy_j() - 15.075).abs() < 1e-12);
    }

    #[test]
    fn disappearance_keeps_the_last_good_value_and_recovers() {
        // The I/O layer fails to read (file gone) and skips `update`; nothing changes.
        let mut t = tracker(&[Some(MAX)]);
        replay(&mut t, &[(0, 100), (1, 1_100)]);
        let before = t.energy_j();
        // ... reads at 2 and 3 ms fail: no update ...
        assert_eq!(t.energy_j(), before);
        assert_eq!(t.last_at(), Some(ms(1)));
        // The counter comes back: the energy spent while it was unreadable is recovered.
        t.update(ms(4), &[4_100]).unwrap();
        assert_eq!(t.energy_uj(), 4_000);
    }

    #[test]
    fn bad_samples_are_errors_and_leave_the_state_unchanged() {
        let mut t = tracker(&[Some(1_000), Some(1_000)]);
        t.update(ms(5), &[10, 20]).unwrap();
        t.update(ms(6), &[30, 40]).unwrap();
        assert!(t.update(ms(7), &[1]).is_err(), "wrong domain count");
        assert!(t.update(ms(4), &[50, 60]).is_err(), "time went backwards");
        assert!(t.update(ms(8), &[50, 5_000]).is_err(), "above range");
        assert_eq!(t.energy_uj(), 40);
        t.update(ms(9), &[31, 41]).unwrap();
        assert_eq!(t.energy_uj(), 42);
    }
}
