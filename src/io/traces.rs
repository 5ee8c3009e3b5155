//! Reading and writing trace files (formats in SPEC "Trace formats" and `traces/README.md`).
//!
//! - rate CSV: a header with `second` and `rate` (other columns ignored), seconds 0, 1, 2, ...
//! - IPA raw series: whitespace-separated non-negative integers, one per second, cut to a
//!   half-open window and divided by a damping factor (integer division), as IPA's load
//!   tester replays `workload.tbz2`;
//! - request CSV: an arrival-time column (`arrival_s` by default), sorted;
//! - carbon CSV: a timestamp column (`2022-01-01T00:00:00Z`, `2019-12-20 00:00:00`, or plain
//!   seconds) and an intensity column, timestamps strictly increasing.
//!
//! CSV is parsed by hand: fields split on commas, trimmed, surrounding double quotes removed
//! (no embedded commas). Blank lines are skipped. Every error names the file and the 1-based
//! line.

use crate::traces::{CarbonTrace, RateTrace, RequestTrace, TraceError, TraceFormat, Workload, check_rate};
use std::fs;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

fn read(path: &Path) -> Result<String, TraceError> {
    fs::read_to_string(path).map_err(|source| TraceError::Io { path: path.to_path_buf(), source })
}

fn invalid(path: &Path, line: usize, message: impl Into<String>) -> TraceError {
    TraceError::invalid(path, Some(line), message)
}

/// A parsed CSV file: header names and data rows with their 1-based line numbers.
struct Csv<'a> {
    path: &'a Path,
    header_line: usize,
    header: Vec<String>,
    rows: Vec<(usize, Vec<&'a str>)>,
}

fn split_fields(line: &str) -> Vec<&str> {
    line.split(',').map(|f| f.trim().trim_matches('"')).collect()
}

fn parse_csv<'a>(path: &'a Path, text: &'a str) -> Result<Csv<'a>, TraceError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l)).filter(|(_, l)| !l.trim().is_empty());
    let Some((header_line, header)) = lines.next() else {
        return Err(TraceError::Empty { path: path.to_path_buf(), line: None, what: "the file is empty".into() });
    };
    let header = split_fields(header).into_iter().map(str::to_owned).collect();
    let rows: Vec<_> = lines.map(|(n, l)| (n, split_fields(l))).collect();
    if rows.is_empty() {
        return Err(TraceError::Empty { path: path.to_path_buf(), line: Some(header_line), what: "no data rows after the header".into() });
    }
    Ok(Csv { path, header_line, header, rows })
}

impl Csv<'_> {
    fn column(&self, name: &str) -> Result<usize, TraceError> {
        self.header.iter().position(|h| h == name).ok_or_else(|| {
            invalid(self.path, self.header_line, format!("no column `{name}` in the header (found: {})", self.header.join(", ")))
        })
    }

    fn field<'r>(&self, line: usize, row: &'r [&'r str], col: usize) -> Result<&'r str, TraceError> {
        row.get(col).copied().ok_or_else(|| {
            invalid(self.path, line, format!("{} fields, but column `{}` is field {}", row.len(), self.header[col], col + 1))
        })
    }

    fn number(&self, line: usize, row: &[&str], col: usize) -> Result<f64, TraceError> {
        let s = self.field(line, row, col)?;
        s.parse::<f64>().map_err(|_| invalid(self.path, line, format!("`{s}` is not a number (column `{}`)", self.header[col])))
    }
}

/// A rate CSV: header with `second` and `rate` (other columns ignored); seconds must be
/// 0, 1, 2, ... consecutive; rates finite and >= 0.
pub fn load_rate_csv(path: impl AsRef<Path>) -> Result<RateTrace, TraceError> {
    let path = path.as_ref();
    let text = read(path)?;
    let csv = parse_csv(path, &text)?;
    let (sc, rc) = (csv.column("second")?, csv.column("rate")?);
    let mut rates = Vec::with_capacity(csv.rows.len());
    for (k, (line, row)) in csv.rows.iter().enumerate() {
        let second = csv.number(*line, row, sc)?;
        if second != k as f64 {
            return Err(invalid(
                path,
                *line,
                format!("second is {second} but {k} was expected (seconds must be 0, 1, 2, ... consecutive)"),
            ));
        }
        let rate = csv.number(*line, row, rc)?;
        if let Some(why) = check_rate(rate) {
            return Err(invalid(path, *line, format!("{why} (column `rate`)")));
        }
        rates.push(rate);
    }
    Ok(RateTrace { rates_rps: rates })
}

/// IPA's raw series: whitespace-separated non-negative integers, one per second. `window`
/// keeps values `start..end` (0-based, half-open) of the whole series; each kept value becomes
/// `raw / damping` (integer division; IPA replays its Twitter windows with damping 8).
pub fn load_ipa_raw(path: impl AsRef<Path>, window: Option<(usize, usize)>, damping: u64) -> Result<RateTrace, TraceError> {
    let path = path.as_ref();
    if damping == 0 {
        return Err(TraceError::invalid(path, None, "damping must be at least 1 (got 0)"));
    }
    let text = read(path)?;
    let mut raw = Vec::new();
    for (i, line) in text.lines().enumerate() {
        for tok in line.split_whitespace() {
            let v = tok.parse::<u64>().map_err(|_| invalid(path, i + 1, format!("`{tok}` is not a non-negative integer request count")))?;
            raw.push(v);
        }
    }
    if raw.is_empty() {
        return Err(TraceError::Empty { path: path.to_path_buf(), line: None, what: "no values in the series".into() });
    }
    let (start, end) = window.unwrap_or((0, raw.len()));
    if start >= end || end > raw.len() {
        return Err(TraceError::invalid(
            path,
            None,
            format!("window {start}..{end} is empty or out of range: the series has {} values", raw.len()),
        ));
    }
    Ok(RateTrace { rates_rps: raw[start..end].iter().map(|v| (v / damping) as f64).collect() })
}

/// A request CSV: arrival times in seconds from the start in `column` (`arrival_s` by
/// default), finite, >= 0 and sorted (ties allowed). Other columns are ignored.
pub fn load_request_csv(path: impl AsRef<Path>, column: &str) -> Result<RequestTrace, TraceError> {
    let path = path.as_ref();
    let text = read(path)?;
    let csv = parse_csv(path, &text)?;
    let c = csv.column(column)?;
    let mut arrivals = Vec::with_capacity(csv.rows.len());
    for (line, row) in &csv.rows {
        let t = csv.number(*line, row, c)?;
        if !t.is_finite() || t < 0.0 {
            return Err(invalid(path, *line, format!("arrival time {t} is not a finite number >= 0 (column `{column}`)")));
        }
        let prev = arrivals.last().copied().unwrap_or(0.0);
        if t < prev {
            return Err(invalid(
                path,
                *line,
                format!("arrival time {t} is before the previous row's {prev}: request times must be sorted (column `{column}`)"),
            ));
        }
        arrivals.push(t);
    }
    Ok(RequestTrace { arrivals_s: arrivals })
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Seconds since the Unix epoch of `YYYY-MM-DD[(T| )HH:MM[:SS[.fff]]][Z|(+|-)HH[:]MM]`; a
/// timestamp without a zone is read as UTC. A plain number is taken as seconds.
pub fn parse_timestamp(s: &str) -> Option<f64> {
    if let Ok(v) = s.parse::<f64>() {
        return v.is_finite().then_some(v);
    }
    let num = |a: usize, b: usize| -> Option<i64> {
        let part = s.get(a..b)?;
        part.bytes().all(|c| c.is_ascii_digit()).then(|| part.parse().ok())?
    };
    let b = s.as_bytes();
    if s.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let days_in_month = [31, if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month[mo as usize - 1] {
        return None;
    }
    let mut secs = (days_from_civil(y, mo, d) * 86_400) as f64;
    let mut rest = &s[10..];
    if let Some(r) = rest.strip_prefix(['T', ' ']) {
        let hms = r.as_bytes();
        if r.len() < 5 || hms[2] != b':' {
            return None;
        }
        let two = |i: usize| -> Option<i64> { r.get(i..i + 2).filter(|p| p.bytes().all(|c| c.is_ascii_digit()))?.parse().ok() };
        let (h, mi) = (two(0)?, two(3)?);
        let mut used = 5;
        let mut sec = 0.0;
        if r.as_bytes().get(5) == Some(&b':') {
            sec = two(6)? as f64;
            used = 8;
            if r.as_bytes().get(8) == Some(&b'.') {
                let digits = r[9..].bytes().take_while(u8::is_ascii_digit).count();
                sec += format!("0.{}", &r[9..9 + digits]).parse::<f64>().ok()?;
                used = 9 + digits;
            }
        }
        if h > 23 || mi > 59 || sec >= 61.0 {
            return None;
        }
        secs += (h * 3600 + mi * 60) as f64 + sec;
        rest = &r[used..];
    }
    match rest {
        "" | "Z" | "z" => Some(secs),
        zone => {
            let sign = match zone.as_bytes()[0] {
                b'+' => 1.0,
                b'-' => -1.0,
                _ => return None,
            };
            let z = zone[1..].replace(':', "");
            if z.len() != 4 || !z.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            let (zh, zm): (f64, f64) = (z[..2].parse().ok()?, z[2..].parse().ok()?);
            Some(secs - sign * (zh * 3600.0 + zm * 60.0))
        }
    }
}

/// A carbon-intensity CSV: timestamps in `time_column` (see [`parse_timestamp`]), strictly
/// increasing, and gCO2eq/kWh in `value_column` (finite, >= 0). Times become seconds since the
/// first row; the series is piecewise constant (see [`CarbonTrace`]).
pub fn load_carbon_csv(path: impl AsRef<Path>, time_column: &str, value_column: &str) -> Result<CarbonTrace, TraceError> {
    let path = path.as_ref();
    let text = read(path)?;
    let csv = parse_csv(path, &text)?;
    let (tc, vc) = (csv.column(time_column)?, csv.column(value_column)?);
    let (mut times, mut values) = (Vec::with_capacity(csv.rows.len()), Vec::with_capacity(csv.rows.len()));
    for (line, row) in &csv.rows {
        let ts = csv.field(*line, row, tc)?;
        let t = parse_timestamp(ts)
            .ok_or_else(|| invalid(path, *line, format!("`{ts}` is not a timestamp like 2022-01-01T00:00:00Z (column `{time_column}`)")))?;
        if times.last().is_some_and(|&prev| t <= prev) {
            return Err(invalid(path, *line, format!("timestamp `{ts}` is not after the previous row's (column `{time_column}`)")));
        }
        let v = csv.number(*line, row, vc)?;
        if !v.is_finite() || v < 0.0 {
            return Err(invalid(path, *line, format!("intensity {v} is not a finite number >= 0 (column `{value_column}`)")));
        }
        times.push(t);
        values.push(v);
    }
    // Already validated row by row; `new` only shifts the times to start at 0.
    CarbonTrace::new(times, values).map_err(|e| TraceError::invalid(path, None, e.to_string()))
}

/// The format of a workload file, told from its first non-blank line: a header with
/// `second` and `rate` is a rate CSV, one with `arrival_s` a request CSV, and a line of
/// whitespace-separated integers an IPA raw series.
pub fn detect_format(path: impl AsRef<Path>) -> Result<TraceFormat, TraceError> {
    let path = path.as_ref();
    let io_err = |source| TraceError::Io { path: path.to_path_buf(), source };
    let file = std::io::BufReader::new(fs::File::open(path).map_err(io_err)?);
    let mut found = None;
    for (i, line) in file.lines().enumerate() {
        let line = line.map_err(io_err)?;
        if !line.trim().is_empty() {
            found = Some((i, line));
            break;
        }
    }
    let Some((n, first)) = found else {
        return Err(TraceError::Empty { path: path.to_path_buf(), line: None, what: "the file is empty".into() });
    };
    let first = first.strip_prefix('\u{feff}').unwrap_or(&first);
    if first.split_whitespace().all(|t| t.parse::<u64>().is_ok()) {
        return Ok(TraceFormat::IpaRaw);
    }
    let cols = split_fields(first);
    if cols.contains(&"second") && cols.contains(&"rate") {
        Ok(TraceFormat::RateCsv)
    } else if cols.contains(&"arrival_s") {
        Ok(TraceFormat::RequestCsv)
    } else {
        Err(invalid(
            path,
            n + 1,
            format!(
                "cannot tell the trace format from `{}`: expected a header with `second,rate` (rate_csv) or `arrival_s` (request_csv), or integers (ipa_raw)",
                first.trim()
            ),
        ))
    }
}

/// Options for reading an IPA raw series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpaOptions {
    pub window: Option<(usize, usize)>,
    pub damping: u64,
}

impl Default for IpaOptions {
    fn default() -> Self {
        IpaOptions { window: None, damping: 1 }
    }
}

/// A workload file in `format` (told from the file when `None`): rate CSV and IPA raw give
/// rates, a request CSV (column `arrival_s`) gives arrivals.
pub fn load_workload(path: impl AsRef<Path>, format: Option<TraceFormat>, ipa: IpaOptions) -> Result<Workload, TraceError> {
    let path = path.as_ref();
    let format = match format {
        Some(f) => f,
        None => detect_format(path)?,
    };
    Ok(match format {
        TraceFormat::RateCsv => Workload::Rates(load_rate_csv(path)?),
        TraceFormat::IpaRaw => Workload::Rates(load_ipa_raw(path, ipa.window, ipa.damping)?),
        TraceFormat::RequestCsv => Workload::Requests(load_request_csv(path, "arrival_s")?),
    })
}

/// Writes `second,rate` rows to a temporary file beside `path`, then renames it into place.
pub fn write_rate_csv(path: impl AsRef<Path>, trace: &RateTrace) -> Result<(), TraceError> {
    let path = path.as_ref();
    let err = |source| TraceError::Write { path: path.to_path_buf(), source };
    let name = path.file_name().ok_or_else(|| err(std::io::Error::other("not a file path")))?;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp: PathBuf = dir.join(format!(".{}.tmp{}", name.to_string_lossy(), std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut w = std::io::BufWriter::new(fs::File::create(&tmp)?);
        writeln!(w, "second,rate")?;
        for (k, r) in trace.rates_rps.iter().enumerate() {
            writeln!(w, "{k},{r}")?;
        }
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        err(e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_in_both_layouts_and_zones() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(parse_timestamp("1970-01-02 00:00:01"), Some(86_401.0));
        assert_eq!(parse_timestamp("2022-01-01T00:00:00Z"), Some(1_640_995_200.0));
        assert_eq!(parse_timestamp("2020-03-01 00:00:00").unwrap() - parse_timestamp("2020-02-28 00:00:00").unwrap(), 2.0 * 86_400.0);
        assert_eq!(parse_timestamp("2022-01-01T01:00:00+01:00"), parse_timestamp("2022-01-01T00:00:00Z"));
        assert_eq!(parse_timestamp("2022-01-01T00:00:00.5Z"), Some(1_640_995_200.5));
        assert_eq!(parse_timestamp("2022-01-01"), Some(1_640_995_200.0));
        assert_eq!(parse_timestamp("12.5"), Some(12.5));
        for bad in ["2022-13-01 00:00:00", "2021-02-29", "2022-01-01T25:00:00", "yesterday", "2022-01-01X", ""] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
    }
}
