//! `basin plot ...`: figures from recorded outputs only (a sweep's results table, a run's
//! directory), never from a simulation in memory. Each `--out` may be given several times; the
//! format follows the extension (.svg or .png).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};

use crate::analysis::pareto::{Objective, Sense};
use crate::cli::pareto::{Group, analyse};
use crate::io::outputs;
use crate::io::sweep as sio;
use crate::metrics::Summary;
use crate::plot::{self, EnergyBreakdown, FigureSpec, Panel, ParetoPoint, Width};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum WidthArg {
    /// One column (3.5 in).
    Single,
    /// Full text width (7 in).
    Double,
}

#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Output file(s): .svg or .png (repeatable).
    #[arg(long, required = true)]
    pub out: Vec<PathBuf>,
    #[arg(long, value_enum, default_value = "single")]
    pub width: WidthArg,
    /// A title above the plot (papers usually leave it to the caption).
    #[arg(long)]
    pub title: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum PlotCmd {
    /// Pareto front of a sweep: all points faint, the front highlighted, the open-loop
    /// baseline starred, seed 95% CIs as error bars; one colour per workload.
    Pareto {
        /// results.parquet / results.csv, or a sweep directory.
        results: PathBuf,
        /// x objective, COLUMN[:min|max] (default sense min).
        #[arg(long, default_value = "energy_j_per_request")]
        x: String,
        /// y objective, COLUMN[:min|max] (default sense: max for accuracy, else min).
        #[arg(long, default_value = "latency_ms_p99")]
        y: String,
        /// Only these workloads (repeatable; default all).
        #[arg(long)]
        workload: Vec<String>,
        #[command(flatten)]
        common: Common,
    },
    /// A run's time series: arrival rate, τ(t), admission rate, queue length, power, carbon.
    Timeseries {
        run: PathBuf,
        #[command(flatten)]
        common: Common,
    },
    /// How adaptive controllers moved, one line per run: the bio controller's threshold τ(t)
    /// against the per-interval energy per request and admission rate, plus the mean batch size
    /// and instances in use per interval when the runs recorded batches.parquet
    /// (`[output] batches = true`). With --on, the figure is instead that landscape
    /// (`basin landscape`'s FIG.json) with each run marked at its parameters.
    Trajectory {
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// A landscape JSON written by `basin landscape`: mark the runs on it.
        #[arg(long)]
        on: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
    /// Latency CDFs of several runs (needs requests.parquet: `[output] requests = true`).
    Cdf {
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// Logarithmic latency axis.
        #[arg(long)]
        log_x: bool,
        #[command(flatten)]
        common: Common,
    },
    /// One metric against one axis of a sweep, one line per workload (mean over seeds), e.g.
    /// energy per request against the arrival rate.
    Lines {
        /// results.parquet / results.csv, or a sweep directory.
        results: PathBuf,
        /// The x column (an axis, e.g. workload.rate_rps).
        #[arg(long)]
        x: String,
        /// The y column (a summary figure, e.g. energy_j_per_request).
        #[arg(long)]
        y: String,
        /// x-axis label (default: the column name).
        #[arg(long)]
        x_label: Option<String>,
        #[arg(long)]
        log_x: bool,
        #[arg(long)]
        log_y: bool,
        /// Divide every series by this workload's series at the same x (a ratio plot: where
        /// it crosses 1 is the boundary between the two).
        #[arg(long)]
        relative_to: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Energy per request of several runs, broken down into active, idle and early exit.
    Energy {
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
}

pub fn width(w: WidthArg) -> Width {
    match w {
        WidthArg::Single => Width::Single,
        WidthArg::Double => Width::Double,
    }
}

fn each_out(c: &Common, mut draw: impl FnMut(&Path, &FigureSpec) -> plot::Result<()>) -> Result<()> {
    for out in &c.out {
        if let Some(d) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
        }
        let mut spec = FigureSpec::for_path(out, width(c.width))?;
        if let Some(t) = &c.title {
            spec = spec.with_title(t.clone());
        }
        draw(out, &spec)?;
        println!("wrote {}", out.display());
    }
    Ok(())
}

/// A human axis label for a results column.
pub fn label(col: &str) -> String {
    match col {
        "energy_j_per_request" => "energy per request (J)".into(),
        "energy_j" => "energy (J)".into(),
        "co2_g_per_request" => "CO2 per request (g)".into(),
        "accuracy" => "accuracy".into(),
        "admission_rate" => "admission rate".into(),
        "slo_violation_rate" => "SLO violation rate".into(),
        "throughput_rps" => "throughput (req/s)".into(),
        "mean_power_w" => "mean power (W)".into(),
        "controller.k" => "decay rate k (1/s)".into(),
        "controller.tau0" => "initial threshold τ0".into(),
        "server.0.max_batch_size" => "max batch size".into(),
        "server.0.instances" => "instances".into(),
        c if c.starts_with("latency_ms_") => format!("{} latency (ms)", &c["latency_ms_".len()..]),
        c => c.to_string(),
    }
}

fn objective(s: &str) -> Result<Objective> {
    if s.contains(':') {
        return s.parse().map_err(|e| anyhow::anyhow!("{e}"));
    }
    let sense = if matches!(s, "accuracy" | "admission_rate" | "throughput_rps") { Sense::Maximize } else { Sense::Minimize };
    Ok(Objective::new(s, sense))
}

/// The 2-D Pareto points of every workload (the front recomputed for the two plotted
/// objectives; error bars are the seeds' 95% CI half-widths).
pub fn pareto_points(groups: &[Group]) -> Vec<(String, Vec<ParetoPoint>)> {
    groups
        .iter()
        .map(|g| {
            let pts = g
                .points
                .iter()
                .map(|p| {
                    let ci = |k: usize| Some(p.stats[k].ci95_half_width).filter(|v| v.is_finite() && *v > 0.0);
                    ParetoPoint {
                        x: p.stats[0].mean,
                        y: p.stats[1].mean,
                        x_err: ci(0),
                        y_err: ci(1),
                        on_front: p.on_front,
                        is_baseline: p.baseline,
                        label: None,
                    }
                })
                .collect();
            (g.workload.clone(), pts)
        })
        .collect()
}

fn read_summary(run: &Path) -> Result<Summary> {
    let p = run.join(outputs::SUMMARY);
    let text =
        std::fs::read_to_string(&p).with_context(|| format!("cannot read {} (is {} a run directory?)", p.display(), run.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a basin summary", p.display()))
}

fn run_name(run: &Path) -> String {
    run.file_name().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| run.display().to_string())
}

/// A run's time series (`t_s` and the frame) and how many of its intervals are complete: a
/// run's last interval is usually partial (the run ends mid-interval), so its rates and power
/// are per its own short length and would show as spikes; figures leave it out (the recorded
/// data keep it).
fn read_timeseries(run: &Path) -> Result<(Vec<f64>, polars::prelude::DataFrame, usize)> {
    let df = outputs::read_parquet(&run.join(outputs::TIMESERIES))?;
    let t = crate::cli::pareto::f64_column(&df, "t_s")?;
    let dt = interval_of(&t);
    let partial = read_summary(run).ok().zip(t.last()).is_some_and(|(s, &last)| t.len() > 1 && s.duration_s - last < 0.999 * dt);
    let n = if partial { t.len() - 1 } else { t.len() };
    Ok((t, df, n))
}

/// The recording interval of a time series (1 s when it has a single row).
fn interval_of(t: &[f64]) -> f64 {
    if t.len() > 1 { t[1] - t[0] } else { 1.0 }
}

/// Per interval of `t` (width `dt`): the mean batch size and the number of distinct
/// instances that started a batch, from a run's batches.parquet; `None` without the file.
fn batches_per_interval(run: &Path, t: &[f64], dt: f64) -> Result<Option<(Vec<f64>, Vec<f64>)>> {
    let p = run.join(outputs::BATCHES);
    if !p.is_file() {
        return Ok(None);
    }
    let df = outputs::read_parquet(&p)?;
    let start = crate::cli::pareto::f64_column(&df, "start_s")?;
    let size = crate::cli::pareto::f64_column(&df, "size")?;
    let server = crate::cli::pareto::str_column(&df, "server").unwrap_or_else(|| vec![String::new(); df.height()]);
    let instance = crate::cli::pareto::f64_column(&df, "instance")?;
    let t0 = t.first().copied().unwrap_or(0.0);
    let mut sums = vec![(0.0, 0usize); t.len()];
    let mut used: Vec<std::collections::BTreeSet<(String, u64)>> = vec![Default::default(); t.len()];
    for i in 0..df.height() {
        let k = ((start[i] - t0) / dt).floor();
        if k >= 0.0 && (k as usize) < t.len() {
            let k = k as usize;
            sums[k].0 += size[i];
            sums[k].1 += 1;
            used[k].insert((server[i].clone(), instance[i] as u64));
        }
    }
    let mean = sums.iter().map(|(s, n)| if *n > 0 { s / *n as f64 } else { f64::NAN }).collect();
    let instances = used.iter().map(|u| u.len() as f64).collect();
    Ok(Some((mean, instances)))
}

/// The value of a dotted sweep axis (`controller.k`, `server.0.instances`) in a run's
/// manifest.json (its resolved experiment).
fn run_parameter(run: &Path, axis: &str) -> Result<f64> {
    let p = run.join(outputs::MANIFEST);
    let text =
        std::fs::read_to_string(&p).with_context(|| format!("cannot read {} (is {} a run directory?)", p.display(), run.display()))?;
    let m: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("{}: not a basin manifest", p.display()))?;
    let mut v = &m["experiment"];
    for part in axis.split('.') {
        v = match part.parse::<usize>() {
            Ok(i) if v.is_array() => &v[i],
            _ => &v[part],
        };
    }
    v.as_f64().with_context(|| {
        format!("{}: the run has no numeric parameter `{axis}` (the landscape's axis); it cannot be placed on it", run.display())
    })
}

/// Named series of (x, y) points.
type Series = Vec<(String, Vec<(f64, f64)>)>;

/// Mean of `y` per (workload, x) over seeds, one series per workload, sorted by x.
pub fn lines_from_results(df: &polars::prelude::DataFrame, x: &str, y: &str) -> Result<Series> {
    use crate::cli::pareto::{f64_column, str_column};
    let xs = f64_column(df, x)?;
    let ys = f64_column(df, y)?;
    let ws = str_column(df, "workload").unwrap_or_else(|| vec![String::new(); df.height()]);
    let mut acc: std::collections::BTreeMap<String, std::collections::BTreeMap<u64, (f64, f64, usize)>> = Default::default();
    for i in 0..df.height() {
        let (xv, yv) = (xs[i], ys[i]);
        if xv.is_finite() && yv.is_finite() {
            let e = acc.entry(ws[i].clone()).or_default().entry(xv.to_bits()).or_insert((xv, 0.0, 0));
            e.1 += yv;
            e.2 += 1;
        }
    }
    let mut out = Vec::new();
    for (w, pts) in acc {
        let mut v: Vec<(f64, f64)> = pts.values().map(|(xv, sum, n)| (*xv, sum / *n as f64)).collect();
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        out.push((w, v));
    }
    if out.is_empty() {
        bail!("no rows with both `{x}` and `{y}`");
    }
    Ok(out)
}

pub fn run(cmd: PlotCmd) -> Result<()> {
    match cmd {
        PlotCmd::Lines { results, x, y, x_label, log_x, log_y, relative_to, common } => {
            let (path, df) = sio::read_results(&results)?;
            let mut series = lines_from_results(&df, &x, &y).with_context(|| path.display().to_string())?;
            let mut yl = label(&y);
            if let Some(r) = relative_to {
                let reference = series.iter().find(|(w, _)| *w == r).map(|(_, v)| v.clone()).with_context(|| {
                    format!(
                        "{}: no workload `{r}`; workloads: {}",
                        path.display(),
                        series.iter().map(|(w, _)| w.as_str()).collect::<Vec<_>>().join(", ")
                    )
                })?;
                series.retain(|(w, _)| *w != r);
                for (w, pts) in &mut series {
                    pts.retain_mut(|(xv, yv)| match reference.iter().find(|(rx, _)| rx == xv) {
                        Some((_, ry)) if *ry != 0.0 => {
                            *yv /= ry;
                            true
                        }
                        _ => false,
                    });
                    *w = format!("{w} / {r}");
                }
                yl = format!("{} ÷ {r}", yl.split(" (").next().unwrap_or(&yl));
            }
            let xl = x_label.unwrap_or_else(|| label(&x));
            each_out(&common, |out, spec| plot::lines_figure(out, spec, &xl, &yl, &series, log_x, log_y))
        }
        PlotCmd::Pareto { results, x, y, workload, common } => {
            let (path, df) = sio::read_results(&results)?;
            let objs = vec![objective(&x)?, objective(&y)?];
            let mut groups = analyse(&df, &objs, None).with_context(|| path.display().to_string())?;
            if !workload.is_empty() {
                for w in &workload {
                    if !groups.iter().any(|g| &g.workload == w) {
                        bail!(
                            "{}: no workload `{w}`; workloads: {}",
                            path.display(),
                            groups.iter().map(|g| g.workload.as_str()).collect::<Vec<_>>().join(", ")
                        );
                    }
                }
                groups.retain(|g| workload.contains(&g.workload));
            }
            let pts = pareto_points(&groups);
            let (xl, yl) = (label(&objs[0].column), label(&objs[1].column));
            each_out(&common, |out, spec| {
                if pts.len() == 1 {
                    plot::pareto_figure(out, spec, &pts[0].1, &xl, &yl, Some(&format!("Pareto front ({})", pts[0].0)))
                } else {
                    plot::pareto_figure_groups(out, spec, &pts, &xl, &yl)
                }
            })
        }
        PlotCmd::Timeseries { run, common } => {
            use crate::cli::pareto::f64_column as col;
            let (t, df, n) = read_timeseries(&run)?;
            let dt = interval_of(&t);
            let arrivals = col(&df, "arrivals")?;
            let admitted = col(&df, "admitted")?;
            let series = |v: Vec<f64>| -> Vec<(f64, f64)> { t.iter().copied().zip(v).take(n).collect() };
            let mut panels = vec![Panel {
                y_label: "arrival rate (req/s)".into(),
                series: vec![("arrivals".into(), series(arrivals.iter().map(|a| a / dt).collect()))],
            }];
            let tau = col(&df, "tau")?;
            if tau.iter().any(|v| v.is_finite()) {
                panels.push(Panel { y_label: "threshold τ".into(), series: vec![("τ(t)".into(), series(tau))] });
            }
            panels.push(Panel {
                y_label: "admission rate".into(),
                series: vec![(
                    "admitted / arrivals".into(),
                    series(arrivals.iter().zip(&admitted).map(|(a, b)| if *a > 0.0 { b / a } else { f64::NAN }).collect()),
                )],
            });
            panels
                .push(Panel { y_label: "queue length (requests)".into(), series: vec![("queued".into(), series(col(&df, "queue_len")?))] });
            panels.push(Panel { y_label: "power (W)".into(), series: vec![("power".into(), series(col(&df, "power_w")?))] });
            panels.push(Panel {
                y_label: "carbon intensity (g/kWh)".into(),
                series: vec![("grid".into(), series(col(&df, "carbon_g_per_kwh")?))],
            });
            each_out(&common, |out, spec| plot::timeseries_figure(out, spec, "time (s)", &panels))
        }
        PlotCmd::Trajectory { runs, on, common } => {
            if let Some(fig_json) = on {
                let text = std::fs::read_to_string(&fig_json).with_context(|| format!("cannot read {}", fig_json.display()))?;
                let j: crate::cli::landscape::LandscapeJson = serde_json::from_str(&text)
                    .with_context(|| format!("{}: not a landscape JSON (written by `basin landscape`)", fig_json.display()))?;
                let mut data = crate::cli::landscape::figure_data(&j);
                for r in &runs {
                    data.marks.push((run_name(r), run_parameter(r, &j.x)?, run_parameter(r, &j.y)?));
                }
                return each_out(&common, |out, spec| plot::landscape_figure(out, spec, &data));
            }
            trajectory_figure(&runs, &common)
        }
        PlotCmd::Cdf { runs, log_x, common } => {
            let mut lines = Vec::new();
            for r in &runs {
                let p = r.join(outputs::REQUESTS);
                if !p.is_file() {
                    bail!(
                        "{}: no {} (record it with `[output] requests = true`, or `basin sweep --keep-runs` with it set)",
                        r.display(),
                        outputs::REQUESTS
                    );
                }
                let df = outputs::read_parquet(&p)?;
                let dec = crate::cli::pareto::str_column(&df, "decision").unwrap_or_default();
                let lat = crate::cli::pareto::f64_column(&df, "latency_ms")?;
                let mut v: Vec<f64> =
                    lat.iter().zip(&dec).filter(|(l, d)| l.is_finite() && d.as_str() == "admitted").map(|(l, _)| *l).collect();
                if v.is_empty() {
                    bail!("{}: no admitted request with a latency", p.display());
                }
                v.sort_by(f64::total_cmp);
                let n = v.len();
                let step = (n / 400).max(1);
                let mut pts: Vec<(f64, f64)> = (0..n).step_by(step).map(|i| (v[i], (i + 1) as f64 / n as f64)).collect();
                if pts.last().is_none_or(|p| p.1 < 1.0) {
                    pts.push((v[n - 1], 1.0));
                }
                lines.push((run_name(r), pts));
            }
            each_out(&common, |out, spec| plot::latency_cdf_figure(out, spec, &lines, log_x))
        }
        PlotCmd::Energy { runs, common } => {
            let mut bars = Vec::new();
            for r in &runs {
                let s = read_summary(r)?;
                let n = s.requests.max(1) as f64;
                bars.push((
                    run_name(r),
                    EnergyBreakdown {
                        active_j: (s.energy.active_j + s.energy.reconfig_j) / n,
                        idle_j: s.energy.idle_j / n,
                        early_exit_j: s.energy.early_exit_j / n,
                    },
                ));
            }
            each_out(&common, |out, spec| plot::energy_breakdown_figure(out, spec, &bars))
        }
    }
}

/// `basin plot trajectory` without `--on`: one line per run in each panel.
fn trajectory_figure(runs: &[PathBuf], common: &Common) -> Result<()> {
    use crate::cli::pareto::f64_column as col;
    let (mut tau, mut energy, mut admission, mut batch, mut instances) = (vec![], vec![], vec![], vec![], vec![]);
    for r in runs {
        let (t, df, n) = read_timeseries(r)?;
        let dt = interval_of(&t);
        let name = run_name(r);
        let series = |v: Vec<f64>| -> Vec<(f64, f64)> { t.iter().copied().zip(v).take(n).collect() };
        let arrivals = col(&df, "arrivals")?;
        let per_arrival = |v: &[f64]| arrivals.iter().zip(v).map(|(a, x)| if *a > 0.0 { x / a } else { f64::NAN }).collect::<Vec<f64>>();
        tau.push((name.clone(), series(col(&df, "tau")?)));
        energy.push((name.clone(), series(per_arrival(&col(&df, "energy_j")?))));
        admission.push((name.clone(), series(per_arrival(&col(&df, "admitted")?))));
        if let Some((b, i)) = batches_per_interval(r, &t, dt)? {
            batch.push((name.clone(), series(b)));
            instances.push((name, series(i)));
        }
    }
    let mut panels = Vec::new();
    if tau.iter().any(|(_, s)| s.iter().any(|p| p.1.is_finite())) {
        panels.push(Panel { y_label: "threshold τ(t)".into(), series: tau });
    }
    panels.push(Panel { y_label: "energy per request (J)".into(), series: energy });
    panels.push(Panel { y_label: "admission rate".into(), series: admission });
    if !batch.is_empty() {
        panels.push(Panel { y_label: "mean batch size".into(), series: batch });
        panels.push(Panel { y_label: "instances in use".into(), series: instances });
    }
    each_out(common, |out, spec| plot::timeseries_figure(out, spec, "time (s)", &panels))
}
