//! A run's output directory (docs/src/metrics.md): `summary.json`, `timeseries.parquet`, optional
//! `requests.parquet` and `batches.parquet`, and `manifest.json`. The directory is written under
//! a temporary name beside the target and renamed into place, so a reader never sees a partial
//! run: either the old directory, or the complete new one.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use polars::prelude::{
    Column, CsvWriter, DataFrame, NamedFrom, ParquetCompression, ParquetReader, ParquetWriter, PolarsResult, SerReader, SerWriter, Series,
};
use serde::Serialize;

use crate::metrics::{BatchRecords, RequestRecords, RunOutput, TimeSeries};

pub const SUMMARY: &str = "summary.json";
pub const TIMESERIES: &str = "timeseries.parquet";
pub const REQUESTS: &str = "requests.parquet";
pub const BATCHES: &str = "batches.parquet";
pub const MANIFEST: &str = "manifest.json";

fn col<T: Into<Column>>(c: T) -> Column {
    c.into()
}

pub fn timeseries_frame(ts: &TimeSeries) -> PolarsResult<DataFrame> {
    let mut columns = vec![
        col(Series::new("t_s".into(), &ts.t_s)),
        col(Series::new("arrivals".into(), &ts.arrivals)),
        col(Series::new("admitted".into(), &ts.admitted)),
        col(Series::new("skipped".into(), &ts.skipped)),
        col(Series::new("rejected".into(), &ts.rejected)),
        col(Series::new("completed".into(), &ts.completed)),
        col(Series::new("queue_len".into(), &ts.queue_len)),
        col(Series::new("in_service".into(), &ts.in_service)),
        col(Series::new("power_w".into(), &ts.power_w)),
        col(Series::new("energy_j".into(), &ts.energy_j)),
        col(Series::new("co2_g".into(), &ts.co2_g)),
        col(Series::new("tau".into(), &ts.tau)),
        col(Series::new("carbon_g_per_kwh".into(), &ts.carbon_g_per_kwh)),
    ];
    if let Some(p) = &ts.host_probe_us {
        columns.push(col(Series::new("host_probe_us".into(), p)));
    }
    DataFrame::new_infer_height(columns)
}

pub fn requests_frame(r: &RequestRecords) -> PolarsResult<DataFrame> {
    let name =
        |names: &[String], v: &[Option<u16>]| -> Vec<Option<String>> { v.iter().map(|i| i.map(|i| names[i as usize].clone())).collect() };
    DataFrame::new_infer_height(vec![
        col(Series::new("id".into(), &r.id)),
        col(Series::new("arrival_s".into(), &r.arrival_s)),
        col(Series::new("decision".into(), r.decision.iter().map(|d| d.as_str()).collect::<Vec<_>>())),
        col(Series::new("path".into(), name(&r.path_names, &r.path))),
        col(Series::new("model".into(), name(&r.model_names, &r.model))),
        col(Series::new("batch_size".into(), &r.batch_size)),
        col(Series::new("start_s".into(), &r.start_s)),
        col(Series::new("end_s".into(), &r.end_s)),
        col(Series::new("latency_ms".into(), &r.latency_ms)),
        col(Series::new("energy_j".into(), &r.energy_j)),
        col(Series::new("correct".into(), &r.correct)),
        col(Series::new("reason".into(), &r.reason)),
    ])
}

pub fn batches_frame(b: &BatchRecords) -> PolarsResult<DataFrame> {
    DataFrame::new_infer_height(vec![
        col(Series::new("server".into(), b.server.iter().map(|&s| b.server_names[s as usize].as_str()).collect::<Vec<_>>())),
        col(Series::new("instance".into(), &b.instance)),
        col(Series::new("start_s".into(), &b.start_s)),
        col(Series::new("end_s".into(), &b.end_s)),
        col(Series::new("size".into(), &b.size)),
        col(Series::new("energy_j".into(), &b.energy_j)),
    ])
}

/// Writes a frame as Parquet (zstd; deterministic bytes for equal frames).
pub fn write_parquet(path: &Path, df: &mut DataFrame) -> Result<()> {
    let f = fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    ParquetWriter::new(f)
        .with_compression(ParquetCompression::Zstd(None))
        .finish(df)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

pub fn read_parquet(path: &Path) -> Result<DataFrame> {
    let f = fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    ParquetReader::new(f).finish().with_context(|| format!("{}: not a readable Parquet file", path.display()))
}

/// Writes a frame as CSV.
pub fn write_csv(path: &Path, df: &mut DataFrame) -> Result<()> {
    let mut f = fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    CsvWriter::new(&mut f).finish(df).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

pub fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<()> {
    let mut s = serde_json::to_string_pretty(v)?;
    s.push('\n');
    fs::write(path, s).with_context(|| format!("cannot write {}", path.display()))
}

/// Writes `bytes` to `path` through a temporary file in the same directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_sibling(path);
    fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))
}

pub fn tmp_sibling(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "out".into());
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Whether `dir` looks like a basin output directory (safe to replace).
pub fn is_run_dir(dir: &Path) -> bool {
    dir.join(MANIFEST).is_file() || dir.join(SUMMARY).is_file() || dir.join("sweep.json").is_file()
        // a `basin calibrate` folder
        || (dir.join("manifest.toml").is_file() && dir.join("cost.csv").is_file())
}

/// Builds a directory with `fill` under a temporary name, then renames it to `out`, replacing a
/// previous basin output there (never an unrelated directory). On error nothing is left behind.
pub fn write_dir_atomic(out: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    if out.exists() && !(out.is_dir() && (is_run_dir(out) || fs::read_dir(out)?.next().is_none())) {
        bail!("{} exists and is not a basin output directory; refusing to replace it", out.display());
    }
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let tmp = tmp_sibling(out);
    if tmp.exists() {
        fs::remove_dir_all(&tmp)?;
    }
    fs::create_dir(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    if let Err(e) = fill(&tmp) {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if out.exists() {
        fs::remove_dir_all(out).with_context(|| format!("cannot replace {}", out.display()))?;
    }
    fs::rename(&tmp, out).with_context(|| format!("cannot rename {} to {}", tmp.display(), out.display()))
}

/// Writes the run's files (not the manifest) into `dir`.
pub fn write_run_files(dir: &Path, out: &RunOutput) -> Result<()> {
    write_json(&dir.join(SUMMARY), &out.summary)?;
    write_parquet(&dir.join(TIMESERIES), &mut timeseries_frame(&out.timeseries)?)?;
    if let Some(r) = &out.requests {
        write_parquet(&dir.join(REQUESTS), &mut requests_frame(r)?)?;
    }
    if let Some(b) = &out.batches {
        write_parquet(&dir.join(BATCHES), &mut batches_frame(b)?)?;
    }
    Ok(())
}
