//! `basin landscape RESULTS --x AXIS --y AXIS --z METRIC [--maximize] [--where EXPR]...
//! [--fix COLUMN=VALUE]... [--start X,Y] --out FIG.png|FIG.svg...`
//!
//! The seed-mean of METRIC over the grid of two sweep axes, its basins and their catchments
//! (definitions in `analysis::landscape`), drawn as a heatmap and written beside the figure as
//! `FIG.json` (same stem). Open-loop baseline rows (no axis values) are left out. Other axes are
//! fixed with `--fix` or, when they take several values, minimised over (the best feasible
//! combination per grid point); the figure's note and the JSON say which.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use polars::prelude::DataFrame;
use serde::{Deserialize, Serialize};

use crate::analysis::landscape::{self as land, Cell, DEFINITIONS};
use crate::analysis::pareto::Sense;
use crate::analysis::stats::aggregate_seeds;
use crate::cli::pareto::{axis_columns, bool_column, f64_column, str_column};
use crate::cli::plot::{WidthArg, label, width};
use crate::io::outputs;
use crate::io::sweep as sio;
use crate::plot::{self, FigureSpec, LandscapeCell, LandscapeData};

#[derive(Args, Debug)]
pub struct LandscapeArgs {
    /// results.parquet / results.csv, or a sweep directory.
    pub results: PathBuf,
    /// The x axis (a sweep axis column, e.g. controller.k).
    #[arg(long)]
    pub x: String,
    /// The y axis (a sweep axis column, e.g. controller.tau0).
    #[arg(long)]
    pub y: String,
    /// The metric (a results column, e.g. energy_j_per_request); its seed-mean is the height.
    #[arg(long)]
    pub z: String,
    /// Larger is better (flips the order: basins are maxima).
    #[arg(long)]
    pub maximize: bool,
    /// Feasibility constraint on a point's seed-means, COLUMN OP VALUE with OP one of
    /// >= <= > < == != (e.g. "accuracy>=0.95"); repeatable, all must hold.
    #[arg(long = "where")]
    pub where_: Vec<String>,
    /// Keep only rows with COLUMN = VALUE (e.g. workload=bursty, server.0.instances=2); repeatable.
    #[arg(long)]
    pub fix: Vec<String>,
    /// Start of a descent, X,Y (axis values; the nearest grid point): the JSON and the figure
    /// give the path and the basin it ends in.
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    pub start: Vec<f64>,
    /// Output figure(s), .png or .svg (repeatable); FIG.json goes beside each (same stem).
    #[arg(long, required = true)]
    pub out: Vec<PathBuf>,
    /// Printed width of the figure.
    #[arg(long, value_enum, default_value = "single")]
    pub width: WidthArg,
}

/// A feasibility constraint `column op value`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Constraint {
    pub column: String,
    pub op: String,
    pub value: f64,
}

impl Constraint {
    pub fn parse(s: &str) -> Result<Constraint> {
        // Two-character operators first, so ">=" is not read as ">" followed by "=0.9".
        for op in [">=", "<=", "==", "!=", ">", "<"] {
            if let Some((col, val)) = s.split_once(op) {
                let column = col.trim().to_string();
                let v = val.trim();
                // "accuracy=>0.9" would otherwise read as column `accuracy=` and operator `>`.
                if column.contains(['<', '>', '=', '!']) {
                    bail!("--where {s:?}: `{column}` is not a column name; the operators are >= <= > < == != (e.g. \"accuracy>=0.95\")");
                }
                let value: f64 = v.parse().map_err(|_| {
                    anyhow::anyhow!("--where {s:?}: `{v}` is not a number (expected COLUMN OP NUMBER, e.g. \"accuracy>=0.95\")")
                })?;
                if column.is_empty() {
                    bail!("--where {s:?}: no column before `{op}` (expected COLUMN OP NUMBER, e.g. \"accuracy>=0.95\")");
                }
                return Ok(Constraint { column, op: op.into(), value });
            }
        }
        bail!(
            "--where {s:?}: no comparison operator (expected COLUMN OP NUMBER with OP one of >= <= > < == !=, e.g. \"latency_ms_p99<=50\")"
        )
    }

    pub fn holds(&self, v: f64) -> bool {
        match self.op.as_str() {
            ">=" => v >= self.value,
            "<=" => v <= self.value,
            ">" => v > self.value,
            "<" => v < self.value,
            "==" => v == self.value,
            _ => v != self.value,
        }
    }
}

impl std::fmt::Display for Constraint {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{} {} {}", self.column, self.op, self.value)
    }
}

/// One grid point of the JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PointJson {
    pub x: f64,
    pub y: f64,
    pub z: f64,
    /// Half-width of the seeds' 95 % CI (null with one seed).
    pub ci95: Option<f64>,
    pub seeds: usize,
    pub feasible: bool,
    /// Index into `basins` of the point's catchment (null when infeasible).
    pub catchment: Option<usize>,
    /// Seed-means of the `--where` columns at this point.
    #[serde(default)]
    pub constraint_values: BTreeMap<String, f64>,
    /// Values of the axes minimised over at this point (empty when none).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub chosen: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BasinJson {
    pub x: f64,
    pub y: f64,
    pub z: f64,
    pub ci95: Option<f64>,
    /// Number of grid points whose descent ends here (itself included).
    pub catchment: usize,
    /// Its 95 % CI does not overlap its lowest feasible neighbour's (null: no neighbour or no CI).
    pub distinguishable: Option<bool>,
    /// Seed-means of the `--where` columns at the basin.
    #[serde(default)]
    pub constraint_values: BTreeMap<String, f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct XyzJson {
    pub x: f64,
    pub y: f64,
    pub z: f64,
}

/// A descent from `--start`: the grid points visited and the basin it ends in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DescentJson {
    pub path: Vec<XyzJson>,
    /// Index into `basins`; null when the start point is infeasible.
    pub basin: Option<usize>,
}

/// `FIG.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LandscapeJson {
    pub x: String,
    pub y: String,
    pub z: String,
    pub sense: String,
    pub x_log: bool,
    pub y_log: bool,
    pub z_label: String,
    pub results: String,
    pub fixed: Vec<String>,
    pub minimised_over: Vec<String>,
    #[serde(rename = "where")]
    pub constraints: Vec<String>,
    pub definitions: String,
    pub caption: String,
    pub points: Vec<PointJson>,
    /// Lowest first: `basins[0]` is the global minimum.
    pub basins: Vec<BasinJson>,
    pub global_minimum: Option<XyzJson>,
    pub descent: Option<DescentJson>,
}

/// The combination of minimised-over axes kept at one grid point, with its statistics.
struct Choice {
    feasible: bool,
    z: f64,
    ci95: f64,
    seeds: usize,
    combo: Vec<String>,
    constraint_means: Vec<f64>,
}

fn columns_list(df: &DataFrame) -> String {
    df.get_column_names().iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
}

fn require_column(df: &DataFrame, name: &str, what: &str) -> Result<()> {
    if df.column(name).is_err() {
        let axes = axis_columns(df);
        bail!(
            "no column `{name}` for {what}; axes: {}; all columns: {}",
            if axes.is_empty() { "none".into() } else { axes.join(", ") },
            columns_list(df)
        );
    }
    Ok(())
}

/// Two cells equal as text, or as numbers when both parse (so `--fix server.0.instances=2`
/// matches an integer column and `--fix controller.k=0.01` a float one).
fn same_value(cell: &str, wanted: &str) -> bool {
    cell == wanted || matches!((cell.parse::<f64>(), wanted.parse::<f64>()), (Ok(a), Ok(b)) if a == b)
}

/// Whether sorted positive `v` (at least three values) is geometric rather than arithmetic:
/// a sweep's `scale = "log"` axis.
fn log_spaced(v: &[f64]) -> bool {
    if v.len() < 3 || v[0] <= 0.0 {
        return false;
    }
    let rel = |a: f64, b: f64| (a - b).abs() <= 1e-6 * a.abs().max(b.abs());
    let ratio = v[1] / v[0];
    let step = v[1] - v[0];
    v.windows(2).all(|w| rel(w[1] / w[0], ratio)) && !v.windows(2).all(|w| rel(w[1] - w[0], step))
}

fn distinct_sorted(v: &[f64]) -> Vec<f64> {
    let mut d: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    d.sort_by(f64::total_cmp);
    d.dedup();
    d
}

fn fmt_value(v: f64) -> String {
    format!("{}", (v * 1e9).round() / 1e9)
}

/// The landscape of `df` as its JSON (before any file is written).
pub fn compute(df: &DataFrame, a: &LandscapeArgs, results: &str) -> Result<LandscapeJson> {
    for (name, what) in [(&a.x, "--x"), (&a.y, "--y"), (&a.z, "--z")] {
        require_column(df, name, what)?;
    }
    if a.x == a.y {
        bail!("--x and --y are the same column `{}`", a.x);
    }
    let constraints: Vec<Constraint> = a.where_.iter().map(|s| Constraint::parse(s)).collect::<Result<_>>()?;
    for c in &constraints {
        require_column(df, &c.column, &format!("--where \"{}\"", c))?;
    }
    let n = df.height();
    let baseline = bool_column(df, "baseline").unwrap_or_else(|| vec![false; n]);
    let mut keep: Vec<bool> = baseline.iter().map(|b| !b).collect();
    let mut fixed = Vec::new();
    for f in &a.fix {
        let (col, val) = f.split_once('=').with_context(|| format!("--fix {f:?}: expected COLUMN=VALUE"))?;
        require_column(df, col, &format!("--fix {f}"))?;
        let cells = str_column(df, col).unwrap_or_default();
        for (k, c) in keep.iter_mut().zip(&cells) {
            *k &= same_value(c, val);
        }
        fixed.push(format!("{col}={val}"));
    }
    let rows: Vec<usize> = (0..n).filter(|&i| keep[i]).collect();
    if rows.is_empty() {
        bail!(
            "no sweep rows left after leaving out the open-loop baselines{}",
            if a.fix.is_empty() { String::new() } else { format!(" and applying --fix {}", a.fix.join(", ")) }
        );
    }
    let workloads = str_column(df, "workload").unwrap_or_else(|| vec![String::new(); n]);
    let distinct_workloads: Vec<&String> = {
        let mut w: Vec<&String> = rows.iter().map(|&i| &workloads[i]).collect();
        w.sort();
        w.dedup();
        w
    };
    if distinct_workloads.len() > 1 {
        bail!(
            "the results hold {} workloads ({}); choose one with --fix workload=NAME",
            distinct_workloads.len(),
            distinct_workloads.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        );
    }
    let xs = f64_column(df, &a.x)?;
    let ys = f64_column(df, &a.y)?;
    let zs = f64_column(df, &a.z)?;
    let cons_cols: Vec<Vec<f64>> = constraints.iter().map(|c| f64_column(df, &c.column)).collect::<Result<_>>()?;
    let pick = |v: &[f64]| rows.iter().map(|&i| v[i]).collect::<Vec<f64>>();
    let (xv, yv) = (distinct_sorted(&pick(&xs)), distinct_sorted(&pick(&ys)));
    for (name, v) in [(&a.x, &xv), (&a.y, &yv)] {
        match v.len() {
            0 => bail!("axis `{name}` has no numeric value in the selected rows"),
            1 => bail!("axis `{name}` has one value ({}) in the selected rows; a landscape needs at least two per axis", fmt_value(v[0])),
            _ => {}
        }
    }
    // Other axes with several values among the selected rows are minimised over.
    let others: Vec<String> = axis_columns(df).into_iter().filter(|c| c != &a.x && c != &a.y).collect();
    let other_vals: Vec<Vec<String>> = others.iter().map(|c| str_column(df, c).unwrap_or_else(|| vec![String::new(); n])).collect();
    let mut minimised_over = Vec::new();
    for (c, v) in others.iter().zip(&other_vals) {
        let mut d: Vec<&String> = rows.iter().map(|&i| &v[i]).collect();
        d.sort();
        d.dedup();
        if d.len() > 1 {
            minimised_over.push(c.clone());
        } else if !fixed.iter().any(|f| f.starts_with(&format!("{c}="))) {
            fixed.push(format!("{c}={}", d.first().map(|s| s.as_str()).unwrap_or("")));
        }
    }
    let index = |v: &[f64], x: f64| v.iter().position(|&u| u == x);
    type Key = (usize, usize, Vec<String>);
    let mut keyed: Vec<(Key, Vec<f64>)> = Vec::new();
    for &i in &rows {
        let (Some(xi), Some(yi)) = (index(&xv, xs[i]), index(&yv, ys[i])) else {
            bail!("row {i}: axis `{}` or `{}` has no numeric value", a.x, a.y);
        };
        let combo: Vec<String> =
            others.iter().zip(&other_vals).filter(|(c, _)| minimised_over.contains(c)).map(|(_, v)| v[i].clone()).collect();
        let mut vals = vec![zs[i]];
        vals.extend(cons_cols.iter().map(|c| c[i]));
        keyed.push(((xi, yi, combo), vals));
    }
    let agg = aggregate_seeds(&keyed).map_err(|e| anyhow::anyhow!("{e}"))?;
    let sense = if a.maximize { Sense::Maximize } else { Sense::Minimize };
    // Per grid point, the best combination of the minimised-over axes: feasible ones first.
    let mut best: BTreeMap<(usize, usize), Choice> = BTreeMap::new();
    for ((xi, yi, combo), stats) in &agg {
        if stats[0].mean.is_nan() {
            bail!(
                "`{}` is NaN at {}={}, {}={}{} (no run there produced it); leave that point out with --fix, or choose another metric",
                a.z,
                a.x,
                fmt_value(xv[*xi]),
                a.y,
                fmt_value(yv[*yi]),
                if combo.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", minimised_over.iter().zip(combo).map(|(c, v)| format!("{c}={v}")).collect::<Vec<_>>().join(", "))
                }
            );
        }
        let feasible = constraints.iter().zip(&stats[1..]).all(|(c, s)| c.holds(s.mean));
        let cand = Choice {
            feasible,
            z: stats[0].mean,
            ci95: stats[0].ci95_half_width,
            seeds: stats[0].n,
            combo: combo.clone(),
            constraint_means: stats[1..].iter().map(|s| s.mean).collect(),
        };
        let better = |old: &Choice| {
            (cand.feasible && !old.feasible) || (cand.feasible == old.feasible && sense.orient(cand.z) < sense.orient(old.z))
        };
        match best.get(&(*xi, *yi)) {
            Some(old) if !better(old) => {}
            _ => {
                best.insert((*xi, *yi), cand);
            }
        }
    }
    let cells: Vec<Cell> = best.iter().map(|(&(xi, yi), b)| Cell { xi, yi, z: b.z, ci95: b.ci95, feasible: b.feasible }).collect();
    let choices: Vec<&Choice> = best.values().collect();
    let constraint_values = |c: &Choice| -> BTreeMap<String, f64> {
        constraints.iter().map(|k| k.column.clone()).zip(c.constraint_means.iter().copied()).collect()
    };
    if !constraints.is_empty() && !cells.iter().any(|c| c.feasible) {
        bail!(
            "--where {} excludes every grid point; loosen it",
            constraints.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(" ")
        );
    }
    let l = land::analyse(xv.len(), yv.len(), &cells, sense).map_err(|e| match e {
        land::LandscapeError::NanMetric { xi, yi, .. } => {
            anyhow::anyhow!("`{}` is NaN at {}={}, {}={}", a.z, a.x, fmt_value(xv[xi]), a.y, fmt_value(yv[yi]))
        }
        other => anyhow::anyhow!("{other}"),
    })?;
    let xyz = |c: usize| XyzJson { x: xv[cells[c].xi], y: yv[cells[c].yi], z: cells[c].z };
    let finite = |v: f64| Some(v).filter(|v| v.is_finite());
    let points: Vec<PointJson> = cells
        .iter()
        .zip(&choices)
        .enumerate()
        .map(|(i, (c, b))| PointJson {
            x: xv[c.xi],
            y: yv[c.yi],
            z: c.z,
            ci95: finite(c.ci95),
            seeds: b.seeds,
            feasible: c.feasible,
            catchment: l.catchment_of[i],
            constraint_values: constraint_values(b),
            chosen: minimised_over.iter().cloned().zip(b.combo.iter().cloned()).collect(),
        })
        .collect();
    let basins = l
        .basins
        .iter()
        .map(|b| {
            // Points are in cell order, so a basin's point is `points[b.cell]`.
            let p = &points[b.cell];
            BasinJson {
                x: p.x,
                y: p.y,
                z: p.z,
                ci95: p.ci95,
                catchment: b.catchment,
                distinguishable: b.distinguishable,
                constraint_values: p.constraint_values.clone(),
            }
        })
        .collect();
    let descent = match a.start.as_slice() {
        [] => None,
        [sx, sy] => {
            let nearest = |v: &[f64], t: f64, log: bool| {
                (0..v.len())
                    .min_by(|&i, &j| {
                        let d = |u: f64| {
                            if log && u > 0.0 && t > 0.0 { (u.ln() - t.ln()).abs() } else { (u - t).abs() }
                        };
                        d(v[i]).total_cmp(&d(v[j]))
                    })
                    .expect("two values per axis")
            };
            let (xi, yi) = (nearest(&xv, *sx, log_spaced(&xv)), nearest(&yv, *sy, log_spaced(&yv)));
            let start = cells.iter().position(|c| (c.xi, c.yi) == (xi, yi)).with_context(|| {
                format!("--start {},{}: the nearest grid point ({}, {}) was not run", sx, sy, fmt_value(xv[xi]), fmt_value(yv[yi]))
            })?;
            Some(DescentJson { path: l.descent_path(start).into_iter().map(xyz).collect(), basin: l.catchment_of[start] })
        }
        _ => bail!("--start takes two values, X,Y"),
    };
    let mut caption = format!(
        "{} over {} × {} (mean over seeds; {})",
        label(&a.z),
        a.x,
        a.y,
        if a.maximize { "higher is better" } else { "lower is better" }
    );
    if !minimised_over.is_empty() {
        caption += &format!("; {} over {}", if a.maximize { "maximised" } else { "minimised" }, minimised_over.join(", "));
    }
    if !fixed.is_empty() {
        caption += &format!("; fixed: {}", fixed.join(", "));
    }
    if !constraints.is_empty() {
        caption += &format!("; feasible: {}", constraints.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(", "));
    }
    Ok(LandscapeJson {
        x: a.x.clone(),
        y: a.y.clone(),
        z: a.z.clone(),
        sense: if a.maximize { "max" } else { "min" }.into(),
        x_log: log_spaced(&xv),
        y_log: log_spaced(&yv),
        z_label: label(&a.z),
        results: results.into(),
        fixed,
        minimised_over,
        constraints: constraints.iter().map(|c| c.to_string()).collect(),
        definitions: DEFINITIONS.into(),
        caption,
        points,
        basins,
        global_minimum: l.global_minimum().map(xyz),
        descent,
    })
}

/// The figure's data from a landscape JSON (also used by `basin plot trajectory --on`).
pub fn figure_data(j: &LandscapeJson) -> LandscapeData {
    let xv = distinct_sorted(&j.points.iter().map(|p| p.x).collect::<Vec<_>>());
    let yv = distinct_sorted(&j.points.iter().map(|p| p.y).collect::<Vec<_>>());
    let index = |v: &[f64], x: f64| v.iter().position(|&u| u == x).unwrap_or(0);
    let mut note = Vec::new();
    if !j.minimised_over.is_empty() {
        note.push(format!("{} over {}", if j.sense == "max" { "max" } else { "min" }, j.minimised_over.join(", ")));
    }
    if !j.constraints.is_empty() {
        note.push(format!("hatched: infeasible; feasible means {}", j.constraints.join(" and ")));
    }
    LandscapeData {
        x_values: xv.clone(),
        y_values: yv.clone(),
        x_log: j.x_log,
        y_log: j.y_log,
        x_label: label(&j.x),
        y_label: label(&j.y),
        z_label: j.z_label.clone(),
        cells: j
            .points
            .iter()
            .map(|p| LandscapeCell { xi: index(&xv, p.x), yi: index(&yv, p.y), z: p.z, feasible: p.feasible, catchment: p.catchment })
            .collect(),
        basins: j.basins.iter().map(|b| (b.x, b.y)).collect(),
        descent: j.descent.as_ref().map(|d| d.path.iter().map(|p| (p.x, p.y)).collect()).unwrap_or_default(),
        marks: vec![],
        note: note.join("; "),
    }
}

/// `FIG.json` beside `fig` (same stem).
pub fn json_path(fig: &Path) -> PathBuf {
    fig.with_extension("json")
}

pub fn run(a: LandscapeArgs) -> Result<()> {
    let (path, df) = sio::read_results(&a.results)?;
    let j = compute(&df, &a, &path.display().to_string()).with_context(|| path.display().to_string())?;
    let data = figure_data(&j);
    let mut json = serde_json::to_string_pretty(&j)?;
    json.push('\n');
    // Every output name is checked and every figure rendered before any JSON is written, so
    // bad input leaves nothing behind.
    let specs: Vec<FigureSpec> = a.out.iter().map(|o| FigureSpec::for_path(o, width(a.width))).collect::<plot::Result<_>>()?;
    let mut jsons: Vec<PathBuf> = Vec::new();
    for (out, spec) in a.out.iter().zip(&specs) {
        if let Some(d) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
        }
        plot::landscape_figure(out, spec, &data)?;
        println!("wrote {}", out.display());
        if !jsons.contains(&json_path(out)) {
            jsons.push(json_path(out));
        }
    }
    for p in &jsons {
        outputs::write_atomic(p, json.as_bytes())?;
        println!("wrote {}", p.display());
    }
    println!("{} basin(s) on {} grid points ({} feasible)", j.basins.len(), j.points.len(), j.points.iter().filter(|p| p.feasible).count());
    for (k, b) in j.basins.iter().enumerate() {
        let constraint_values: String = b.constraint_values.iter().map(|(c, v)| format!("  {c}={v:.6}")).collect();
        println!(
            "  basin {k}: {}={} {}={}  {}={:.6}{}{constraint_values}  catchment {}{}",
            j.x,
            fmt_value(b.x),
            j.y,
            fmt_value(b.y),
            j.z,
            b.z,
            b.ci95.map(|c| format!(" ± {c:.6}")).unwrap_or_default(),
            b.catchment,
            if k == 0 { "  (global minimum)" } else { "" }
        );
    }
    if let Some(d) = &j.descent {
        let s = &d.path[0];
        match d.basin {
            Some(k) => println!(
                "  descent from {}={} {}={} ends in basin {k} after {} step(s)",
                j.x,
                fmt_value(s.x),
                j.y,
                fmt_value(s.y),
                d.path.len() - 1
            ),
            None => println!("  descent from {}={} {}={}: the start point is infeasible", j.x, fmt_value(s.x), j.y, fmt_value(s.y)),
        }
    }
    Ok(())
}
