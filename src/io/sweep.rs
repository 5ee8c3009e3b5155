//! A sweep's output directory: `sweep.json` (the manifest), `journal.jsonl` (one line per
//! finished run, appended and fsynced as runs finish) and `results.parquet` / `results.csv`
//! (rebuilt from the journal, rows sorted by `run_id`, written to a temporary name and renamed).
//!
//! The journal is the crash-safe record: a line is complete once its newline is on disk; a
//! partial last line (a sweep killed mid-write) is cut off when the journal is reopened. The
//! results tables are always rebuilt from the parsed journal, so an interrupted-and-resumed
//! sweep, a merged set of shards and an uninterrupted sweep give byte-identical files.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use polars::prelude::{Column, DataFrame, NamedFrom, Series};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::io::outputs;
use crate::sweep::Shard;

pub const SWEEP_MANIFEST: &str = "sweep.json";
pub const JOURNAL: &str = "journal.jsonl";
pub const RESULTS_PARQUET: &str = "results.parquet";
pub const RESULTS_CSV: &str = "results.csv";

/// One base experiment of a sweep, for the manifest.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BaseInfo {
    pub path: String,
    pub workload: String,
    pub sha256: String,
    /// Input files the base reads (trace, tables) with their hashes.
    pub inputs: Vec<crate::io::experiment::InputFile>,
}

/// `sweep.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SweepManifest {
    pub kind: String,
    pub sweep_file: String,
    pub sweep_sha256: String,
    /// SHA-256 of the expanded design (points, seeds, base files): equal hashes, same runs.
    pub design_sha256: String,
    pub bases: Vec<BaseInfo>,
    pub seeds: Vec<u64>,
    pub axes: Vec<String>,
    pub points: u64,
    pub total_runs: u64,
    pub shard: Option<Shard>,
    /// Runs this directory is responsible for.
    pub shard_runs: u64,
    pub finished_runs: u64,
    pub complete: bool,
    pub basin_version: String,
    pub git_revision: String,
    pub host: serde_json::Value,
    pub command_line: Vec<String>,
    pub started_at: String,
    pub updated_at: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged_from: Vec<String>,
}

impl<'de> Deserialize<'de> for crate::io::experiment::InputFile {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct F {
            role: String,
            path: PathBuf,
            sha256: String,
        }
        let f = F::deserialize(d)?;
        Ok(crate::io::experiment::InputFile { role: f.role, path: f.path, sha256: f.sha256 })
    }
}

/// One finished run: its columns in order (`run_id, point_id, seed, workload, baseline`, the
/// axes, then the flattened summary).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Row {
    pub run_id: u64,
    pub row: Vec<(String, Value)>,
}

pub fn read_manifest(dir: &Path) -> Result<SweepManifest> {
    let p = dir.join(SWEEP_MANIFEST);
    let text =
        fs::read_to_string(&p).with_context(|| format!("cannot read {} (is {} a sweep output directory?)", p.display(), dir.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a basin sweep manifest", p.display()))
}

pub fn write_manifest(dir: &Path, m: &SweepManifest) -> Result<()> {
    let mut s = serde_json::to_string_pretty(m)?;
    s.push('\n');
    outputs::write_atomic(&dir.join(SWEEP_MANIFEST), s.as_bytes())
}

/// Reads a journal: complete lines only. Returns the rows and the byte length of the complete
/// part (a partial or unparsable last line is reported by the length being shorter than the
/// file). A malformed line that is not the last is an error (the file was edited or corrupted).
pub fn read_journal(path: &Path) -> Result<(Vec<Row>, u64)> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((vec![], 0)),
        Err(e) => return Err(e).with_context(|| format!("cannot open {}", path.display())),
    };
    let mut r = BufReader::new(f);
    let mut rows = Vec::new();
    let mut good = 0u64;
    let mut line = Vec::new();
    let mut n = 0usize;
    loop {
        line.clear();
        let got = r.read_until(b'\n', &mut line).with_context(|| format!("cannot read {}", path.display()))?;
        if got == 0 {
            break;
        }
        n += 1;
        if line.last() != Some(&b'\n') {
            break; // partial last line: written when the sweep was killed
        }
        match serde_json::from_slice::<Row>(&line) {
            Ok(row) => {
                rows.push(row);
                good += got as u64;
            }
            Err(e) => {
                // only the last line may be damaged
                let mut rest = Vec::new();
                std::io::Read::read_to_end(&mut r, &mut rest)?;
                if rest.iter().all(|b| b.is_ascii_whitespace()) {
                    break;
                }
                bail!("{}: line {n} is not a journal record ({e}); the journal is damaged", path.display());
            }
        }
    }
    Ok((rows, good))
}

/// An append-only journal.
pub struct Journal {
    file: File,
}

impl Journal {
    /// Opens (creating) the journal, cutting off a partial last line, and returns the rows
    /// already in it.
    pub fn open(path: &Path) -> Result<(Journal, Vec<Row>)> {
        let (rows, good) = read_journal(path)?;
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(path)
            .with_context(|| format!("cannot open {} for appending", path.display()))?;
        let len = file.metadata()?.len();
        if len != good {
            tracing::warn!("{}: dropping an incomplete last record ({} bytes)", path.display(), len - good);
            file.set_len(good)?;
            file.sync_all()?;
        }
        file.seek(SeekFrom::End(0))?;
        Ok((Journal { file }, rows))
    }

    /// Appends one record and makes it durable (write, flush, fsync).
    pub fn append(&mut self, row: &Row) -> Result<()> {
        let mut s = serde_json::to_string(row)?;
        s.push('\n');
        self.file.write_all(s.as_bytes())?;
        self.file.flush()?;
        self.file.sync_data()?;
        Ok(())
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Null,
    Bool,
    Int,
    Float,
    Str,
}

fn kind(v: &Value) -> Kind {
    match v {
        Value::Null => Kind::Null,
        Value::Bool(_) => Kind::Bool,
        Value::Number(n) if n.is_f64() => Kind::Float,
        Value::Number(_) => Kind::Int,
        _ => Kind::Str,
    }
}

fn as_string(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// The results table of `rows` (sorted here by `run_id`): columns in the order of first
/// appearance, types from the values (integers, floats, booleans, strings; mixed numbers are
/// floats, anything else mixed is a string).
pub fn results_frame(rows: &[Row]) -> Result<DataFrame> {
    let mut sorted: Vec<&Row> = rows.iter().collect();
    sorted.sort_by_key(|r| r.run_id);
    let mut names: Vec<String> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    for r in &sorted {
        for (k, _) in &r.row {
            if !index.contains_key(k) {
                index.insert(k.clone(), names.len());
                names.push(k.clone());
            }
        }
    }
    let cells: Vec<BTreeMap<&str, &Value>> = sorted.iter().map(|r| r.row.iter().map(|(k, v)| (k.as_str(), v)).collect()).collect();
    let mut cols = Vec::with_capacity(names.len());
    for name in &names {
        let vals: Vec<Option<&Value>> = cells.iter().map(|c| c.get(name.as_str()).copied()).collect();
        let kinds: Vec<Kind> = vals.iter().filter_map(|v| v.map(kind)).filter(|k| *k != Kind::Null).collect();
        let mut k = kinds.iter().copied().max().unwrap_or(Kind::Float);
        if kinds.iter().any(|x| *x != k) && !(k == Kind::Float && kinds.iter().all(|x| matches!(x, Kind::Int | Kind::Float))) {
            k = Kind::Str;
        }
        let s = match k {
            Kind::Bool => Series::new(name.into(), vals.iter().map(|v| v.and_then(Value::as_bool)).collect::<Vec<_>>()),
            Kind::Int => {
                if vals.iter().all(|v| v.is_none_or(|v| v.is_null() || v.as_i64().is_some())) {
                    Series::new(name.into(), vals.iter().map(|v| v.and_then(Value::as_i64)).collect::<Vec<_>>())
                } else {
                    Series::new(name.into(), vals.iter().map(|v| v.and_then(Value::as_u64)).collect::<Vec<_>>())
                }
            }
            Kind::Float | Kind::Null => Series::new(name.into(), vals.iter().map(|v| v.and_then(Value::as_f64)).collect::<Vec<_>>()),
            Kind::Str => Series::new(name.into(), vals.iter().map(|v| v.and_then(as_string)).collect::<Vec<_>>()),
        };
        cols.push(Column::from(s));
    }
    Ok(DataFrame::new_infer_height(cols)?)
}

/// Writes `results.parquet` and `results.csv` of `rows` into `dir`, each atomically.
pub fn write_results(dir: &Path, rows: &[Row]) -> Result<()> {
    let mut df = results_frame(rows)?;
    for (name, parquet) in [(RESULTS_PARQUET, true), (RESULTS_CSV, false)] {
        let path = dir.join(name);
        let tmp = outputs::tmp_sibling(&path);
        if parquet {
            outputs::write_parquet(&tmp, &mut df)?;
        } else {
            outputs::write_csv(&tmp, &mut df)?;
        }
        File::open(&tmp)?.sync_all()?;
        fs::rename(&tmp, &path).with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))?;
    }
    Ok(())
}

/// Reads a results table (`.parquet`, `.csv`, or a sweep directory holding them).
pub fn read_results(path: &Path) -> Result<(PathBuf, DataFrame)> {
    let p = if path.is_dir() {
        let p = path.join(RESULTS_PARQUET);
        if !p.is_file() {
            bail!("{}: no {RESULTS_PARQUET} in this directory (run `basin sweep` or `basin merge` first)", path.display());
        }
        p
    } else {
        path.to_path_buf()
    };
    let df = match p.extension().and_then(|e| e.to_str()) {
        Some("parquet") => outputs::read_parquet(&p)?,
        Some("csv") => {
            use polars::prelude::{CsvReadOptions, SerReader};
            CsvReadOptions::default()
                .with_has_header(true)
                .try_into_reader_with_file_path(Some(p.clone()))
                .and_then(|r| r.finish())
                .with_context(|| format!("{}: not a readable CSV file", p.display()))?
        }
        _ => bail!("{}: expected a results .parquet or .csv file, or a sweep directory", p.display()),
    };
    Ok((p, df))
}

/// Joins the shard directories `dirs` into `out`: every run of the sweep exactly once.
pub fn merge(dirs: &[PathBuf], out: &Path, command_line: Vec<String>) -> Result<(u64, SweepManifest)> {
    if dirs.is_empty() {
        bail!("basin merge: give at least one sweep or shard directory");
    }
    let mut first: Option<SweepManifest> = None;
    let mut seen: BTreeMap<u64, (PathBuf, Row)> = BTreeMap::new();
    for d in dirs {
        let m = read_manifest(d)?;
        if let Some(f) = &first {
            if f.design_sha256 != m.design_sha256 {
                bail!(
                    "{}: belongs to a different sweep (design hash {}…) than {} ({}…); merge only shards of one sweep",
                    d.display(),
                    &m.design_sha256[..12],
                    dirs[0].display(),
                    &f.design_sha256[..12]
                );
            }
        } else {
            first = Some(m.clone());
        }
        let (rows, _) = read_journal(&d.join(JOURNAL))?;
        for r in rows {
            if r.run_id >= m.total_runs {
                bail!("{}: run {} is outside the sweep's {} runs", d.display(), r.run_id, m.total_runs);
            }
            if let Some((prev, _)) = seen.get(&r.run_id) {
                bail!(
                    "run {} is present twice (in {} and {}); each run must come from exactly one shard",
                    r.run_id,
                    prev.display(),
                    d.display()
                );
            }
            seen.insert(r.run_id, (d.clone(), r));
        }
    }
    let m = first.expect("at least one dir");
    let missing: Vec<u64> = (0..m.total_runs).filter(|i| !seen.contains_key(i)).collect();
    if !missing.is_empty() {
        let show: Vec<String> = missing.iter().take(10).map(|i| i.to_string()).collect();
        bail!(
            "{} of the sweep's {} runs are missing (run_id {}{}); run the missing shards (or `basin sweep --resume` them) and merge again",
            missing.len(),
            m.total_runs,
            show.join(", "),
            if missing.len() > 10 { ", …" } else { "" }
        );
    }
    let rows: Vec<Row> = seen.into_values().map(|(_, r)| r).collect();
    let mut merged = m.clone();
    merged.shard = None;
    merged.shard_runs = m.total_runs;
    merged.finished_runs = rows.len() as u64;
    merged.complete = true;
    merged.command_line = command_line;
    merged.updated_at = crate::io::manifest::now_rfc3339();
    merged.merged_from = dirs.iter().map(|d| d.display().to_string()).collect();
    outputs::write_dir_atomic(out, |tmp| {
        let mut j = String::new();
        for r in &rows {
            j += &serde_json::to_string(r)?;
            j.push('\n');
        }
        fs::write(tmp.join(JOURNAL), j)?;
        write_results(tmp, &rows)?;
        write_manifest(tmp, &merged)
    })?;
    Ok((rows.len() as u64, merged))
}

/// Deserializes JSON keeping object keys in document order (serde_json's map sorts them).
pub fn ordered_flat(json: &str) -> Result<Vec<(String, Value)>> {
    struct Ordered(Vec<(String, Value)>);
    struct V<'a>(&'a str, &'a mut Vec<(String, Value)>);
    impl<'de> serde::de::DeserializeSeed<'de> for V<'_> {
        type Value = ();
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }
    impl<'de> serde::de::Visitor<'de> for V<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON value")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<(), A::Error> {
            while let Some(k) = m.next_key::<String>()? {
                let key = if self.0.is_empty() { k } else { format!("{}_{k}", self.0) };
                m.next_value_seed(V(&key, self.1))?;
            }
            Ok(())
        }
        fn visit_bool<E>(self, v: bool) -> Result<(), E> {
            self.1.push((self.0.into(), Value::Bool(v)));
            Ok(())
        }
        fn visit_i64<E>(self, v: i64) -> Result<(), E> {
            self.1.push((self.0.into(), Value::from(v)));
            Ok(())
        }
        fn visit_u64<E>(self, v: u64) -> Result<(), E> {
            self.1.push((self.0.into(), Value::from(v)));
            Ok(())
        }
        fn visit_f64<E>(self, v: f64) -> Result<(), E> {
            self.1.push((self.0.into(), Value::from(v)));
            Ok(())
        }
        fn visit_str<E>(self, v: &str) -> Result<(), E> {
            self.1.push((self.0.into(), Value::String(v.into())));
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            self.1.push((self.0.into(), Value::Null));
            Ok(())
        }
        fn visit_none<E>(self) -> Result<(), E> {
            self.1.push((self.0.into(), Value::Null));
            Ok(())
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut s: A) -> Result<(), A::Error> {
            let mut items = Vec::new();
            while let Some(v) = s.next_element::<Value>()? {
                items.push(v);
            }
            self.1.push((self.0.into(), Value::String(Value::Array(items).to_string())));
            Ok(())
        }
    }
    impl<'de> Deserialize<'de> for Ordered {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let mut out = Vec::new();
            serde::de::DeserializeSeed::deserialize(V("", &mut out), d)?;
            Ok(Ordered(out))
        }
    }
    Ok(serde_json::from_str::<Ordered>(json)?.0)
}
