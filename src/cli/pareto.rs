//! `basin pareto RESULTS [--objectives COL:SENSE,...] [--reference V,...] [--out FILE]`
//!
//! Per workload: runs of one design point (its seeds) are aggregated to a mean and a 95 %
//! confidence interval per objective; the non-dominated points (by the means), the
//! hypervolume of the front against a reference point (default: 10 % beyond the worst value
//! of each objective, see `analysis::pareto::default_reference`) and the knee point are
//! reported; the open-loop baseline (`baseline` column) is marked. Writes `pareto.csv` (one
//! row per point) and `pareto.json` (per workload: front, knee, hypervolume, reference).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use polars::prelude::{Column, DataFrame, DataType, NamedFrom, Series};
use serde::Serialize;

use crate::analysis::pareto::{Objective, default_objectives, default_reference, hypervolume, knee_point, pareto_front, senses_of};
use crate::analysis::stats::{MeanCi, aggregate_seeds};
use crate::io::outputs;
use crate::io::sweep as sio;

#[derive(Args, Debug)]
pub struct ParetoArgs {
    /// results.parquet / results.csv, or a sweep directory.
    pub results: PathBuf,
    /// Objectives as COLUMN:min|max, comma-separated (default
    /// energy_j_per_request:min,latency_ms_p99:min,accuracy:max).
    #[arg(long, value_delimiter = ',')]
    pub objectives: Vec<Objective>,
    /// Reference point for the hypervolume, one value per objective in their units
    /// (default: per workload, 10 % beyond the worst point).
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    pub reference: Vec<f64>,
    /// Where to write the per-point table (default: pareto.csv beside RESULTS); the JSON
    /// summary goes beside it with extension .json.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Rows of the printed table per workload.
    #[arg(long, default_value_t = 20)]
    pub rows: usize,
}

/// One design point of one workload, aggregated over its seeds.
#[derive(Clone, Debug, Serialize)]
pub struct AggPoint {
    pub point_id: i64,
    pub baseline: bool,
    /// Axis values as text, in column order.
    pub axes: Vec<(String, String)>,
    pub seeds: usize,
    pub stats: Vec<MeanCi>,
    pub on_front: bool,
    pub knee: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Group {
    pub workload: String,
    pub objectives: Vec<String>,
    pub reference: Vec<f64>,
    pub hypervolume: f64,
    pub front: Vec<i64>,
    pub knee: Option<i64>,
    pub baseline: Option<i64>,
    #[serde(skip)]
    pub points: Vec<AggPoint>,
}

pub fn f64_column(df: &DataFrame, name: &str) -> Result<Vec<f64>> {
    let c = df.column(name).map_err(|_| {
        anyhow::anyhow!(
            "no column `{name}` in the results; columns: {}",
            df.get_column_names().iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        )
    })?;
    let c = c.cast(&DataType::Float64).with_context(|| format!("column `{name}` is not numeric"))?;
    let ca = c.f64()?;
    Ok((0..ca.len()).map(|i| ca.get(i).unwrap_or(f64::NAN)).collect())
}

pub fn str_column(df: &DataFrame, name: &str) -> Option<Vec<String>> {
    let c = df.column(name).ok()?.cast(&DataType::String).ok()?;
    let ca = c.str().ok()?;
    Some((0..ca.len()).map(|i| ca.get(i).unwrap_or("").to_string()).collect())
}

pub fn bool_column(df: &DataFrame, name: &str) -> Option<Vec<bool>> {
    let c = df.column(name).ok()?.cast(&DataType::Boolean).ok()?;
    let ca = c.bool().ok()?;
    Some((0..ca.len()).map(|i| ca.get(i).unwrap_or(false)).collect())
}

/// Axis columns: the dotted paths.
pub fn axis_columns(df: &DataFrame) -> Vec<String> {
    df.get_column_names().iter().map(|s| s.to_string()).filter(|s| s.contains('.')).collect()
}

/// Groups, aggregates and analyses a results table.
pub fn analyse(df: &DataFrame, objectives: &[Objective], reference: Option<&[f64]>) -> Result<Vec<Group>> {
    if objectives.is_empty() {
        bail!("no objectives");
    }
    if let Some(r) = reference
        && r.len() != objectives.len()
    {
        bail!("--reference has {} values but there are {} objectives", r.len(), objectives.len());
    }
    let n = df.height();
    let cols: Vec<Vec<f64>> = objectives.iter().map(|o| f64_column(df, &o.column)).collect::<Result<_>>()?;
    let workload = str_column(df, "workload").unwrap_or_else(|| vec!["all".into(); n]);
    let point = match df.column("point_id") {
        Ok(_) => f64_column(df, "point_id")?.into_iter().map(|v| v as i64).collect(),
        Err(_) => (0..n as i64).collect::<Vec<i64>>(),
    };
    let baseline = bool_column(df, "baseline").unwrap_or_else(|| vec![false; n]);
    let axes = axis_columns(df);
    let axis_vals: Vec<Vec<String>> = axes.iter().map(|a| str_column(df, a).unwrap_or_default()).collect();
    let senses = senses_of(objectives);
    let mut order: Vec<String> = Vec::new();
    for w in &workload {
        if !order.contains(w) {
            order.push(w.clone());
        }
    }
    let mut groups = Vec::new();
    for w in order {
        let rows: Vec<(i64, Vec<f64>)> =
            (0..n).filter(|&i| workload[i] == w).map(|i| (point[i], cols.iter().map(|c| c[i]).collect())).collect();
        let agg = aggregate_seeds(&rows).map_err(|e| anyhow::anyhow!("{e}"))?;
        let first_row = |pid: i64| (0..n).find(|&i| workload[i] == w && point[i] == pid).expect("point exists");
        let means: Vec<Vec<f64>> = agg.iter().map(|(_, s)| s.iter().map(|m| m.mean).collect()).collect();
        let front = pareto_front(&means, &senses);
        let fpts: Vec<Vec<f64>> = front.iter().map(|&i| means[i].clone()).collect();
        let reference = reference.map(|r| r.to_vec()).unwrap_or_else(|| default_reference(&means, &senses));
        let hv = hypervolume(&fpts, &senses, &reference);
        let knee = knee_point(&fpts, &senses).map(|k| front[k]);
        let points: Vec<AggPoint> = agg
            .iter()
            .enumerate()
            .map(|(i, (pid, stats))| {
                let r = first_row(*pid);
                AggPoint {
                    point_id: *pid,
                    baseline: baseline[r],
                    axes: axes.iter().zip(&axis_vals).map(|(a, v)| (a.clone(), v.get(r).cloned().unwrap_or_default())).collect(),
                    seeds: stats.first().map_or(0, |s| s.n),
                    stats: stats.clone(),
                    on_front: front.contains(&i),
                    knee: knee == Some(i),
                }
            })
            .collect();
        groups.push(Group {
            workload: w,
            objectives: objectives.iter().map(|o| o.to_string()).collect(),
            reference,
            hypervolume: hv,
            front: front.iter().map(|&i| points[i].point_id).collect(),
            knee: knee.map(|i| points[i].point_id),
            baseline: points.iter().find(|p| p.baseline).map(|p| p.point_id),
            points,
        });
    }
    Ok(groups)
}

fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e5).contains(&a) { format!("{v:.3e}") } else { format!("{v:.4}") }
}

/// The front of every group as a text table (at most `rows` lines per group; the baseline is
/// always listed).
pub fn table(groups: &[Group], rows: usize) -> String {
    let mut t = String::new();
    for g in groups {
        t += &format!(
            "\n{}: {} points, {} on the front; hypervolume {} (reference {})\n",
            g.workload,
            g.points.len(),
            g.front.len(),
            fmt_num(g.hypervolume),
            g.reference.iter().map(|v| fmt_num(*v)).collect::<Vec<_>>().join(", ")
        );
        let mut header = format!("  {:>6}  ", "point");
        if let Some(p) = g.points.first() {
            for (a, _) in &p.axes {
                header += &format!("{a:>16} ");
            }
        }
        for o in &g.objectives {
            header += &format!("{:>26} ", o);
        }
        t += &header;
        t += "\n";
        let mut shown: Vec<&AggPoint> = g.points.iter().filter(|p| p.on_front).collect();
        shown.sort_by(|a, b| a.stats[0].mean.total_cmp(&b.stats[0].mean));
        shown.truncate(rows);
        if let Some(b) = g.points.iter().find(|p| p.baseline && !p.on_front) {
            shown.push(b);
        }
        for p in shown {
            let mut line = format!("  {:>6}  ", p.point_id);
            for (_, v) in &p.axes {
                line += &format!("{:>16} ", if v.is_empty() { "-" } else { v });
            }
            for s in &p.stats {
                let ci = if s.ci95_half_width.is_finite() { format!(" ± {}", fmt_num(s.ci95_half_width)) } else { String::new() };
                line += &format!("{:>26} ", format!("{}{ci}", fmt_num(s.mean)));
            }
            if p.knee {
                line += " knee";
            }
            if p.baseline {
                line += " open-loop baseline";
            }
            if !p.on_front {
                line += " (dominated)";
            }
            t += line.trim_end();
            t += "\n";
        }
    }
    t
}

/// The per-point table as a frame.
pub fn points_frame(groups: &[Group]) -> Result<DataFrame> {
    let all: Vec<(&Group, &AggPoint)> = groups.iter().flat_map(|g| g.points.iter().map(move |p| (g, p))).collect();
    let mut cols: Vec<Column> = vec![
        Series::new("workload".into(), all.iter().map(|(g, _)| g.workload.as_str()).collect::<Vec<_>>()).into(),
        Series::new("point_id".into(), all.iter().map(|(_, p)| p.point_id).collect::<Vec<_>>()).into(),
        Series::new("baseline".into(), all.iter().map(|(_, p)| p.baseline).collect::<Vec<_>>()).into(),
    ];
    if let Some((_, p0)) = all.first() {
        for (k, (a, _)) in p0.axes.iter().enumerate() {
            cols.push(
                Series::new(
                    a.as_str().into(),
                    all.iter().map(|(_, p)| p.axes.get(k).map(|x| x.1.clone()).unwrap_or_default()).collect::<Vec<_>>(),
                )
                .into(),
            );
        }
    }
    cols.push(Series::new("seeds".into(), all.iter().map(|(_, p)| p.seeds as u64).collect::<Vec<_>>()).into());
    if let Some(g) = groups.first() {
        for (j, o) in g.objectives.iter().enumerate() {
            let name = o.rsplit_once(':').map_or(o.as_str(), |x| x.0);
            cols.push(Series::new(format!("{name}_mean").into(), all.iter().map(|(_, p)| p.stats[j].mean).collect::<Vec<_>>()).into());
            cols.push(
                Series::new(format!("{name}_ci95").into(), all.iter().map(|(_, p)| p.stats[j].ci95_half_width).collect::<Vec<_>>()).into(),
            );
        }
    }
    cols.push(Series::new("on_front".into(), all.iter().map(|(_, p)| p.on_front).collect::<Vec<_>>()).into());
    cols.push(Series::new("knee".into(), all.iter().map(|(_, p)| p.knee).collect::<Vec<_>>()).into());
    Ok(DataFrame::new_infer_height(cols)?)
}

pub fn run(a: ParetoArgs) -> Result<()> {
    let (path, df) = sio::read_results(&a.results)?;
    let objectives = if a.objectives.is_empty() { default_objectives() } else { a.objectives.clone() };
    let reference = (!a.reference.is_empty()).then_some(a.reference.as_slice());
    let groups = analyse(&df, &objectives, reference).with_context(|| format!("{}", path.display()))?;
    print!("{}", table(&groups, a.rows));
    let out = a.out.unwrap_or_else(|| path.parent().unwrap_or(Path::new(".")).join("pareto.csv"));
    let mut f = points_frame(&groups)?;
    let tmp = outputs::tmp_sibling(&out);
    outputs::write_csv(&tmp, &mut f)?;
    std::fs::rename(&tmp, &out)?;
    let json = out.with_extension("json");
    let mut s = serde_json::to_string_pretty(&groups)?;
    s.push('\n');
    outputs::write_atomic(&json, s.as_bytes())?;
    println!("\nwrote {} and {}", out.display(), json.display());
    Ok(())
}
