//! Workload and grid traces as plain data: per-second request rates, request arrival times and
//! carbon-intensity series. This module is pure (no I/O); the loaders live in
//! [`crate::io::traces`] and the synthetic generators in `gen` ([`generate`], [`Shape`],
//! [`GenParams`]; `gen` is a reserved word in edition 2024, hence `r#gen` in paths).
//!
//! - [`RateTrace`]: requests per second in consecutive 1 s steps, the form of the IPA Twitter
//!   workloads (Ghafouri et al., "IPA: Inference Pipeline Adaptation", JSys 2024). Arrivals
//!   inside a second are read as a Poisson process of that rate (SPEC, "Trace formats").
//! - [`RequestTrace`]: explicit arrival instants (e.g. the Azure LLM inference trace 2023).
//! - [`CarbonTrace`]: grid carbon intensity (gCO2eq/kWh), piecewise constant between rows,
//!   looked up at simulation time plus an offset (Electricity Maps, ENTSO-E series).

pub mod r#gen;

pub use r#gen::{GenParams, Shape, generate};

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

/// Where a bad value was found: a file (or a description such as `<rate trace>` for data built
/// in memory) and, when known, the 1-based line.
fn location(path: &Path, line: &Option<usize>) -> String {
    match line {
        Some(l) => format!("{}, line {l}", path.display()),
        None => path.display().to_string(),
    }
}

/// Every error a trace can raise. Messages name the file (or in-memory source) and the
/// 1-based line, e.g. `traces/x.csv, line 14: rate is NaN (column `rate`)`.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The file could not be opened or read.
    #[error("{}: cannot read: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// The file could not be written.
    #[error("{}: cannot write: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
    /// The source holds no data (empty file, header only, empty window).
    #[error("{}: {what}", location(path, line))]
    Empty { path: PathBuf, line: Option<usize>, what: String },
    /// A header, value or ordering is wrong at a given place.
    #[error("{}: {message}", location(path, line))]
    Invalid { path: PathBuf, line: Option<usize>, message: String },
    /// A synthetic-generator parameter is out of range.
    #[error("invalid trace generator parameter `{name}`: {message}")]
    Param { name: &'static str, message: String },
}

impl TraceError {
    pub(crate) fn invalid(path: impl Into<PathBuf>, line: Option<usize>, message: impl Into<String>) -> Self {
        TraceError::Invalid { path: path.into(), line, message: message.into() }
    }
}

/// The formats a workload trace can come in (the `format` key of an experiment's `[workload]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum TraceFormat {
    /// CSV with `second,rate` columns (others ignored).
    RateCsv,
    /// IPA's raw series: whitespace-separated integers, one per second.
    IpaRaw,
    /// CSV with an `arrival_s` column (seconds from the start) and optional others.
    RequestCsv,
}

impl fmt::Display for TraceFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TraceFormat::RateCsv => "rate_csv",
            TraceFormat::IpaRaw => "ipa_raw",
            TraceFormat::RequestCsv => "request_csv",
        })
    }
}

/// Why a rate value is unacceptable, if it is.
pub(crate) fn check_rate(v: f64) -> Option<String> {
    if v.is_nan() {
        Some("rate is NaN".into())
    } else if v.is_infinite() {
        Some(format!("rate is infinite ({v})"))
    } else if v < 0.0 {
        Some(format!("rate is negative ({v})"))
    } else {
        None
    }
}

/// Requests per second in consecutive 1 s steps, starting at second 0.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RateTrace {
    pub rates_rps: Vec<f64>,
}

impl RateTrace {
    /// A trace from per-second rates; at least one step, each finite and >= 0. The error
    /// names the 1-based step.
    pub fn new(rates_rps: Vec<f64>) -> Result<Self, TraceError> {
        const SRC: &str = "<rate trace>";
        if rates_rps.is_empty() {
            return Err(TraceError::Empty { path: SRC.into(), line: None, what: "no rate steps".into() });
        }
        if let Some((i, why)) = rates_rps.iter().enumerate().find_map(|(i, &v)| check_rate(v).map(|w| (i, w))) {
            return Err(TraceError::invalid(SRC, None, format!("step {}: {why}", i + 1)));
        }
        Ok(RateTrace { rates_rps })
    }

    /// Length of the trace in seconds (one step per second).
    pub fn duration_s(&self) -> f64 {
        self.rates_rps.len() as f64
    }

    /// Every rate multiplied by `factor` (an experiment's `rate_scale`). A negative or
    /// non-finite factor is an error naming it.
    pub fn scaled(&self, factor: f64) -> Result<RateTrace, TraceError> {
        if !(factor.is_finite() && factor >= 0.0) {
            return Err(TraceError::Param { name: "rate_scale", message: format!("must be finite and >= 0 (got {factor})") });
        }
        Ok(RateTrace { rates_rps: self.rates_rps.iter().map(|r| r * factor).collect() })
    }

    /// Mean, peak, peak/mean and coefficient of variation of the per-second rate.
    pub fn stats(&self) -> TraceStats {
        TraceStats::of(&self.rates_rps)
    }
}

/// Summary statistics of a per-second rate series.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TraceStats {
    pub seconds: usize,
    pub mean_rps: f64,
    pub peak_rps: f64,
    /// `peak_rps / mean_rps` (0 when the mean is 0).
    pub peak_over_mean: f64,
    /// Coefficient of variation: population standard deviation / mean (0 when the mean is 0).
    pub cv: f64,
}

impl TraceStats {
    /// Statistics of a per-second series (all zeros for an empty one).
    pub fn of(rates: &[f64]) -> TraceStats {
        let n = rates.len();
        if n == 0 {
            return TraceStats { seconds: 0, mean_rps: 0.0, peak_rps: 0.0, peak_over_mean: 0.0, cv: 0.0 };
        }
        let mean = rates.iter().sum::<f64>() / n as f64;
        let peak = rates.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let var = rates.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / n as f64;
        let (pm, cv) = if mean > 0.0 { (peak / mean, var.sqrt() / mean) } else { (0.0, 0.0) };
        TraceStats { seconds: n, mean_rps: mean, peak_rps: peak, peak_over_mean: pm, cv }
    }
}

impl fmt::Display for TraceStats {
    /// One aligned table: a header row and a value row.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{:>8}  {:>10}  {:>10}  {:>9}  {:>6}", "seconds", "mean_rps", "peak_rps", "peak/mean", "cv")?;
        write!(f, "{:>8}  {:>10.3}  {:>10.3}  {:>9.3}  {:>6.3}", self.seconds, self.mean_rps, self.peak_rps, self.peak_over_mean, self.cv)
    }
}

/// Request arrival instants in seconds from the start: finite, >= 0 and sorted (ties allowed).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RequestTrace {
    pub arrivals_s: Vec<f64>,
}

impl RequestTrace {
    /// A trace from arrival times; at least one, each finite and >= 0, non-decreasing. The
    /// error names the 1-based request.
    pub fn new(arrivals_s: Vec<f64>) -> Result<Self, TraceError> {
        const SRC: &str = "<request trace>";
        if arrivals_s.is_empty() {
            return Err(TraceError::Empty { path: SRC.into(), line: None, what: "no requests".into() });
        }
        let mut prev = 0.0;
        for (i, &t) in arrivals_s.iter().enumerate() {
            if !t.is_finite() || t < 0.0 {
                return Err(TraceError::invalid(SRC, None, format!("request {}: arrival time {t} is not a finite number >= 0", i + 1)));
            }
            if t < prev {
                return Err(TraceError::invalid(
                    SRC,
                    None,
                    format!("request {}: arrival time {t} is before the previous one ({prev})", i + 1),
                ));
            }
            prev = t;
        }
        Ok(RequestTrace { arrivals_s })
    }

    /// Time of the last arrival, in seconds.
    pub fn duration_s(&self) -> f64 {
        self.arrivals_s.last().copied().unwrap_or(0.0)
    }

    /// The same requests at `factor` times the rate: every arrival time divided by `factor`
    /// (> 0, finite).
    pub fn rate_scaled(&self, factor: f64) -> Result<RequestTrace, TraceError> {
        if !(factor.is_finite() && factor > 0.0) {
            return Err(TraceError::Param {
                name: "rate_scale",
                message: format!("must be finite and > 0 for a request trace (got {factor})"),
            });
        }
        Ok(RequestTrace { arrivals_s: self.arrivals_s.iter().map(|t| t / factor).collect() })
    }

    /// Arrivals counted per 1 s step (second `k` holds arrivals in `[k, k+1)`).
    pub fn per_second(&self) -> RateTrace {
        let n = self.duration_s().floor() as usize + 1;
        let mut counts = vec![0.0; n];
        for &t in &self.arrivals_s {
            counts[(t.floor() as usize).min(n - 1)] += 1.0;
        }
        RateTrace { rates_rps: counts }
    }
}

/// A workload as read from a file: per-second rates or explicit arrivals.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Workload {
    Rates(RateTrace),
    Requests(RequestTrace),
}

impl Workload {
    /// The workload with every rate multiplied by `factor` (an experiment's `rate_scale`).
    pub fn scaled(&self, factor: f64) -> Result<Workload, TraceError> {
        Ok(match self {
            Workload::Rates(r) => Workload::Rates(r.scaled(factor)?),
            Workload::Requests(r) => Workload::Requests(r.rate_scaled(factor)?),
        })
    }

    /// Per-second rates (requests counted per second for an arrival trace).
    pub fn per_second(&self) -> RateTrace {
        match self {
            Workload::Rates(r) => r.clone(),
            Workload::Requests(r) => r.per_second(),
        }
    }
}

/// Grid carbon intensity as a piecewise-constant series.
///
/// Row `i` holds `values_g_per_kwh[i]` from `times_s[i]` until `times_s[i + 1]`; **after the
/// last row the last value holds forever**, and before the first row (a negative trace time)
/// the first value holds. Times are seconds since the first row (so `times_s[0] == 0`),
/// strictly increasing. A lookup at simulation time `t` reads the trace at `t + offset_s`, so
/// an offset starts a run at any point of the year.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CarbonTrace {
    times_s: Vec<f64>,
    values_g_per_kwh: Vec<f64>,
    offset_s: f64,
}

impl CarbonTrace {
    /// A trace from row times (any origin: they are shifted so that the first is 0) and
    /// intensities. Needs at least one row, equal lengths, finite strictly increasing times and
    /// finite values >= 0; the error names the 1-based row.
    pub fn new(times_s: Vec<f64>, values_g_per_kwh: Vec<f64>) -> Result<Self, TraceError> {
        const SRC: &str = "<carbon trace>";
        if times_s.is_empty() {
            return Err(TraceError::Empty { path: SRC.into(), line: None, what: "no carbon rows".into() });
        }
        if times_s.len() != values_g_per_kwh.len() {
            return Err(TraceError::invalid(SRC, None, format!("{} times but {} values", times_s.len(), values_g_per_kwh.len())));
        }
        for (i, (&t, &v)) in times_s.iter().zip(&values_g_per_kwh).enumerate() {
            if !t.is_finite() {
                return Err(TraceError::invalid(SRC, None, format!("row {}: time {t} is not finite", i + 1)));
            }
            if i > 0 && t <= times_s[i - 1] {
                return Err(TraceError::invalid(
                    SRC,
                    None,
                    format!("row {}: time {t} s is not after the previous row ({} s)", i + 1, times_s[i - 1]),
                ));
            }
            if !v.is_finite() || v < 0.0 {
                return Err(TraceError::invalid(SRC, None, format!("row {}: intensity {v} is not a finite number >= 0", i + 1)));
            }
        }
        let t0 = times_s[0];
        let times_s = times_s.into_iter().map(|t| t - t0).collect();
        Ok(CarbonTrace { times_s, values_g_per_kwh, offset_s: 0.0 })
    }

    /// The same series read from trace time `offset_s` at simulation time 0.
    pub fn with_offset(mut self, offset_s: f64) -> Self {
        self.offset_s = offset_s;
        self
    }

    pub fn offset_s(&self) -> f64 {
        self.offset_s
    }
    /// Row start times in trace seconds (first is 0).
    pub fn times_s(&self) -> &[f64] {
        &self.times_s
    }
    pub fn values_g_per_kwh(&self) -> &[f64] {
        &self.values_g_per_kwh
    }
    pub fn len(&self) -> usize {
        self.times_s.len()
    }
    pub fn is_empty(&self) -> bool {
        self.times_s.is_empty()
    }

    /// Index of the row in force at trace time `tau` (binary search).
    fn row_at(&self, tau: f64) -> usize {
        self.times_s.partition_point(|&t| t <= tau).saturating_sub(1)
    }

    /// Intensity in gCO2eq/kWh at simulation time `t_s` (trace time `t_s + offset_s`).
    pub fn at(&self, t_s: f64) -> f64 {
        self.values_g_per_kwh[self.row_at(t_s + self.offset_s)]
    }

    /// The first simulation time after `t_s` at which a new row starts, or `None` when the
    /// last row is already in force (its value then holds forever). The value at the returned
    /// time may equal the current one when two consecutive rows hold the same number.
    pub fn next_change_after(&self, t_s: f64) -> Option<f64> {
        let tau = t_s + self.offset_s;
        let i = self.times_s.partition_point(|&t| t <= tau);
        self.times_s.get(i).map(|&t| t - self.offset_s)
    }

    /// The constant pieces covering simulation time `[from_s, to_s)`: `(start_s, end_s,
    /// g_per_kwh)`, so that energy x intensity integrates exactly piece by piece.
    pub fn segments(&self, from_s: f64, to_s: f64) -> impl Iterator<Item = (f64, f64, f64)> + '_ {
        let mut t = from_s;
        std::iter::from_fn(move || {
            if t.partial_cmp(&to_s) != Some(std::cmp::Ordering::Less) {
                return None;
            }
            let end = self.next_change_after(t).map_or(to_s, |c| c.min(to_s));
            let piece = (t, end, self.at(t));
            t = end;
            Some(piece)
        })
    }

    /// Time-weighted mean intensity over the rows' span (the last row counts for the mean
    /// row length; a single-row trace gives its value).
    pub fn mean(&self) -> f64 {
        let n = self.times_s.len();
        if n == 1 {
            return self.values_g_per_kwh[0];
        }
        let span = self.times_s[n - 1];
        let last_len = span / (n - 1) as f64;
        let weighted: f64 = (0..n)
            .map(|i| {
                let len = if i + 1 < n { self.times_s[i + 1] - self.times_s[i] } else { last_len };
                len * self.values_g_per_kwh[i]
            })
            .sum();
        weighted / (span + last_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_trace_validates_and_reports_the_step() {
        let e = RateTrace::new(vec![1.0, 2.0, f64::NAN]).unwrap_err().to_string();
        assert!(e.contains("step 3") && e.contains("NaN"), "{e}");
        let e = RateTrace::new(vec![1.0, -2.0]).unwrap_err().to_string();
        assert!(e.contains("step 2") && e.contains("negative"), "{e}");
        assert!(RateTrace::new(vec![]).is_err());
        let t = RateTrace::new(vec![2.0, 4.0]).unwrap();
        assert_eq!(t.scaled(2.5).unwrap().rates_rps, vec![5.0, 10.0]);
        assert!(t.scaled(-1.0).is_err());
        assert_eq!(t.duration_s(), 2.0);
    }

    #[test]
    fn stats_match_their_definitions() {
        let s = RateTrace::new(vec![1.0, 3.0]).unwrap().stats();
        assert_eq!((s.seconds, s.mean_rps, s.peak_rps, s.peak_over_mean), (2, 2.0, 3.0, 1.5));
        assert!((s.cv - 0.5).abs() < 1e-12); // population sd 1, mean 2
        let z = RateTrace::new(vec![0.0; 3]).unwrap().stats();
        assert_eq!((z.peak_over_mean, z.cv), (0.0, 0.0));
        assert!(s.to_string().contains("peak/mean"));
    }

    #[test]
    fn request_trace_rejects_unsorted_and_bins_per_second() {
        let e = RequestTrace::new(vec![0.5, 0.2]).unwrap_err().to_string();
        assert!(e.contains("request 2"), "{e}");
        let r = RequestTrace::new(vec![0.1, 0.9, 2.0, 2.5]).unwrap();
        assert_eq!(r.per_second().rates_rps, vec![2.0, 0.0, 2.0]);
    }

    #[test]
    fn carbon_is_piecewise_constant_with_offset() {
        let c = CarbonTrace::new(vec![100.0, 110.0, 130.0], vec![1.0, 2.0, 3.0]).unwrap();
        assert_eq!(c.times_s(), &[0.0, 10.0, 30.0]);
        assert_eq!((c.at(-5.0), c.at(0.0), c.at(9.99), c.at(10.0), c.at(29.0), c.at(1e9)), (1.0, 1.0, 1.0, 2.0, 2.0, 3.0));
        assert_eq!(c.next_change_after(0.0), Some(10.0));
        assert_eq!(c.next_change_after(10.0), Some(30.0));
        assert_eq!(c.next_change_after(30.0), None);
        let o = c.clone().with_offset(15.0);
        assert_eq!((o.at(0.0), o.at(15.0)), (2.0, 3.0));
        assert_eq!(o.next_change_after(0.0), Some(15.0));
        // integrate intensity over [5, 35) piece by piece: 5*1 + 20*2 + 5*3
        let area: f64 = c.segments(5.0, 35.0).map(|(a, b, v)| (b - a) * v).sum();
        assert_eq!(area, 60.0);
        // mean weights each row by its length; the last row by the mean row length (15 s)
        assert!((c.mean() - (10.0 * 1.0 + 20.0 * 2.0 + 15.0 * 3.0) / 45.0).abs() < 1e-12);
        assert!(CarbonTrace::new(vec![0.0, 0.0], vec![1.0, 1.0]).unwrap_err().to_string().contains("row 2"));
    }
}
