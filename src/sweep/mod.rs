//! Sweep designs (docs/src/sweeps.md): which runs a sweep makes, in which order, and which
//! shard runs which. Pure: the sweep file arrives as a parsed TOML table, nothing here reads a
//! file or a clock, and sampled designs draw only from [`RngStreams`] seeded by the sweep.
//!
//! ```toml
//! base = "bursty-bio.toml"            # or a list: one workload per base experiment
//! seeds = [1, 2, 3]
//! baseline = true                     # also run each base with `controller = {kind = "open_loop"}`
//! [axes]
//! "controller.k" = [0.001, 0.01, 0.1]                              # a list
//! "controller.tau0" = { from = 0.5, to = 1.0, steps = 6 }          # linear range
//! "controller.k" = { from = 0.001, to = 0.1, steps = 5, scale = "log" }
//! [design]                            # optional; default: the full grid of the axes
//! method = "lhs"                      # grid | random | lhs
//! count = 50                          # points per base (random, lhs)
//! seed = 1                            # the design's own seed (default 0)
//! ```
//!
//! Runs are numbered in a fixed order: for each base (in file order) its baseline point (when
//! asked) then its design points; for each point its seeds in file order. `run_id = point_id ×
//! seeds + seed index`. That number is the run's identity everywhere (journal, shards, resume,
//! merge); shard `i` of `n` runs the runs with `run_id % n == i`.

use std::collections::BTreeMap;

use rand::RngExt;
use serde::Serialize;

use crate::core::rng::RngStreams;

/// What went wrong in a sweep file; the message names the key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("`{key}`: {message}")]
pub struct SweepError {
    pub key: String,
    pub message: String,
}

/// The most values one range axis may have: `basin sweep` checks each against each base.
pub const MAX_AXIS_VALUES: usize = 10_000;
/// The most runs one sweep may list (a mutated `steps` or `count` used to allocate 128 GiB).
pub const MAX_SWEEP_RUNS: usize = 10_000_000;

fn err(key: impl Into<String>, message: impl Into<String>) -> SweepError {
    SweepError { key: key.into(), message: message.into() }
}

/// Linear or logarithmic spacing of a range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scale {
    Linear,
    Log,
}

/// One axis of the sweep, as written.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Axis {
    /// Explicit values (any TOML scalars of one type).
    List { values: Vec<toml::Value> },
    /// `from..=to` in `steps` values (grid) or sampled in `[from, to]` (random, lhs). Integer
    /// ends give integer values (rounded).
    Range { from: f64, to: f64, steps: Option<usize>, scale: Scale, integer: bool },
}

/// How points are drawn from the axes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    Grid,
    Random,
    Lhs,
}

/// A parsed sweep file (paths of the bases still raw, as written).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SweepSpec {
    pub bases: Vec<String>,
    pub seeds: Vec<u64>,
    pub baseline: bool,
    /// Axes by dotted path, in file order.
    pub axes: Vec<(String, Axis)>,
    pub method: Method,
    pub count: usize,
    pub design_seed: u64,
}

/// One point of the design: which base, and the value of every axis (none for a baseline).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Point {
    pub base: usize,
    pub baseline: bool,
    pub values: Vec<(String, toml::Value)>,
}

/// One run: a point and a seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct RunKey {
    pub run_id: u64,
    pub point_id: u64,
    pub seed: u64,
}

const TOP_KEYS: &[&str] = &["base", "seeds", "baseline", "axes", "design", "description"];

fn as_f64(v: &toml::Value) -> Option<f64> {
    match v {
        toml::Value::Integer(i) => Some(*i as f64),
        toml::Value::Float(f) => Some(*f),
        _ => None,
    }
}

fn type_name(v: &toml::Value) -> &'static str {
    match v {
        toml::Value::String(_) => "string",
        toml::Value::Integer(_) => "integer",
        toml::Value::Float(_) => "float",
        toml::Value::Boolean(_) => "boolean",
        toml::Value::Datetime(_) => "datetime",
        toml::Value::Array(_) => "array",
        toml::Value::Table(_) => "table",
    }
}

fn parse_axis(path: &str, v: &toml::Value, method: Method) -> Result<Axis, SweepError> {
    let key = format!("axes.\"{path}\"");
    match v {
        toml::Value::Array(vals) => {
            if vals.is_empty() {
                return Err(err(key, "an empty list: give at least one value"));
            }
            let numeric = vals.iter().all(|x| as_f64(x).is_some());
            let first = type_name(&vals[0]);
            if !numeric && vals.iter().any(|x| type_name(x) != first) {
                let types: Vec<&str> = vals.iter().map(type_name).collect();
                return Err(err(
                    key,
                    format!("the values must all have one type (numbers, strings or booleans); found {}", types.join(", ")),
                ));
            }
            if vals.iter().any(|x| matches!(x, toml::Value::Float(f) if !f.is_finite())) {
                return Err(err(key, "values must be finite numbers"));
            }
            Ok(Axis::List { values: vals.clone() })
        }
        toml::Value::Table(t) => {
            for k in t.keys() {
                if !["from", "to", "steps", "scale"].contains(&k.as_str()) {
                    return Err(err(
                        format!("{key}.{k}"),
                        "unknown key in a range; a range has `from`, `to`, `steps` (grid designs) and optional `scale = \"linear\" | \"log\"`",
                    ));
                }
            }
            let num = |name: &str| -> Result<(f64, bool), SweepError> {
                let x = t.get(name).ok_or_else(|| err(&key, format!("a range needs `{name}`")))?;
                let f = as_f64(x).ok_or_else(|| err(format!("{key}.{name}"), format!("must be a number (got a {})", type_name(x))))?;
                if !f.is_finite() {
                    return Err(err(format!("{key}.{name}"), "must be finite"));
                }
                Ok((f, matches!(x, toml::Value::Integer(_))))
            };
            let (from, fi) = num("from")?;
            let (to, ti) = num("to")?;
            let scale = match t.get("scale") {
                None => Scale::Linear,
                Some(toml::Value::String(s)) if s == "linear" => Scale::Linear,
                Some(toml::Value::String(s)) if s == "log" => Scale::Log,
                Some(x) => return Err(err(format!("{key}.scale"), format!("must be \"linear\" or \"log\" (got {x})"))),
            };
            if scale == Scale::Log && (from <= 0.0 || to <= 0.0) {
                return Err(err(&key, format!("a log range needs from > 0 and to > 0 (got from = {from}, to = {to})")));
            }
            let steps = match t.get("steps") {
                None => None,
                Some(toml::Value::Integer(n)) if (1..=MAX_AXIS_VALUES as i64).contains(n) => Some(*n as usize),
                Some(toml::Value::Integer(n)) if *n >= 1 => {
                    return Err(err(
                        format!("{key}.steps"),
                        format!("{n} values on one axis is more than the {MAX_AXIS_VALUES} a sweep takes"),
                    ));
                }
                Some(toml::Value::Integer(n)) => {
                    return Err(err(format!("{key}.steps"), format!("must be at least 1 (got {n}); an empty range has no points")));
                }
                Some(x) => return Err(err(format!("{key}.steps"), format!("must be a positive integer (got a {})", type_name(x)))),
            };
            match (method, steps) {
                (Method::Grid, None) => return Err(err(&key, "a range in a grid design needs `steps`")),
                (Method::Grid, Some(1)) if from != to => {
                    return Err(err(format!("{key}.steps"), "steps = 1 with from != to is ambiguous; use a list of one value"));
                }
                (Method::Random | Method::Lhs, Some(_)) => {
                    return Err(err(
                        format!("{key}.steps"),
                        "sampled designs (random, lhs) draw from the whole range; remove `steps` or use method = \"grid\"",
                    ));
                }
                _ => {}
            }
            if from > to {
                return Err(err(&key, format!("empty range: from ({from}) is greater than to ({to})")));
            }
            Ok(Axis::Range { from, to, steps, scale, integer: fi && ti })
        }
        other => Err(err(key, format!("must be a list of values or a range table {{ from, to, steps }} (got a {})", type_name(other)))),
    }
}

impl SweepSpec {
    /// Parses a sweep file's table.
    pub fn from_table(t: &toml::Table) -> Result<SweepSpec, SweepError> {
        for k in t.keys() {
            if !TOP_KEYS.contains(&k.as_str()) {
                return Err(err(k, format!("unknown key; a sweep file has {}", TOP_KEYS.join(", "))));
            }
        }
        let bases = match t.get("base") {
            Some(toml::Value::String(s)) => vec![s.clone()],
            Some(toml::Value::Array(a)) if !a.is_empty() => a
                .iter()
                .map(|v| match v {
                    toml::Value::String(s) => Ok(s.clone()),
                    x => Err(err("base", format!("must list experiment file paths (got a {})", type_name(x)))),
                })
                .collect::<Result<_, _>>()?,
            Some(toml::Value::Array(_)) => return Err(err("base", "an empty list: name at least one base experiment")),
            Some(x) => return Err(err("base", format!("must be a path or a list of paths (got a {})", type_name(x)))),
            None => return Err(err("base", "missing: the base experiment file (relative to the sweep file)")),
        };
        let seeds = match t.get("seeds") {
            None => vec![1],
            Some(toml::Value::Integer(n)) if *n >= 0 => vec![*n as u64],
            Some(toml::Value::Array(a)) if !a.is_empty() => a
                .iter()
                .map(|v| match v {
                    toml::Value::Integer(n) if *n >= 0 => Ok(*n as u64),
                    x => Err(err("seeds", format!("must be non-negative integers (got {x})"))),
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(toml::Value::Array(_)) => return Err(err("seeds", "an empty list: give at least one seed")),
            Some(x) => return Err(err("seeds", format!("must be a list of non-negative integers (got {x})"))),
        };
        let mut sorted = seeds.clone();
        sorted.sort_unstable();
        if sorted.windows(2).any(|w| w[0] == w[1]) {
            return Err(err("seeds", "a seed is listed twice"));
        }
        let baseline = match t.get("baseline") {
            None => false,
            Some(toml::Value::Boolean(b)) => *b,
            Some(x) => return Err(err("baseline", format!("must be true or false (got {x})"))),
        };
        let (mut method, mut count, mut design_seed) = (Method::Grid, None, 0u64);
        if let Some(d) = t.get("design") {
            let d = d.as_table().ok_or_else(|| err("design", "must be a table"))?;
            for (k, v) in d {
                match k.as_str() {
                    "method" => {
                        method = match v.as_str() {
                            Some("grid") => Method::Grid,
                            Some("random") => Method::Random,
                            Some("lhs") | Some("latin_hypercube") => Method::Lhs,
                            _ => return Err(err("design.method", format!("must be \"grid\", \"random\" or \"lhs\" (got {v})"))),
                        }
                    }
                    "count" => {
                        count = Some(match v {
                            toml::Value::Integer(n) if *n >= 1 => *n as usize,
                            x => return Err(err("design.count", format!("must be a positive integer (got {x})"))),
                        })
                    }
                    "seed" => {
                        design_seed = match v {
                            toml::Value::Integer(n) if *n >= 0 => *n as u64,
                            x => return Err(err("design.seed", format!("must be a non-negative integer (got {x})"))),
                        }
                    }
                    _ => return Err(err(format!("design.{k}"), "unknown key; [design] has method, count, seed")),
                }
            }
        }
        let count = match (method, count) {
            (Method::Grid, Some(_)) => {
                return Err(err(
                    "design.count",
                    "a grid design has one point per combination of axis values; `count` is for random and lhs",
                ));
            }
            (Method::Grid, None) => 0,
            (_, None) => return Err(err("design.count", "random and lhs designs need `count` (points per base experiment)")),
            (_, Some(n)) => n,
        };
        let mut axes = Vec::new();
        if let Some(a) = t.get("axes") {
            let a = a.as_table().ok_or_else(|| err("axes", "must be a table of dotted paths"))?;
            for (path, v) in a {
                if path.trim().is_empty() || crate::config::split_path(path).is_empty() {
                    return Err(err("axes", "an axis needs a non-empty dotted path"));
                }
                if path == "seed" {
                    return Err(err("axes.seed", "seeds are given by the top-level `seeds` list"));
                }
                axes.push((path.clone(), parse_axis(path, v, method)?));
            }
        }
        if method != Method::Grid && axes.is_empty() {
            return Err(err("axes", "a sampled design needs at least one axis"));
        }
        let spec = SweepSpec { bases, seeds, baseline, axes, method, count, design_seed };
        let runs = spec.run_count();
        if runs > MAX_SWEEP_RUNS as f64 {
            return Err(err(
                if method == Method::Grid { "axes" } else { "design.count" },
                format!(
                    "the design has {runs:e} runs, more than the {MAX_SWEEP_RUNS:e} a sweep takes (every run is listed before the first starts); split it or sample it (method = \"lhs\")"
                ),
            ));
        }
        Ok(spec)
    }

    /// Runs the design makes (points per base × bases, plus baselines, × seeds), computed in
    /// floating point so that an absurd design cannot overflow before it is refused.
    fn run_count(&self) -> f64 {
        let per_base = match self.method {
            Method::Grid => self
                .axes
                .iter()
                .map(|(_, a)| match a {
                    Axis::List { values } => values.len() as f64,
                    Axis::Range { steps, .. } => steps.unwrap_or(1) as f64,
                })
                .product::<f64>(),
            Method::Random | Method::Lhs => self.count as f64,
        };
        (per_base + f64::from(u8::from(self.baseline))) * self.bases.len() as f64 * self.seeds.len() as f64
    }

    /// Every point, in run order (see the module docs).
    pub fn points(&self) -> Vec<Point> {
        let per_base = self.design_values();
        let mut out = Vec::new();
        for (b, base_values) in per_base.iter().enumerate().take(self.bases.len()) {
            if self.baseline {
                out.push(Point { base: b, baseline: true, values: vec![] });
            }
            for vals in base_values {
                out.push(Point {
                    base: b,
                    baseline: false,
                    values: self.axes.iter().map(|(p, _)| p.clone()).zip(vals.iter().cloned()).collect(),
                });
            }
        }
        out
    }

    /// Axis values of the design points, per base (a grid is the same for every base; sampled
    /// designs draw an independent sample per base from stream `design/<base index>`).
    fn design_values(&self) -> Vec<Vec<Vec<toml::Value>>> {
        (0..self.bases.len())
            .map(|b| match self.method {
                Method::Grid => grid(&self.axes),
                Method::Random | Method::Lhs => {
                    let mut rng = RngStreams::new(self.design_seed).stream_indexed("design", b as u64);
                    let k = self.axes.len();
                    let n = self.count;
                    // u[i][j] in [0, 1): point i, axis j
                    let mut u = vec![vec![0.0f64; k]; n];
                    if self.method == Method::Random {
                        for row in u.iter_mut() {
                            for x in row.iter_mut() {
                                *x = rng.random::<f64>();
                            }
                        }
                    } else {
                        // Latin hypercube: each axis cut into n equal strata, one point per stratum,
                        // strata matched across axes by independent random permutations.
                        for j in 0..k {
                            let mut perm: Vec<usize> = (0..n).collect();
                            for i in (1..n).rev() {
                                let r = rng.random_range(0..=i);
                                perm.swap(i, r);
                            }
                            for (row, &stratum) in u.iter_mut().zip(&perm) {
                                row[j] = (stratum as f64 + rng.random::<f64>()) / n as f64;
                            }
                        }
                    }
                    u.iter().map(|row| row.iter().zip(&self.axes).map(|(&x, (_, a))| sample(a, x)).collect()).collect()
                }
            })
            .collect()
    }

    /// All runs in order.
    pub fn runs(&self, n_points: usize) -> Vec<RunKey> {
        let s = self.seeds.len() as u64;
        (0..n_points as u64)
            .flat_map(|p| self.seeds.iter().enumerate().map(move |(i, &seed)| RunKey { run_id: p * s + i as u64, point_id: p, seed }))
            .collect()
    }
}

/// The values of a grid axis.
pub fn axis_values(a: &Axis) -> Vec<toml::Value> {
    match a {
        Axis::List { values } => values.clone(),
        Axis::Range { from, to, steps, scale, integer } => {
            let n = steps.unwrap_or(1);
            (0..n)
                .map(|i| {
                    let f = if n == 1 { 0.0 } else { i as f64 / (n - 1) as f64 };
                    let v = match scale {
                        Scale::Linear => from + (to - from) * f,
                        Scale::Log => (from.ln() + (to.ln() - from.ln()) * f).exp(),
                    };
                    // land exactly on the ends
                    let v = if i == 0 {
                        *from
                    } else if i + 1 == n {
                        *to
                    } else {
                        v
                    };
                    number(v, *integer)
                })
                .collect()
        }
    }
}

/// An axis value: rounded to an integer for integer ranges, else to 12 significant digits (so
/// `0.1 + 0.8 × 0.25` is written `0.3`, not `0.30000000000000004`).
fn number(v: f64, integer: bool) -> toml::Value {
    if integer { toml::Value::Integer(v.round() as i64) } else { toml::Value::Float(format!("{v:.11e}").parse().unwrap_or(v)) }
}

/// The value at quantile `u ∈ [0, 1)` of an axis (uniform over a range on its scale; one of a
/// list's values with equal probability).
fn sample(a: &Axis, u: f64) -> toml::Value {
    match a {
        Axis::List { values } => values[((u * values.len() as f64) as usize).min(values.len() - 1)].clone(),
        Axis::Range { from, to, scale, integer, .. } => {
            let v = match scale {
                Scale::Linear => from + (to - from) * u,
                Scale::Log => (from.ln() + (to.ln() - from.ln()) * u).exp(),
            };
            number(v.clamp(*from, *to), *integer)
        }
    }
}

/// The Cartesian product of the axes' values, the last axis varying fastest.
fn grid(axes: &[(String, Axis)]) -> Vec<Vec<toml::Value>> {
    let mut out: Vec<Vec<toml::Value>> = vec![vec![]];
    for (_, a) in axes {
        let vals = axis_values(a);
        out = out
            .into_iter()
            .flat_map(|prefix| {
                vals.iter().map(move |v| {
                    let mut p = prefix.clone();
                    p.push(v.clone());
                    p
                })
            })
            .collect();
    }
    out
}

/// Shard `index` of `count`: `I/N` with `0 ≤ I < N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Shard {
    pub fn contains(&self, run_id: u64) -> bool {
        run_id % self.count == self.index
    }
    pub fn dir_name(&self) -> String {
        format!("shard-{}-of-{}", self.index, self.count)
    }
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (i, n) = s.split_once('/').ok_or_else(|| format!("`{s}`: expected I/N, e.g. 0/4"))?;
        let index: u64 = i.trim().parse().map_err(|_| format!("`{s}`: shard index `{i}` is not a non-negative integer"))?;
        let count: u64 = n.trim().parse().map_err(|_| format!("`{s}`: shard count `{n}` is not a positive integer"))?;
        if count == 0 || index >= count {
            return Err(format!("`{s}`: need 0 <= I < N"));
        }
        Ok(Shard { index, count })
    }
}

/// A TOML value as the JSON the results rows hold.
pub fn toml_to_json(v: &toml::Value) -> serde_json::Value {
    match v {
        toml::Value::String(s) => serde_json::Value::String(s.clone()),
        toml::Value::Integer(i) => serde_json::Value::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, serde_json::Value::Number),
        toml::Value::Boolean(b) => serde_json::Value::Bool(*b),
        other => serde_json::Value::String(other.to_string()),
    }
}

/// Flattens a JSON object: nested keys joined with `_` (`latency_ms.p99` -> `latency_ms_p99`).
pub fn flatten(prefix: &str, v: &serde_json::Value, out: &mut BTreeMap<String, serde_json::Value>, order: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}_{k}") };
                flatten(&key, x, out, order);
            }
        }
        other => {
            if out.insert(prefix.to_string(), other.clone()).is_none() {
                order.push(prefix.to_string());
            }
        }
    }
}
