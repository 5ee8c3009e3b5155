//! Cost and quality tables from CSV files. Every error names the file and the 1-based line.

use std::path::{Path, PathBuf};

use crate::model::cost::{CostRow, LatencyDistribution};
use crate::model::load::LoadPoint;
use crate::model::quality::QualityTable;

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("{}: cannot read: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}, line {line}: {message}", path.display())]
    Line { path: PathBuf, line: usize, message: String },
    #[error("{}: {message}", path.display())]
    File { path: PathBuf, message: String },
}

/// A CSV split into a header and rows (1-based line numbers); no quoting (the tables basin
/// reads and writes have none).
pub struct Csv {
    pub path: PathBuf,
    pub header: Vec<String>,
    pub rows: Vec<(usize, Vec<String>)>,
}

impl Csv {
    pub fn read(path: &Path) -> Result<Csv, TableError> {
        let text = std::fs::read_to_string(path).map_err(|source| TableError::Io { path: path.into(), source })?;
        // `#` lines: tables written before basin's CSVs were plain (provenance now goes to the
        // manifest) began with comment lines; skipping them keeps those files readable.
        let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'));
        let (_, head) = lines.next().ok_or_else(|| TableError::File { path: path.into(), message: "the file is empty".into() })?;
        let header: Vec<String> = head.split(',').map(|s| s.trim().to_string()).collect();
        let mut rows = Vec::new();
        for (i, l) in lines {
            let cells: Vec<String> = l.split(',').map(|s| s.trim().to_string()).collect();
            if cells.len() != header.len() {
                return Err(TableError::Line {
                    path: path.into(),
                    line: i + 1,
                    message: format!("{} cells, but the header has {} columns", cells.len(), header.len()),
                });
            }
            rows.push((i + 1, cells));
        }
        if rows.is_empty() {
            return Err(TableError::File { path: path.into(), message: "the table has a header but no rows".into() });
        }
        Ok(Csv { path: path.into(), header, rows })
    }

    pub fn col(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }

    pub fn require(&self, name: &str) -> Result<usize, TableError> {
        self.col(name).ok_or_else(|| TableError::File {
            path: self.path.clone(),
            message: format!("missing column `{name}` (header: {})", self.header.join(",")),
        })
    }

    pub fn err(&self, line: usize, message: impl Into<String>) -> TableError {
        TableError::Line { path: self.path.clone(), line, message: message.into() }
    }

    pub fn num(&self, line: usize, cells: &[String], col: usize) -> Result<f64, TableError> {
        let s = &cells[col];
        s.parse::<f64>().map_err(|_| self.err(line, format!("`{}` is not a number: `{s}`", self.header[col])))
    }

    pub fn opt_num(&self, line: usize, cells: &[String], col: Option<usize>) -> Result<Option<f64>, TableError> {
        match col {
            Some(c) if !cells[c].is_empty() => self.num(line, cells, c).map(Some),
            _ => Ok(None),
        }
    }

    pub fn bool(&self, line: usize, cells: &[String], col: usize) -> Result<bool, TableError> {
        match cells[col].to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" => Ok(true),
            "0" | "false" | "no" | "" => Ok(false),
            s => Err(self.err(line, format!("`{}` must be 0/1 or true/false, got `{s}`", self.header[col]))),
        }
    }
}

/// Columns a cost table may have. Calibration metadata columns are read and ignored.
pub const COST_COLUMNS: &[&str] = &[
    "model",
    "backend",
    "device",
    "batch_size",
    "latency_ms",
    "energy_j",
    "distribution",
    "latency_min_ms",
    "latency_p50_ms",
    "latency_p90_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "latency_max_ms",
    "samples_path",
    "energy_estimated",
    "repetitions",
    "latency_std_ms",
    "mean_power_w",
    "meter",
];

/// A cost table's rows with their line numbers, and the sample files they name.
pub type CostTableRows = (Vec<(usize, CostRow)>, Vec<PathBuf>);

/// Reads a cost CSV; returns each row with its line number. `samples_path` cells are read
/// relative to the table (one latency in ms per line) and their files returned for hashing.
pub fn load_cost_csv(path: &Path) -> Result<CostTableRows, TableError> {
    let csv = Csv::read(path)?;
    for h in &csv.header {
        if !COST_COLUMNS.contains(&h.as_str()) {
            return Err(TableError::File {
                path: path.into(),
                message: format!("unknown column `{h}`; allowed: {}", COST_COLUMNS.join(", ")),
            });
        }
    }
    let (m, b, d, bs, l, e) = (
        csv.require("model")?,
        csv.require("backend")?,
        csv.require("device")?,
        csv.require("batch_size")?,
        csv.require("latency_ms")?,
        csv.require("energy_j")?,
    );
    let dist = csv.col("distribution");
    let q = |n: &str| csv.col(n);
    let (qmin, q50, q90, q95, q99, qmax) =
        (q("latency_min_ms"), q("latency_p50_ms"), q("latency_p90_ms"), q("latency_p95_ms"), q("latency_p99_ms"), q("latency_max_ms"));
    let samples = csv.col("samples_path");
    let est = csv.col("energy_estimated");
    let mut out = Vec::new();
    let mut files = Vec::new();
    for (line, cells) in &csv.rows {
        let line = *line;
        let batch =
            cells[bs].parse::<u32>().map_err(|_| csv.err(line, format!("`batch_size` must be a positive integer, got `{}`", cells[bs])))?;
        let mut row = CostRow::fixed(&cells[m], &cells[b], &cells[d], batch, csv.num(line, cells, l)?, csv.num(line, cells, e)?);
        row.distribution = match dist.map(|c| cells[c].as_str()) {
            None | Some("") => None,
            Some("deterministic") => Some(LatencyDistribution::Deterministic),
            Some("exponential") => Some(LatencyDistribution::Exponential),
            Some("quantiles") => Some(LatencyDistribution::Quantiles),
            Some("samples") => Some(LatencyDistribution::Samples),
            Some(o) => {
                return Err(csv.err(line, format!("unknown distribution `{o}`; allowed: deterministic, exponential, quantiles, samples")));
            }
        };
        row.latency_min_ms = csv.opt_num(line, cells, qmin)?;
        row.latency_p50_ms = csv.opt_num(line, cells, q50)?;
        row.latency_p90_ms = csv.opt_num(line, cells, q90)?;
        row.latency_p95_ms = csv.opt_num(line, cells, q95)?;
        row.latency_p99_ms = csv.opt_num(line, cells, q99)?;
        row.latency_max_ms = csv.opt_num(line, cells, qmax)?;
        row.energy_estimated = match est {
            Some(c) => csv.bool(line, cells, c)?,
            None => false,
        };
        if let Some(c) = samples.filter(|&c| !cells[c].is_empty()) {
            let p = path.parent().unwrap_or(Path::new(".")).join(&cells[c]);
            let text = std::fs::read_to_string(&p).map_err(|e| csv.err(line, format!("samples file {}: {e}", p.display())))?;
            let mut v = Vec::new();
            for (i, t) in text.lines().enumerate().filter(|(_, t)| !t.trim().is_empty()) {
                v.push(t.trim().parse::<f64>().map_err(|_| TableError::Line {
                    path: p.clone(),
                    line: i + 1,
                    message: format!("not a latency in ms: `{t}`"),
                })?);
            }
            row.samples_ms = Some(v);
            files.push(p);
        }
        out.push((line, row));
    }
    Ok((out, files))
}

/// Reads a quality CSV with columns `sample,model,confidence,correct`.
pub fn load_quality_csv(path: &Path) -> Result<QualityTable, TableError> {
    let csv = Csv::read(path)?;
    let (s, m, c, k) = (csv.require("sample")?, csv.require("model")?, csv.require("confidence")?, csv.require("correct")?);
    let mut rows = Vec::with_capacity(csv.rows.len());
    for (line, cells) in &csv.rows {
        let sample =
            cells[s].parse::<u32>().map_err(|_| csv.err(*line, format!("`sample` must be a non-negative integer, got `{}`", cells[s])))?;
        let conf = csv.num(*line, cells, c)?;
        if !(0.0..=1.0).contains(&conf) {
            return Err(csv.err(*line, format!("`confidence` must be in [0, 1], got {conf}")));
        }
        rows.push((cells[m].clone(), sample, conf, csv.bool(*line, cells, k)?));
    }
    QualityTable::from_rows(rows).map_err(|e| TableError::File { path: path.into(), message: e.to_string() })
}

/// Reads a load profile CSV (`basin load-profile`): columns `rps`, `service_factor`,
/// `overhead_ms`, optional `energy_factor` (default 1); other columns are read and ignored.
pub fn load_profile_csv(path: &Path) -> Result<Vec<LoadPoint>, TableError> {
    let csv = Csv::read(path)?;
    let (r, f, o) = (csv.require("rps")?, csv.require("service_factor")?, csv.require("overhead_ms")?);
    let e = csv.col("energy_factor");
    let mut out = Vec::new();
    for (line, cells) in &csv.rows {
        let energy_factor = csv.opt_num(*line, cells, e)?.unwrap_or(1.0);
        let p = LoadPoint {
            rps: csv.num(*line, cells, r)?,
            service_factor: csv.num(*line, cells, f)?,
            overhead_ms: csv.num(*line, cells, o)?,
            energy_factor,
        };
        p.check().map_err(|m| csv.err(*line, m))?;
        out.push(p);
    }
    Ok(out)
}
