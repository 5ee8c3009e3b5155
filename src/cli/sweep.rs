//! `basin sweep SWEEP.toml [--out DIR] [--jobs N] [--shard I/N] [--resume] [--keep-runs]` and
//! `basin merge DIR... --out DIR`.
//!
//! Every (point, seed) run is one task on a rayon pool of `--jobs` threads (no parallelism
//! inside a run). Finished runs go through a channel to one writer (this thread), which appends
//! them to the journal (fsynced), advances the progress bar and rebuilds the results tables
//! every few seconds and at the end. Results depend only on the design, never on `--jobs` or
//! on the order in which runs finish.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use rayon::prelude::*;
use serde_json::Value;

use crate::config;
use crate::io::experiment::{self, sha256_file};
use crate::io::manifest::{self, Host};
use crate::io::outputs;
use crate::io::sweep::{self as sio, BaseInfo, Journal, Row, SweepManifest};
use crate::sim;
use crate::sweep::{Point, RunKey, Shard, SweepSpec, axis_values, toml_to_json};

#[derive(Args, Debug, Clone)]
pub struct SweepArgs {
    /// The sweep file (TOML): base experiment(s), seeds, axes, design.
    pub sweep: PathBuf,
    /// Output directory (default runs/<sweep file stem>). With a shard, results go to
    /// DIR/shard-<I>-of-<N>/.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Runs in parallel (one run per thread; default: all cores).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Run only shard I of N (runs with run_id % N == I). Default: from SLURM_ARRAY_TASK_ID /
    /// SLURM_ARRAY_TASK_COUNT, or JOB_COMPLETION_INDEX / BASIN_SHARD_COUNT (Kubernetes).
    #[arg(long, value_name = "I/N")]
    pub shard: Option<Shard>,
    /// Continue an interrupted sweep in DIR: finished runs are skipped.
    #[arg(long)]
    pub resume: bool,
    /// Also write every run's own output directory (DIR/runs/<run_id>/).
    #[arg(long)]
    pub keep_runs: bool,
    /// No progress bar and no final table.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct MergeArgs {
    /// Shard (or sweep) directories of one sweep.
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    /// The merged sweep directory.
    #[arg(long)]
    pub out: PathBuf,
}

/// A sweep file loaded with its base experiments, ready to run.
pub struct Prepared {
    pub file: PathBuf,
    pub spec: SweepSpec,
    pub bases: Vec<(PathBuf, toml::Table, BaseInfo)>,
    pub points: Vec<Point>,
    pub runs: Vec<RunKey>,
    pub sweep_sha256: String,
    pub design_sha256: String,
}

/// The shard from the environment: Slurm job arrays, or Kubernetes indexed jobs.
pub fn shard_from_env() -> Result<Option<Shard>> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let num = |k: &str, v: String| -> Result<u64> {
        v.trim().parse().with_context(|| format!("environment variable {k}=`{v}` is not a non-negative integer"))
    };
    if let Some(id) = var("SLURM_ARRAY_TASK_ID") {
        let id = num("SLURM_ARRAY_TASK_ID", id)?;
        let count = num(
            "SLURM_ARRAY_TASK_COUNT",
            var("SLURM_ARRAY_TASK_COUNT").context("SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not")?,
        )?;
        let min = var("SLURM_ARRAY_TASK_MIN").map(|v| num("SLURM_ARRAY_TASK_MIN", v)).transpose()?.unwrap_or(0);
        let index = id.checked_sub(min).context("SLURM_ARRAY_TASK_ID is below SLURM_ARRAY_TASK_MIN")?;
        if count == 0 || index >= count {
            bail!(
                "Slurm array task {id} (min {min}) does not fit an array of {count} tasks; basin needs a contiguous array such as --array=0-{}",
                count.max(1) - 1
            );
        }
        return Ok(Some(Shard { index, count }));
    }
    if let Some(i) = var("JOB_COMPLETION_INDEX") {
        let index = num("JOB_COMPLETION_INDEX", i)?;
        let count = num(
            "BASIN_SHARD_COUNT",
            var("BASIN_SHARD_COUNT").context(
                "JOB_COMPLETION_INDEX is set (Kubernetes indexed job) but BASIN_SHARD_COUNT is not: set it to the job's `completions`",
            )?,
        )?;
        if count == 0 || index >= count {
            bail!("JOB_COMPLETION_INDEX={index} does not fit BASIN_SHARD_COUNT={count}");
        }
        return Ok(Some(Shard { index, count }));
    }
    Ok(None)
}

fn set_point(table: &mut toml::Table, point: &Point) -> Result<(), String> {
    if point.baseline {
        let mut c = toml::Table::new();
        c.insert("kind".into(), toml::Value::String("open_loop".into()));
        table.insert("controller".into(), toml::Value::Table(c));
    }
    for (path, v) in &point.values {
        config::set_path(table, path, v.clone()).map_err(|m| format!("axis `{path}`: {m}"))?;
    }
    Ok(())
}

/// Reads and checks a sweep file: its bases load, and every axis value is accepted by every
/// base (so a typo in an axis path fails before any run starts).
pub fn prepare(file: &Path) -> Result<Prepared> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read the sweep file {}", file.display()))?;
    let table = config::parse_table(file, &text)?;
    let spec = SweepSpec::from_table(&table).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let mut bases = Vec::new();
    for raw in &spec.bases {
        let p = experiment::resolve_path(file, raw).map_err(|m| anyhow::anyhow!("{}: `base`: {m}", file.display()))?;
        if !p.is_file() {
            bail!("{}: `base`: experiment file not found: {}", file.display(), p.display());
        }
        let t = experiment::read_table::<crate::config::Experiment>(&p, &[])?;
        let loaded = experiment::resolve(&p, t.clone(), None)
            .with_context(|| format!("{}: base experiment {} is invalid", file.display(), p.display()))?;
        let workload = loaded.experiment.name.clone();
        if bases.iter().any(|(_, _, b): &(PathBuf, toml::Table, BaseInfo)| b.workload == workload) {
            bail!(
                "{}: two base experiments are both named `{workload}`; the name labels the workload in the results, so give each base its own `name`",
                file.display()
            );
        }
        let info = BaseInfo { path: p.display().to_string(), workload, sha256: sha256_file(&p)?, inputs: loaded.inputs };
        bases.push((p, t, info));
    }
    // every axis value against every base
    for (path, axis) in &spec.axes {
        let vals: Vec<toml::Value> = match axis {
            crate::sweep::Axis::List { values } => values.clone(),
            crate::sweep::Axis::Range { steps: Some(_), .. } => axis_values(axis),
            crate::sweep::Axis::Range { from, to, integer, .. } => {
                let n = |v: f64| if *integer { toml::Value::Integer(v.round() as i64) } else { toml::Value::Float(v) };
                vec![n(*from), n(*to)]
            }
        };
        let mut seen = BTreeSet::new();
        for v in vals {
            if !seen.insert(v.to_string()) {
                continue;
            }
            for (p, t, _) in &bases {
                let mut t = t.clone();
                config::set_path(&mut t, path, v.clone())
                    .map_err(|m| anyhow::anyhow!("{}: axis `{path}`: {m} in base {}", file.display(), p.display()))?;
                if let Err(e) = experiment::resolve(p, t, None) {
                    let hint = if e.to_string().contains("unknown field") || e.to_string().contains("unknown variant") {
                        " (is the axis path spelled as in the experiment file?)"
                    } else {
                        ""
                    };
                    bail!("{}: axis `{path}` = {v}: the base experiment rejects it{hint}: {e}", file.display());
                }
            }
        }
    }
    let points = spec.points();
    let runs = spec.runs(points.len());
    let design = serde_json::json!({
        "points": points.iter().map(|p| serde_json::json!({
            "base": bases[p.base].2.sha256, "workload": bases[p.base].2.workload, "baseline": p.baseline,
            "values": p.values.iter().map(|(k, v)| (k.clone(), toml_to_json(v))).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "seeds": spec.seeds,
    });
    let design_sha256 = experiment::hex(&<sha2::Sha256 as sha2::Digest>::digest(design.to_string().as_bytes()));
    Ok(Prepared { file: file.to_path_buf(), sweep_sha256: sha256_file(file)?, spec, bases, points, runs, design_sha256 })
}

/// Runs one (point, seed): returns its results row, and writes its run directory under
/// `keep` when given.
pub fn run_one(p: &Prepared, key: RunKey, keep: Option<&Path>) -> Result<Row> {
    let point = &p.points[key.point_id as usize];
    let (path, base, info) = &p.bases[point.base];
    let mut table = base.clone();
    set_point(&mut table, point).map_err(anyhow::Error::msg)?;
    let loaded = experiment::resolve(path, table, Some(key.seed))?;
    let mut spec = loaded.spec.clone();
    if keep.is_none() {
        spec.record_requests = false;
        spec.record_batches = false;
    }
    let started = manifest::now_rfc3339();
    let t0 = Instant::now();
    let out = sim::run(&spec, key.seed);
    let mut row: Vec<(String, Value)> = vec![
        ("run_id".into(), Value::from(key.run_id)),
        ("point_id".into(), Value::from(key.point_id)),
        ("seed".into(), Value::from(key.seed)),
        ("workload".into(), Value::String(info.workload.clone())),
        ("baseline".into(), Value::Bool(point.baseline)),
    ];
    for (ax, _) in &p.spec.axes {
        let v = point.values.iter().find(|(k, _)| k == ax).map_or(Value::Null, |(_, v)| toml_to_json(v));
        row.push((ax.clone(), v));
    }
    for (k, v) in sio::ordered_flat(&serde_json::to_string(&out.summary)?)? {
        if k != "seed" && !row.iter().any(|(r, _)| *r == k) {
            row.push((k, v));
        }
    }
    if let Some(dir) = keep {
        let m = super::simulate::manifest_for(&loaded, "simulate", started, t0.elapsed().as_secs_f64(), out.events)?;
        outputs::write_dir_atomic(&dir.join(format!("{:06}", key.run_id)), |tmp| {
            outputs::write_run_files(tmp, &out)?;
            outputs::write_json(&tmp.join(outputs::MANIFEST), &m)
        })?;
    }
    // The row as the journal will hold it (a JSON round trip), so rows built in memory and
    // rows read back from the journal are the same values.
    let row = Row { run_id: key.run_id, row };
    Ok(serde_json::from_str(&serde_json::to_string(&row)?)?)
}

/// What `execute` did.
pub struct Outcome {
    pub dir: PathBuf,
    pub ran: u64,
    pub skipped: u64,
    pub wall_s: f64,
    pub rows: Vec<Row>,
}

/// Runs a prepared sweep (or its shard) into `dir`.
pub fn execute(
    p: &Prepared,
    dir: &Path,
    jobs: usize,
    shard: Option<Shard>,
    resume: bool,
    keep_runs: bool,
    progress: bool,
) -> Result<Outcome> {
    let journal_path = dir.join(sio::JOURNAL);
    if dir.exists() {
        let has_sweep = dir.join(sio::SWEEP_MANIFEST).is_file() || journal_path.is_file();
        if has_sweep && !resume {
            bail!("{} already holds a sweep; pass --resume to continue it, or choose another --out", dir.display());
        }
        if !has_sweep && std::fs::read_dir(dir)?.next().is_some() && !outputs::is_run_dir(dir) {
            bail!("{} exists and is not a sweep output directory; choose another --out", dir.display());
        }
        if has_sweep {
            let m = sio::read_manifest(dir)?;
            if m.design_sha256 != p.design_sha256 {
                bail!(
                    "{}: --resume of a different sweep: the sweep file, its base experiments or the seeds changed since it started (design hash {}… vs {}…); use a new --out",
                    dir.display(),
                    &m.design_sha256[..12],
                    &p.design_sha256[..12]
                );
            }
            if m.shard != shard {
                bail!("{}: --resume with a different shard ({:?} then, {:?} now)", dir.display(), m.shard, shard);
            }
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let (mut journal, done) = Journal::open(&journal_path)?;
    let done_ids: BTreeSet<u64> = done.iter().map(|r| r.run_id).collect();
    let mine: Vec<RunKey> = p.runs.iter().copied().filter(|r| shard.is_none_or(|s| s.contains(r.run_id))).collect();
    let todo: Vec<RunKey> = mine.iter().copied().filter(|r| !done_ids.contains(&r.run_id)).collect();
    let started_at = manifest::now_rfc3339();
    let mut man = SweepManifest {
        kind: "basin-sweep".into(),
        sweep_file: p.file.display().to_string(),
        sweep_sha256: p.sweep_sha256.clone(),
        design_sha256: p.design_sha256.clone(),
        bases: p.bases.iter().map(|b| b.2.clone()).collect(),
        seeds: p.spec.seeds.clone(),
        axes: p.spec.axes.iter().map(|a| a.0.clone()).collect(),
        points: p.points.len() as u64,
        total_runs: p.runs.len() as u64,
        shard,
        shard_runs: mine.len() as u64,
        finished_runs: done_ids.len() as u64,
        complete: todo.is_empty(),
        basin_version: manifest::BASIN_VERSION.into(),
        git_revision: manifest::GIT_REVISION.into(),
        host: serde_json::to_value(Host::describe())?,
        command_line: std::env::args().collect(),
        started_at: started_at.clone(),
        updated_at: started_at,
        merged_from: vec![],
    };
    if let Ok(old) = sio::read_manifest(dir) {
        man.started_at = old.started_at;
    }
    sio::write_manifest(dir, &man)?;
    let keep = keep_runs.then(|| dir.join("runs"));

    let bar = if progress {
        let b = indicatif::ProgressBar::with_draw_target(Some(todo.len() as u64), indicatif::ProgressDrawTarget::stderr());
        b.set_style(
            indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} runs · {per_sec} · ETA {eta}")
                .expect("valid template"),
        );
        b.enable_steady_tick(Duration::from_millis(500));
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let pool = rayon::ThreadPoolBuilder::new().num_threads(jobs.max(1)).thread_name(|i| format!("basin-sweep-{i}")).build()?;
    let cancel = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel::<(RunKey, Result<Row>)>();
    let t0 = Instant::now();
    let mut rows = done;
    let mut first_err: Option<anyhow::Error> = None;
    let mut ran = 0u64;
    std::thread::scope(|s| -> Result<()> {
        let todo = &todo;
        let cancel = &cancel;
        let keep = keep.as_deref();
        s.spawn(move || {
            pool.install(|| {
                todo.par_iter().with_max_len(1).for_each_with(tx, |tx, &key| {
                    if cancel.load(Ordering::Relaxed) {
                        return;
                    }
                    let r = run_one(p, key, keep);
                    let _ = tx.send((key, r));
                });
            });
        });
        let mut last_write = Instant::now();
        for (key, r) in rx {
            match r {
                Ok(row) => {
                    if let Err(e) = journal.append(&row) {
                        cancel.store(true, Ordering::Relaxed);
                        first_err.get_or_insert(e.context(format!("cannot append to {}", journal_path.display())));
                        continue;
                    }
                    rows.push(row);
                    ran += 1;
                    bar.inc(1);
                    if last_write.elapsed() > Duration::from_secs(10) {
                        // results so far, for a look while the sweep runs (rebuilt from the journal)
                        let (r, _) = sio::read_journal(&journal_path)?;
                        sio::write_results(dir, &r)?;
                        last_write = Instant::now();
                    }
                }
                Err(e) => {
                    cancel.store(true, Ordering::Relaxed);
                    let pt = &p.points[key.point_id as usize];
                    let vals: Vec<String> = pt.values.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                    let what = format!(
                        "run {} (workload `{}`, {}, seed {}) failed",
                        key.run_id,
                        p.bases[pt.base].2.workload,
                        if pt.baseline { "open-loop baseline".to_string() } else { vals.join(", ") },
                        key.seed
                    );
                    first_err.get_or_insert(e.context(what));
                }
            }
        }
        Ok(())
    })?;
    bar.finish_and_clear();
    let wall_s = t0.elapsed().as_secs_f64();
    // Rebuild the results from the journal (the parsed records, whatever path they took).
    let (all, _) = sio::read_journal(&journal_path)?;
    sio::write_results(dir, &all)?;
    man.finished_runs = all.len() as u64;
    man.complete = first_err.is_none() && all.len() as u64 == mine.len() as u64;
    man.updated_at = manifest::now_rfc3339();
    sio::write_manifest(dir, &man)?;
    if let Some(e) = first_err {
        return Err(e.context(format!(
            "sweep stopped after {} of {} runs; the finished ones are kept in {} (fix the cause, then rerun with --resume)",
            all.len(),
            mine.len(),
            journal_path.display()
        )));
    }
    Ok(Outcome { dir: dir.to_path_buf(), ran, skipped: done_ids.len() as u64, wall_s, rows })
}

/// The directory a sweep writes to.
pub fn out_dir(a: &SweepArgs, shard: Option<Shard>) -> PathBuf {
    let base = a.out.clone().unwrap_or_else(|| {
        PathBuf::from("runs").join(a.sweep.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| "sweep".into()))
    });
    match shard {
        Some(s) => base.join(s.dir_name()),
        None => base,
    }
}

pub fn run(a: SweepArgs) -> Result<()> {
    let shard = match a.shard {
        Some(s) => Some(s),
        None => shard_from_env()?,
    };
    let jobs = a.jobs.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    if jobs == 0 {
        bail!("--jobs must be at least 1");
    }
    let p = prepare(&a.sweep)?;
    let dir = out_dir(&a, shard);
    let show = !a.quiet;
    if show {
        eprintln!(
            "sweep {}: {} points × {} seeds = {} runs{}; {} jobs → {}",
            a.sweep.display(),
            p.points.len(),
            p.spec.seeds.len(),
            p.runs.len(),
            shard.map_or(String::new(), |s| format!(" (shard {}/{})", s.index, s.count)),
            jobs,
            dir.display()
        );
    }
    let o = execute(&p, &dir, jobs, shard, a.resume, a.keep_runs, show)?;
    if show {
        println!(
            "{} runs in {:.1} s ({:.2} runs/s){}; results: {}",
            o.ran,
            o.wall_s,
            o.ran as f64 / o.wall_s.max(1e-9),
            if o.skipped > 0 { format!(", {} already done", o.skipped) } else { String::new() },
            o.dir.join(sio::RESULTS_PARQUET).display()
        );
        let df = sio::results_frame(&o.rows)?;
        match super::pareto::analyse(&df, &crate::analysis::pareto::default_objectives(), None) {
            Ok(groups) => print!("{}", super::pareto::table(&groups, 8)),
            Err(e) => eprintln!("(no Pareto table: {e})"),
        }
    }
    Ok(())
}

pub fn merge(a: MergeArgs) -> Result<()> {
    let (n, m) = sio::merge(&a.dirs, &a.out, std::env::args().collect())?;
    println!(
        "merged {} directories: all {n} runs of the sweep ({} points × {} seeds) present once → {}",
        a.dirs.len(),
        m.points,
        m.seeds.len(),
        a.out.display()
    );
    Ok(())
}
