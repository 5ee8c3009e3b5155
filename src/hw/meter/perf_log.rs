//! Reader for `perf stat -I <ms> -e power/energy-pkg/,power/energy-ram/` logs, such as the
//! IPA energy study's (`traces/energy_logs/`, provenance in `traces/README.md`).
//!
//! Format (perf's interval mode, human-readable output): comment lines start with `#` (a
//! `# started on …` line, then a `#  time  counts unit events` header repeated every 25
//! intervals); every other non-empty line is
//!
//! ```text
//!      1.000107406              74.55 Joules power/energy-pkg/
//! ```
//!
//! i.e. the interval's end time in seconds since perf started counting, the joules counted in
//! that interval, the unit, and the event. A line whose count is `<not counted>` or
//! `<not supported>` is kept as a gap (`joules: None`): a replay counts it as zero energy and
//! reports it in [`MeterHealth::gaps`] rather than inventing a value. Thousands separators
//! (`1,234.56`) are accepted. The first interval starts at 0; the last one is usually partial
//! (perf prints the remainder when the command exits), which the per-interval `dt_s` handles.
//!
//! Summary statistics per domain: total joules, mean power (total / counted time), and the
//! idle floor, taken as the 5th percentile (nearest rank) of per-interval power — low enough
//! to sit on the idle plateau of a mostly-busy run, high enough to ignore a stray low interval.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{EnergyMeter, EnergyReading, MeterError, MeterHealth, MeterInfo, MeterKind};

/// Percentile of per-interval power used as the idle floor.
pub const IDLE_FLOOR_PERCENTILE: f64 = 5.0;

/// One event's count over one interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PerfSample {
    /// End of the interval, seconds since perf started counting.
    pub t_s: f64,
    /// Length of the interval (from the same event's previous line, or from 0).
    pub dt_s: f64,
    /// Short domain name: `pkg` for `power/energy-pkg/`, `ram` for `power/energy-ram/`.
    pub domain: String,
    /// `None` for `<not counted>` / `<not supported>`.
    pub joules: Option<f64>,
}

/// Per-domain statistics of a log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DomainSummary {
    pub domain: String,
    pub intervals: usize,
    pub not_counted: usize,
    pub total_j: f64,
    /// Seconds covered by counted intervals.
    pub counted_s: f64,
    pub mean_w: f64,
    /// 5th percentile of per-interval power.
    pub idle_floor_w: f64,
    pub max_w: f64,
}

/// A parsed log.
#[derive(Debug, Clone)]
pub struct PerfLog {
    pub path: PathBuf,
    pub samples: Vec<PerfSample>,
    /// Domains in order of first appearance.
    pub domains: Vec<String>,
    /// `(end_s, cumulative joules over all domains)` at each distinct interval end, starting
    /// with `(0, 0)`.
    timeline: Vec<(f64, f64)>,
}

impl PerfLog {
    pub fn read(path: impl AsRef<Path>) -> Result<Self, MeterError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| MeterError::Io { path: path.to_path_buf(), source })?;
        Self::parse(path, &text)
    }

    /// Parse log text; `path` is only used in error messages.
    pub fn parse(path: impl AsRef<Path>, text: &str) -> Result<Self, MeterError> {
        let path = path.as_ref().to_path_buf();
        let err = |line: usize, message: String| MeterError::Parse { path: path.clone(), line, message };
        let mut samples: Vec<PerfSample> = Vec::new();
        let mut domains: Vec<String> = Vec::new();
        let mut last_t: Vec<f64> = Vec::new(); // per domain
        for (i, raw) in text.lines().enumerate() {
            let line_no = i + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let tokens: Vec<&str> = line.split_whitespace().collect();
            let t_s: f64 = tokens[0].parse().map_err(|_| err(line_no, format!("expected a time in seconds, found {:?}", tokens[0])))?;
            let (joules, event) = if tokens.get(1).is_some_and(|t| t.starts_with("<not")) {
                // `<not counted>` / `<not supported>`, then optionally the unit, then the event.
                let event = tokens.iter().skip(3).find(|t| t.contains('/')).or(tokens.get(3));
                (None, event.copied())
            } else {
                if tokens.len() < 4 {
                    return Err(err(line_no, "expected `time count unit event`".into()));
                }
                let count = tokens[1].replace(',', "");
                let j: f64 = count.parse().map_err(|_| err(line_no, format!("expected a count, found {:?}", tokens[1])))?;
                if tokens[2] != "Joules" && tokens[2] != "J" {
                    return Err(err(line_no, format!("unit {:?} is not Joules", tokens[2])));
                }
                if !j.is_finite() || j < 0.0 {
                    return Err(err(line_no, format!("negative or non-finite energy {j}")));
                }
                (Some(j), Some(tokens[3]))
            };
            let event = event.ok_or_else(|| err(line_no, "missing event name".into()))?;
            let domain = short_domain(event);
            let d = match domains.iter().position(|x| *x == domain) {
                Some(d) => d,
                None => {
                    domains.push(domain.clone());
                    last_t.push(0.0);
                    domains.len() - 1
                }
            };
            if !t_s.is_finite() || t_s < last_t[d] {
                return Err(err(line_no, format!("time {t_s} is before the previous interval ({})", last_t[d])));
            }
            samples.push(PerfSample { t_s, dt_s: t_s - last_t[d], domain, joules });
            last_t[d] = t_s;
        }
        if samples.is_empty() {
            return Err(err(0, "no intervals found (is this `perf stat -I` output?)".into()));
        }
        let mut timeline = vec![(0.0, 0.0)];
        for s in &samples {
            let (t, e) = *timeline.last().unwrap();
            let e2 = e + s.joules.unwrap_or(0.0);
            if s.t_s > t {
                timeline.push((s.t_s, e2));
            } else {
                timeline.last_mut().unwrap().1 = e2;
            }
        }
        Ok(Self { path, samples, domains, timeline })
    }

    /// Number of distinct interval ends.
    pub fn intervals(&self) -> usize {
        self.timeline.len() - 1
    }

    /// End of the last interval, seconds.
    pub fn duration_s(&self) -> f64 {
        self.timeline.last().map_or(0.0, |p| p.0)
    }

    /// Sum of all counted joules over all domains.
    pub fn total_j(&self) -> f64 {
        self.samples.iter().filter_map(|s| s.joules).sum()
    }

    /// Intervals with no count.
    pub fn gaps(&self) -> usize {
        self.samples.iter().filter(|s| s.joules.is_none()).count()
    }

    /// Cumulative joules (all domains) at `t_s` seconds since perf started, assuming constant
    /// power within each interval; `None` past the end of the log.
    pub fn energy_at(&self, t_s: f64) -> Option<f64> {
        if !(0.0..=self.duration_s()).contains(&t_s) {
            return None;
        }
        let k = self.timeline.partition_point(|p| p.0 < t_s);
        if k == 0 {
            return Some(0.0);
        }
        let (t0, e0) = self.timeline[k - 1];
        let (t1, e1) = self.timeline[k];
        Some(e0 + (e1 - e0) * (t_s - t0) / (t1 - t0))
    }

    /// Per-domain statistics, in order of first appearance.
    pub fn summary(&self) -> Vec<DomainSummary> {
        self.domains
            .iter()
            .map(|domain| {
                let of: Vec<&PerfSample> = self.samples.iter().filter(|s| &s.domain == domain).collect();
                let counted: Vec<(f64, f64)> =
                    of.iter().filter_map(|s| s.joules.map(|j| (j, s.dt_s))).filter(|&(_, dt)| dt > 0.0).collect();
                let total_j: f64 = counted.iter().map(|c| c.0).sum();
                let counted_s: f64 = counted.iter().map(|c| c.1).sum();
                let mut watts: Vec<f64> = counted.iter().map(|&(j, dt)| j / dt).collect();
                watts.sort_by(f64::total_cmp);
                DomainSummary {
                    domain: domain.clone(),
                    intervals: of.len(),
                    not_counted: of.len() - counted.len(),
                    total_j,
                    counted_s,
                    mean_w: if counted_s > 0.0 { total_j / counted_s } else { f64::NAN },
                    idle_floor_w: percentile(&watts, IDLE_FLOOR_PERCENTILE),
                    max_w: watts.last().copied().unwrap_or(f64::NAN),
                }
            })
            .collect()
    }
}

/// Nearest-rank percentile of sorted values (NaN when empty).
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// `power/energy-pkg/` -> `pkg`; anything else is kept as written.
fn short_domain(event: &str) -> String {
    let e = event.trim_matches('/');
    let e = e.strip_prefix("power/").unwrap_or(e);
    e.strip_prefix("energy-").unwrap_or(e).to_owned()
}

/// Replays a recorded log as a meter: a read `at` seconds after open returns the log's
/// cumulative energy between `offset` and `offset + at`.
#[derive(Debug, Clone)]
pub struct PerfLogMeter {
    info: MeterInfo,
    log: PerfLog,
    offset_s: f64,
    opened: Instant,
}

impl PerfLogMeter {
    pub fn open(path: impl AsRef<Path>) -> Result<Self, MeterError> {
        Ok(Self::from_log(PerfLog::read(path)?))
    }

    pub fn from_log(log: PerfLog) -> Self {
        let file = log.path.file_name().map_or_else(|| log.path.display().to_string(), |f| f.to_string_lossy().into_owned());
        let info = MeterInfo {
            kind: MeterKind::PerfLog,
            name: format!("perf_log:{file} [{}, replayed]", log.domains.join("+")),
            estimated: false,
            domains: log.domains.clone(),
        };
        Self { info, log, offset_s: 0.0, opened: Instant::now() }
    }

    /// Start the replay `offset` into the log.
    pub fn starting_at(mut self, offset: Duration) -> Self {
        self.offset_s = offset.as_secs_f64();
        self
    }

    pub fn log(&self) -> &PerfLog {
        &self.log
    }

    /// The reading `at` after open, on the log's clock (deterministic; `read` uses the wall
    /// clock).
    pub fn read_at(&self, at: Duration) -> Result<EnergyReading, MeterError> {
        let t = self.offset_s + at.as_secs_f64();
        let ended = || MeterError::LogEnded { path: self.log.path.clone(), end_s: self.log.duration_s(), at_s: t };
        let e = self.log.energy_at(t).ok_or_else(ended)?;
        let e0 = self.log.energy_at(self.offset_s).ok_or_else(ended)?;
        Ok(EnergyReading { energy_j: e - e0, at })
    }
}

impl EnergyMeter for PerfLogMeter {
    fn info(&self) -> &MeterInfo {
        &self.info
    }

    fn read(&mut self) -> Result<EnergyReading, MeterError> {
        self.read_at(self.opened.elapsed())
    }

    fn health(&self) -> MeterHealth {
        MeterHealth { gaps: self.log.gaps() as u32, ..MeterHealth::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn real_logs() -> Vec<PathBuf> {
        ["perf-energy-video-mul-1.txt", "perf-energy-video-mul-6.txt"]
            .iter()
            .map(|f| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/traces/energy_logs")).join(f))
            .collect()
    }

    #[test]
    fn real_logs_parse_with_the_expected_shape() {
        for path in real_logs() {
            let text = std::fs::read_to_string(&path).unwrap();
            let log = PerfLog::parse(&path, &text).unwrap();
            // Independent count of data lines: every line mentioning Joules.
            let data_lines = text.lines().filter(|l| l.contains("Joules")).count();
            assert_eq!(log.samples.len(), data_lines);
            assert_eq!(log.domains, vec!["pkg", "ram"]);
            assert_eq!(log.intervals() * 2, data_lines, "both events in every interval");
            assert!((1_300..=1_500).contains(&log.intervals()), "about 1,400 intervals: {}", log.intervals());
            assert_eq!(log.gaps(), 0);
            // perf -I 1000: intervals are a second long except the final partial one.
            let pkg: Vec<_> = log.samples.iter().filter(|s| s.domain == "pkg").collect();
            assert!(pkg[..pkg.len() - 1].iter().all(|s| (s.dt_s - 1.0).abs() < 0.01));
            assert!(pkg.last().unwrap().dt_s <= 1.0);
        }
    }

    #[test]
    fn real_logs_idle_floor_and_totals() {
        for path in real_logs() {
            let log = PerfLog::read(&path).unwrap();
            let s = log.summary();
            let (pkg, ram) = (&s[0], &s[1]);
            // README: idle floor about 74–76 W package, 15 W RAM.
            assert!((73.0..=77.0).contains(&pkg.idle_floor_w), "{path:?} pkg floor {}", pkg.idle_floor_w);
            assert!((14.0..=16.0).contains(&ram.idle_floor_w), "{path:?} ram floor {}", ram.idle_floor_w);
            for d in &s {
                assert!(d.idle_floor_w <= d.mean_w && d.mean_w <= d.max_w, "{d:?}");
                assert!((d.counted_s - log.duration_s()).abs() < 1e-6);
            }
            // Totals: the sum of the intervals, and what a replay of the whole log reads.
            let by_hand: f64 = log.samples.iter().map(|s| s.joules.unwrap()).sum();
            assert!((log.total_j() - by_hand).abs() < 1e-6);
            assert!((pkg.total_j + ram.total_j - by_hand).abs() < 1e-6);
            let end = log.energy_at(log.duration_s()).unwrap();
            assert!((end - by_hand).abs() < 1e-6 * by_hand);
        }
    }

    #[test]
    fn replay_interpolates_within_intervals_and_ends_cleanly() {
        let text = "# started on x\n\n#  time counts unit events\n\
                    1.0 70.00 Joules power/energy-pkg/\n1.0 10.00 Joules power/energy-ram/\n\
                    2.0 90.00 Joules power/energy-pkg/\n2.0 10.00 Joules power/energy-ram/\n\
                    2.5 40.00 Joules power/energy-pkg/\n2.5 5.00 Joules power/energy-ram/\n";
        let log = PerfLog::parse("t.txt", text).unwrap();
        assert_eq!(log.intervals(), 3);
        assert_eq!(log.energy_at(0.5), Some(40.0));
        assert_eq!(log.energy_at(1.5), Some(80.0 + 50.0));
        assert_eq!(log.energy_at(2.5), Some(225.0));
        let m = PerfLogMeter::from_log(log).starting_at(Duration::from_secs(1));
        assert_eq!(m.info().name, "perf_log:t.txt [pkg+ram, replayed]");
        assert!(!m.info().estimated);
        let r = m.read_at(Duration::from_millis(1_250)).unwrap();
        assert_eq!(r.energy_j, 100.0 + 45.0 / 2.0);
        let err = m.read_at(Duration::from_secs(2)).unwrap_err();
        assert!(err.to_string().contains("t.txt: the recorded log ends at 2.500 s, asked for 3.000 s"), "{err}");
        let s = m.log().summary();
        assert_eq!(s[0].idle_floor_w, 70.0);
        assert_eq!(s[0].max_w, 90.0);
        assert_eq!(s[1].mean_w, 10.0);
    }

    #[test]
    fn not_counted_lines_are_gaps_not_zeros_in_the_stats() {
        let text = "1.0 70.00 Joules power/energy-pkg/\n\
                    2.0 <not counted> Joules power/energy-pkg/\n\
                    3.0 1,080.00 Joules power/energy-pkg/\n";
        let log = PerfLog::parse("t.txt", text).unwrap();
        assert_eq!(log.gaps(), 1);
        let s = &log.summary()[0];
        assert_eq!((s.intervals, s.not_counted), (3, 1));
        assert_eq!(s.total_j, 1_150.0);
        assert_eq!(s.mean_w, 575.0, "mean over counted time only");
        assert_eq!(PerfLogMeter::from_log(log).health().gaps, 1);
    }

    #[test]
    fn bad_lines_name_the_file_and_line() {
        let cases = [
            ("1.0 70.00 Joules power/energy-pkg/\n0.5 1.0 Joules power/energy-pkg/\n", "t.txt:2: time 0.5 is before"),
            ("1.0 70.00 Watts power/energy-pkg/\n", "t.txt:1: unit \"Watts\" is not Joules"),
            ("# only a header\n", "t.txt:0: no intervals found"),
            ("abc 70.00 Joules power/energy-pkg/\n", "t.txt:1: expected a time"),
            ("1.0 7x Joules power/energy-pkg/\n", "t.txt:1: expected a count"),
            ("1.0 70.00\n", "t.txt:1: expected `time count unit event`"),
        ];
        for (text, want) in cases {
            let msg = PerfLog::parse("t.txt", text).unwrap_err().to_string();
            assert!(msg.starts_with(want), "{msg}");
        }
    }
}
