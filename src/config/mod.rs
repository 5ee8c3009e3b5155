//! Experiment and sweep files: serde types with `deny_unknown_fields`, `--set` overrides by
//! dotted path, and errors that name the file, the key and the allowed values.
//!
//! Loading is two steps: the TOML text becomes a [`toml::Table`] (syntax errors carry the line
//! and column), overrides are applied to the table, and the table is deserialized into
//! [`Experiment`] with the failing key's path in the error. Semantic checks (unknown device,
//! missing cost row, ...) happen when the experiment is resolved against its input files
//! (`io::experiment`).

pub mod experiment;

use std::path::{Path, PathBuf};

pub use experiment::*;

/// A configuration error: which file, which key, what is wrong (and what is allowed).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: {message}", file.display())]
    File { file: PathBuf, message: String },
    #[error("{}: `{key}`: {message}", file.display())]
    Key { file: PathBuf, key: String, message: String },
}

impl ConfigError {
    pub fn key(file: &Path, key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Key { file: file.to_path_buf(), key: key.into(), message: message.into() }
    }
    pub fn file(file: &Path, message: impl Into<String>) -> Self {
        ConfigError::File { file: file.to_path_buf(), message: message.into() }
    }
}

/// Parses TOML text into a table; syntax errors name the line and column.
pub fn parse_table(file: &Path, text: &str) -> Result<toml::Table, ConfigError> {
    text.parse::<toml::Table>().map_err(|e| {
        let msg = e.to_string();
        let loc = e
            .span()
            .map(|sp| {
                let line = text[..sp.start.min(text.len())].lines().count().max(1);
                let line = if text[..sp.start.min(text.len())].ends_with('\n') { line + 1 } else { line };
                format!("line {line}: ")
            })
            .unwrap_or_default();
        ConfigError::file(file, format!("{loc}invalid TOML: {}", msg.lines().last().unwrap_or(&msg).trim()))
    })
}

/// Parses the VALUE of `--set KEY=VALUE`: a TOML value (`0.7`, `true`, `"x"`, `[1, 2]`), or a
/// bare string when it is not valid TOML.
pub fn parse_override_value(raw: &str) -> toml::Value {
    match format!("v = {raw}").parse::<toml::Table>() {
        Ok(mut t) => t.remove("v").expect("key v was just written"),
        Err(_) => toml::Value::String(raw.to_string()),
    }
}

/// Splits a dotted path into segments; `server.0.instances` and `server[0].instances` both
/// address the first `[[server]]`. Quoted segments are not needed: keys never contain dots.
pub fn split_path(path: &str) -> Vec<String> {
    path.replace('[', ".").replace(']', "").split('.').filter(|s| !s.is_empty()).map(str::to_string).collect()
}

/// Sets `path` in `table` to `value`, creating intermediate tables. Array elements are
/// addressed by index.
pub fn set_path(table: &mut toml::Table, path: &str, value: toml::Value) -> Result<(), String> {
    let segs = split_path(path);
    let (first, _) = segs.split_first().ok_or("empty key")?;
    let slot = table.entry(first.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
    set_in(slot, &segs, 1, value)
}

/// Removes the key at a dotted path; false when there is none.
pub fn remove_path(table: &mut toml::Table, path: &str) -> bool {
    let segs = split_path(path);
    let Some((last, parents)) = segs.split_last() else { return false };
    let mut cur = table;
    for seg in parents {
        cur = match cur.get_mut(seg) {
            Some(toml::Value::Table(t)) => t,
            _ => return false,
        };
    }
    cur.remove(last).is_some()
}

fn set_in(cur: &mut toml::Value, segs: &[String], i: usize, value: toml::Value) -> Result<(), String> {
    if i == segs.len() {
        *cur = value;
        return Ok(());
    }
    let seg = &segs[i];
    let sofar = segs[..=i].join(".");
    match cur {
        toml::Value::Table(t) => {
            let slot = t.entry(seg.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
            set_in(slot, segs, i + 1, value)
        }
        toml::Value::Array(a) => {
            let n = a.len();
            let idx: usize = seg.parse().map_err(|_| format!("`{sofar}`: `{seg}` is not an index into an array of {n} entries"))?;
            let slot = a.get_mut(idx).ok_or_else(|| format!("`{sofar}`: index {idx} is out of range (the array has {n} entries)"))?;
            set_in(slot, segs, i + 1, value)
        }
        _ => Err(format!("`{}` is not a table, so `{sofar}` cannot be set", segs[..i].join("."))),
    }
}

/// Deserializes a table, naming the failing key in the error.
pub fn from_table<T: serde::de::DeserializeOwned>(file: &Path, table: toml::Table) -> Result<T, ConfigError> {
    let controller = table.get("controller").and_then(|v| v.as_table()).cloned();
    serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        let path = e.path().to_string();
        if path == "controller"
            && let Some((inner, msg)) = controller.as_ref().and_then(crate::model::controller::ControllerConfig::explain_error)
        {
            let key = if inner == "." || inner.is_empty() { path.clone() } else { format!("controller.{inner}") };
            return ConfigError::key(
                file,
                key,
                msg.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("in `")).collect::<Vec<_>>().join("; "),
            );
        }
        let inner = e.into_inner().to_string();
        // toml adds "in `table`" lines; the path already says where
        let inner = inner.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("in `")).collect::<Vec<_>>().join("; ");
        if path == "." || path.is_empty() { ConfigError::file(file, inner) } else { ConfigError::key(file, path, inner) }
    })
}
