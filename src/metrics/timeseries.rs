//! The per-interval time series and the integrator that fills it.
//!
//! Point events (arrivals, decisions, completions) are counted in the interval that contains
//! them (an event exactly on a boundary belongs to the later interval). Levels (queue length,
//! requests in service, power, carbon intensity) are integrated exactly between events, so the
//! `queue_len` and `in_service` columns are *time averages* over the interval and Little's law
//! holds on the recorded series. Energy is ∫ power dt, carbon ∫ power × intensity dt, both split
//! exactly at interval boundaries and at changes of the carbon signal.

use crate::core::{SimTime, time::NANOS_PER_SEC, units::JOULES_PER_KWH};

/// Grid carbon intensity over simulated time (g/kWh), piecewise constant.
#[derive(Clone, Debug, PartialEq)]
pub enum CarbonSignal {
    Constant(f64),
    /// `values[i]` holds from `times[i]` until `times[i + 1]`; the first value also holds before
    /// `times[0]`, the last after the end.
    Steps {
        times: Vec<SimTime>,
        values: Vec<f64>,
    },
}

impl CarbonSignal {
    /// Value at `t` (binary search; for lookups outside the integrator).
    pub fn at(&self, t: SimTime) -> f64 {
        match self {
            CarbonSignal::Constant(v) => *v,
            CarbonSignal::Steps { times, values } => {
                let i = times.partition_point(|&x| x <= t);
                values[i.saturating_sub(1)]
            }
        }
    }
}

/// One row per interval (`timeseries.parquet`, docs/src/metrics.md), stored by column.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TimeSeries {
    pub t_s: Vec<f64>,
    pub arrivals: Vec<u64>,
    pub admitted: Vec<u64>,
    pub skipped: Vec<u64>,
    pub rejected: Vec<u64>,
    pub completed: Vec<u64>,
    /// Time-average number of requests waiting in queues.
    pub queue_len: Vec<f64>,
    /// Time-average number of requests being served.
    pub in_service: Vec<f64>,
    /// Mean facility power over the interval (energy_j / interval length).
    pub power_w: Vec<f64>,
    /// Facility energy drawn in the interval (× PUE), early-exit and warm-up energy included.
    pub energy_j: Vec<f64>,
    pub co2_g: Vec<f64>,
    /// The controller's threshold at the end of the interval.
    pub tau: Vec<Option<f64>>,
    /// Time-average grid intensity over the interval.
    pub carbon_g_per_kwh: Vec<f64>,
    /// The host speed probe's median kernel time per interval, µs (real-time drivers only:
    /// `hw::probe`); written as the `host_probe_us` column when present.
    pub host_probe_us: Option<Vec<Option<f64>>>,
}

impl TimeSeries {
    pub fn len(&self) -> usize {
        self.t_s.len()
    }
    pub fn is_empty(&self) -> bool {
        self.t_s.is_empty()
    }
}

/// `n as f64`, through a signed conversion: x86-64's baseline has no unsigned one, and the
/// counts and nanosecond spans here are far below 2^63, where the two give the same value.
#[inline(always)]
fn as_f64(n: u64) -> f64 {
    debug_assert!(n < 1 << 63);
    n as i64 as f64
}

#[derive(Clone, Copy, Debug, Default)]
struct Bucket {
    arrivals: u64,
    admitted: u64,
    skipped: u64,
    rejected: u64,
    completed: u64,
    q_area: f64,
    s_area: f64,
    energy_j: f64,
    co2_g: f64,
    ci_area: f64,
}

/// Integrates levels between events and emits one [`TimeSeries`] row per interval.
pub struct SeriesAccumulator {
    interval: u64,
    bucket_start: u64,
    last: u64,
    queue_len: u64,
    in_service: u64,
    /// IT power of all devices right now.
    power_w: f64,
    pue: f64,
    carbon: CarbonSignal,
    ci_idx: usize,
    intensity: f64,
    next_change: u64,
    cur: Bucket,
    series: TimeSeries,
    /// ∫ IT power dt over the whole run (device totals, without lumps), joules.
    it_energy_integrated_j: f64,
    /// Facility carbon over the whole run, grams (lumps included).
    co2_total_g: f64,
}

impl SeriesAccumulator {
    pub fn new(interval_ns: u64, pue: f64, carbon: CarbonSignal) -> Self {
        let (intensity, next_change, ci_idx) = match &carbon {
            CarbonSignal::Constant(v) => (*v, u64::MAX, 0),
            CarbonSignal::Steps { times, values } => {
                let i = times.partition_point(|&x| x.0 == 0);
                (values[i.saturating_sub(1)], times.get(i).map_or(u64::MAX, |t| t.0), i)
            }
        };
        SeriesAccumulator {
            interval: interval_ns.max(1),
            bucket_start: 0,
            last: 0,
            queue_len: 0,
            in_service: 0,
            power_w: 0.0,
            pue,
            carbon,
            ci_idx,
            intensity,
            next_change,
            cur: Bucket::default(),
            series: TimeSeries::default(),
            it_energy_integrated_j: 0.0,
            co2_total_g: 0.0,
        }
    }

    /// Integrates the current levels up to `t`, closing intervals on the way. `tau` gives the
    /// controller's threshold at an interval's end.
    #[inline]
    pub fn advance(&mut self, t: SimTime, tau: &dyn Fn(SimTime) -> Option<f64>) {
        let t = t.0;
        // nearly every event falls inside the current interval, before the carbon signal's next
        // change: one segment, no boundary to handle
        if t < self.bucket_start + self.interval && t < self.next_change {
            if t > self.last {
                self.integrate_to(t);
            }
        } else {
            self.advance_across(t, tau);
        }
    }

    /// `advance` across interval boundaries or carbon changes, one segment at a time.
    #[inline(never)]
    fn advance_across(&mut self, t: u64, tau: &dyn Fn(SimTime) -> Option<f64>) {
        while t > self.last {
            let bucket_end = self.bucket_start + self.interval;
            let seg_end = t.min(bucket_end).min(self.next_change);
            self.integrate_to(seg_end);
            if seg_end == self.next_change {
                self.step_carbon();
            }
            if seg_end == bucket_end {
                self.flush(bucket_end, tau(SimTime(bucket_end)));
            }
        }
    }

    /// Integrates the current levels from `last` to `seg_end`, a segment with constant levels.
    #[inline(always)]
    fn integrate_to(&mut self, seg_end: u64) {
        let dt = as_f64(seg_end - self.last);
        let b = &mut self.cur;
        b.q_area += as_f64(self.queue_len) * dt;
        b.s_area += as_f64(self.in_service) * dt;
        b.ci_area += self.intensity * dt;
        let e = self.power_w * dt / NANOS_PER_SEC as f64;
        self.it_energy_integrated_j += e;
        let fe = e * self.pue;
        let co2 = fe * self.intensity / JOULES_PER_KWH;
        b.energy_j += fe;
        b.co2_g += co2;
        self.co2_total_g += co2;
        self.last = seg_end;
    }

    fn step_carbon(&mut self) {
        if let CarbonSignal::Steps { times, values } = &self.carbon {
            self.intensity = values[self.ci_idx];
            self.ci_idx += 1;
            self.next_change = times.get(self.ci_idx).map_or(u64::MAX, |t| t.0);
        }
    }

    fn flush(&mut self, end: u64, tau: Option<f64>) {
        let len = (end - self.bucket_start) as f64;
        let b = std::mem::take(&mut self.cur);
        let s = &mut self.series;
        s.t_s.push(self.bucket_start as f64 / NANOS_PER_SEC as f64);
        s.arrivals.push(b.arrivals);
        s.admitted.push(b.admitted);
        s.skipped.push(b.skipped);
        s.rejected.push(b.rejected);
        s.completed.push(b.completed);
        s.queue_len.push(b.q_area / len);
        s.in_service.push(b.s_area / len);
        s.power_w.push(b.energy_j / (len / NANOS_PER_SEC as f64));
        s.energy_j.push(b.energy_j);
        s.co2_g.push(b.co2_g);
        s.tau.push(tau);
        s.carbon_g_per_kwh.push(b.ci_area / len);
        self.bucket_start = end;
    }

    /// Closes the last (possibly partial) interval at `end` and returns the series.
    pub fn finish(mut self, end: SimTime, tau: &dyn Fn(SimTime) -> Option<f64>) -> (TimeSeries, f64, f64) {
        self.advance(end, tau);
        if self.last > self.bucket_start {
            let last = self.last;
            self.flush(last, tau(SimTime(last)));
        }
        (self.series, self.it_energy_integrated_j, self.co2_total_g)
    }

    // Levels: call after `advance` to the event's time.
    #[inline]
    pub fn set_queue_len(&mut self, n: u64) {
        self.queue_len = n;
    }
    #[inline]
    pub fn set_in_service(&mut self, n: u64) {
        self.in_service = n;
    }
    #[inline]
    pub fn set_power_w(&mut self, p: f64) {
        self.power_w = p;
    }
    #[inline]
    pub fn queue_len(&self) -> u64 {
        self.queue_len
    }
    #[inline]
    pub fn in_service(&self) -> u64 {
        self.in_service
    }
    /// IT power now (W).
    #[inline]
    pub fn power_w(&self) -> f64 {
        self.power_w
    }
    /// Grid intensity now (g/kWh).
    #[inline]
    pub fn intensity(&self) -> f64 {
        self.intensity
    }
    /// The time integrated up to.
    pub fn last_time(&self) -> SimTime {
        SimTime(self.last)
    }
    /// Facility CO₂ so far (g).
    pub fn co2_total_g(&self) -> f64 {
        self.co2_total_g
    }

    // Point events in the current interval.
    #[inline]
    pub fn arrival(&mut self) {
        self.cur.arrivals += 1;
    }
    #[inline]
    pub fn admitted(&mut self) {
        self.cur.admitted += 1;
    }
    #[inline]
    pub fn skipped(&mut self) {
        self.cur.skipped += 1;
    }
    #[inline]
    pub fn rejected(&mut self) {
        self.cur.rejected += 1;
    }
    #[inline]
    pub fn completed(&mut self, n: u64) {
        self.cur.completed += n;
    }

    /// Energy drawn at once outside device power (early-exit inference, instance warm-up), IT
    /// joules. Returns its carbon in grams (facility).
    pub fn lump(&mut self, it_energy_j: f64) -> f64 {
        let fe = it_energy_j * self.pue;
        let co2 = fe * self.intensity / JOULES_PER_KWH;
        self.cur.energy_j += fe;
        self.cur.co2_g += co2;
        self.co2_total_g += co2;
        co2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_time_averaged_and_split_at_boundaries() {
        let none = |_| None;
        let mut a = SeriesAccumulator::new(NANOS_PER_SEC, 1.0, CarbonSignal::Constant(360.0));
        a.set_queue_len(2);
        a.set_power_w(100.0);
        a.advance(SimTime::from_secs_f64(1.5), &none);
        a.set_queue_len(0);
        a.set_power_w(50.0);
        let (s, e, co2) = a.finish(SimTime::from_secs(2), &none);
        assert_eq!(s.len(), 2);
        assert_eq!(s.queue_len, vec![2.0, 1.0]);
        assert_eq!(s.energy_j, vec![100.0, 75.0]);
        assert_eq!(s.power_w, vec![100.0, 75.0]);
        assert_eq!(e, 175.0);
        assert!((co2 - 175.0 * 360.0 / 3.6e6).abs() < 1e-12);
    }

    #[test]
    fn carbon_steps_split_integration() {
        let none = |_| None;
        let sig = CarbonSignal::Steps { times: vec![SimTime::ZERO, SimTime::from_secs_f64(0.25)], values: vec![100.0, 300.0] };
        let mut a = SeriesAccumulator::new(NANOS_PER_SEC, 2.0, sig);
        a.set_power_w(3.6e6); // 1 kWh per second (IT), 2 kWh facility
        let (s, _, co2) = a.finish(SimTime::from_secs(1), &none);
        // 0.25 s at 100 g/kWh and 0.75 s at 300 g/kWh of 2 kWh/s facility energy
        assert!((co2 - 2.0 * (0.25 * 100.0 + 0.75 * 300.0)).abs() < 1e-9);
        assert!((s.carbon_g_per_kwh[0] - 250.0).abs() < 1e-9);
    }

    #[test]
    fn small_steps_and_one_jump_integrate_alike() {
        // events inside an interval take the one-segment path; a jump over boundaries and carbon
        // changes takes the segment loop: both must give the same series
        let none = |_| None;
        let sig =
            || CarbonSignal::Steps { times: vec![SimTime::from_secs_f64(0.3), SimTime::from_secs_f64(1.7)], values: vec![200.0, 500.0] };
        let run = |steps: u64| {
            let mut a = SeriesAccumulator::new(NANOS_PER_SEC / 2, 1.0, sig());
            a.set_queue_len(3);
            a.set_power_w(80.0);
            for i in 1..=steps {
                a.advance(SimTime(3 * NANOS_PER_SEC * i / steps), &none);
            }
            a.finish(SimTime::from_secs(3), &none)
        };
        let (fine, e_fine, co2_fine) = run(3000);
        let (coarse, e_coarse, co2_coarse) = run(1);
        assert_eq!(fine.len(), 6);
        assert_eq!(fine.t_s, coarse.t_s);
        assert_eq!(fine.queue_len, coarse.queue_len);
        assert_eq!(fine.carbon_g_per_kwh, coarse.carbon_g_per_kwh);
        assert!((e_fine - e_coarse).abs() < 1e-9 && (e_fine - 240.0).abs() < 1e-9);
        // 0.3 s before the first step (its value holds there), 1.4 s at 200, 1.3 s at 500 g/kWh,
        // of 80 W
        let expected = 80.0 * (0.3 * 200.0 + 1.4 * 200.0 + 1.3 * 500.0) / JOULES_PER_KWH;
        assert!((co2_fine - expected).abs() < 1e-12 && (co2_coarse - expected).abs() < 1e-12);
    }
}
