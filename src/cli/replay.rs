//! `basin replay EXP.toml` and `basin validate SIM_DIR REPLAY_DIR` / `basin validate --experiment EXP.toml`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::io::experiment::{self, Loaded};
use crate::io::{manifest, outputs};
use crate::metrics::RunOutput;
use crate::replay::real::{RealBackends, ReplaySection};
use crate::replay::{self, Dataset, ReplayOptions, ReplayResult, validate};
use crate::sim::SimSpec;

#[derive(Args, Debug, Clone)]
pub struct ScaleArgs {
    /// Compress time: arrival times are divided by X (the workload runs X times faster).
    #[arg(long, default_value_t = 1.0)]
    pub time_scale: f64,
    /// Multiply every arrival rate by X (on top of `workload.rate_scale`).
    #[arg(long, default_value_t = 1.0)]
    pub rate_scale: f64,
    /// Keep only the first S seconds (after time compression).
    #[arg(long)]
    pub duration_s: Option<f64>,
    #[arg(long)]
    pub seed: Option<u64>,
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

/// Runs an experiment, unchanged, in real time on the real backends.
#[derive(Args, Debug)]
pub struct ReplayArgs {
    pub experiment: PathBuf,
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub scale: ScaleArgs,
    /// Also simulate the identical (scaled) experiment into this directory.
    #[arg(long)]
    pub sim_out: Option<PathBuf>,
}

/// Simulation error against a replay.
#[derive(Args, Debug)]
pub struct ValidateArgs {
    /// SIM_DIR REPLAY_DIR (omit with --experiment).
    pub dirs: Vec<PathBuf>,
    /// One-command recipe: simulate and replay this experiment, then compare.
    #[arg(long)]
    pub experiment: Option<PathBuf>,
    /// Report directory (default: REPLAY_DIR/validation, or runs/validate/<name>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub scale: ScaleArgs,
}

struct Prepared {
    loaded: Loaded,
    spec: SimSpec,
    section: ReplaySection,
}

fn prepare(file: &Path, scale: &ScaleArgs) -> Result<Prepared> {
    let loaded = experiment::load(file, &scale.set, scale.seed)?;
    let section: ReplaySection = match &loaded.experiment.replay {
        Some(t) => crate::config::from_table(file, t.clone()).with_context(|| format!("{}: [replay]", file.display()))?,
        None => ReplaySection::default(),
    };
    let spec = replay::scaled_spec(&loaded.spec, loaded.experiment.seed, scale.time_scale, scale.rate_scale, scale.duration_s)?;
    Ok(Prepared { loaded, spec, section })
}

fn scale_json(scale: &ScaleArgs) -> serde_json::Value {
    serde_json::json!({ "time_scale": scale.time_scale, "rate_scale": scale.rate_scale, "duration_s": scale.duration_s })
}

fn write_run(dir: &Path, p: &Prepared, out: &RunOutput, mode: &str, started: String, wall: f64, extra: serde_json::Value) -> Result<()> {
    let mut manifest = crate::cli::simulate::manifest_for(&p.loaded, mode, started, wall, out.events)?;
    manifest.mode = mode.into();
    let mut summary = serde_json::to_value(&out.summary)?;
    if let (Some(m), Some(e)) = (summary.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            m.insert(k.clone(), v.clone());
        }
    }
    outputs::write_dir_atomic(dir, |tmp| {
        outputs::write_run_files(tmp, out)?;
        outputs::write_json(&tmp.join(outputs::SUMMARY), &summary)?;
        outputs::write_json(&tmp.join(outputs::MANIFEST), &manifest)
    })
}

fn simulate(p: &Prepared, dir: &Path, scale: &ScaleArgs) -> Result<RunOutput> {
    let started = manifest::now_rfc3339();
    let t0 = Instant::now();
    let mut out = crate::sim::run(&p.spec, p.loaded.experiment.seed);
    out.summary.seed = p.loaded.experiment.seed;
    write_run(dir, p, &out, "simulate", started, t0.elapsed().as_secs_f64(), serde_json::json!({ "replay_scaling": scale_json(scale) }))?;
    Ok(out)
}

fn do_replay(p: &Prepared, dir: &Path, scale: &ScaleArgs, stop: Arc<AtomicBool>) -> Result<ReplayResult> {
    let base = std::env::current_dir()?;
    let backends = RealBackends::new(&p.section, &base);
    let data = match &p.section.dataset {
        Some(d) => Some(Arc::new(Dataset::load_csv(&base.join(d))?)),
        None => {
            let d = backends.model_dir.join("digits_test.csv");
            if d.is_file() { Some(Arc::new(Dataset::load_csv(&d)?)) } else { None }
        }
    };
    let mut meter = crate::hw::meter::open(p.section.meter.clone()).context("opening the energy meter")?;
    if let Some(pf) = &p.section.server_pid_file
        && meter.info().kind == crate::hw::meter::MeterKind::Estimate
    {
        let pf = base.join(crate::io::experiment::resolve_path(&p.loaded.file, pf).map_err(anyhow::Error::msg)?);
        match std::fs::read_to_string(&pf) {
            // no server started by scripts/start-triton.sh here: this process only, said loudly
            Err(e) => eprintln!("warning: [replay] server_pid_file {}: {e}; the energy estimate covers this process only, not the Triton server", pf.display()),
            Ok(text) => {
                let pid: u32 = text.trim().parse().map_err(|_| anyhow::anyhow!("[replay] server_pid_file {}: not a pid: {:?}", pf.display(), text.trim()))?;
                let cfg = match &p.section.meter {
                    crate::hw::meter::MeterChoice::Estimate { config } => config.clone(),
                    _ => crate::hw::meter::EstimateConfig::default(),
                };
                meter = Box::new(crate::hw::meter::procset::ProcessSetMeter::open(cfg, pid).with_context(|| format!("[replay] server_pid_file {} (pid {pid}): opening the process-set meter", pf.display()))?);
            }
        }
    }
    let opts = ReplayOptions {
        drain_timeout: Duration::from_secs_f64(p.section.drain_timeout_s.max(0.0)),
        client_threads: p.section.client_threads,
        stop,
        early_exit_backend: p.loaded.experiment.early_exit.as_ref().map_or("onnxruntime".into(), |e| e.backend.clone()),
        ..ReplayOptions::default()
    };
    let started = manifest::now_rfc3339();
    let t0 = Instant::now();
    let res = replay::run(&p.spec, p.loaded.experiment.seed, &backends, data, meter.as_mut(), &opts)?;
    let mut res = res;
    res.output.summary.seed = p.loaded.experiment.seed;
    let extra = serde_json::json!({
        "schedule_error_ms": res.extras.schedule_error_ms,
        "energy_meter": res.extras.meter,
        "failed_reasons": res.extras.failed_reasons,
        "interrupted": res.extras.interrupted,
        "ignored_reconfigs": res.extras.ignored_reconfigs,
        "scored_requests": res.extras.scored_requests,
        "replay_scaling": scale_json(scale),
    });
    write_run(dir, p, &res.output, "replay", started, t0.elapsed().as_secs_f64(), extra)?;
    Ok(res)
}

fn stop_flag() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
            tracing::warn!("cannot install the signal handler: {e}");
        }
    }
    stop
}

fn print_replay(res: &ReplayResult, dir: &Path) {
    print!("{}", crate::cli::simulate::human_summary(&res.output, res.output.summary.duration_s));
    let s = &res.extras.schedule_error_ms;
    println!("  schedule err p50 {:.3} ms · p99 {:.3} ms · max {:.3} ms over {} arrivals ({:.0} req/s offered)", s.p50, s.p99, s.max, s.n, s.offered_rps);
    println!("  energy meter {}{}", res.extras.meter.name, if res.extras.meter.estimated { " [ESTIMATED]" } else { "" });
    if !res.extras.failed_reasons.is_empty() {
        println!("  failed by reason: {:?}", res.extras.failed_reasons);
    }
    if res.extras.interrupted {
        println!("  INTERRUPTED: arrivals stopped early; outputs are complete for the requests that arrived");
    }
    println!("outputs: {}", dir.display());
}

pub fn run_replay(a: ReplayArgs) -> Result<()> {
    let p = prepare(&a.experiment, &a.scale)?;
    let dir = a.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(format!("{}-replay", p.loaded.experiment.name)));
    if let Some(sd) = &a.sim_out {
        simulate(&p, sd, &a.scale)?;
        println!("simulation of the same scaled experiment: {}", sd.display());
    }
    let res = do_replay(&p, &dir, &a.scale, stop_flag())?;
    print_replay(&res, &dir);
    Ok(())
}

pub fn run_validate(a: ValidateArgs) -> Result<()> {
    let (sim_dir, replay_dir, report) = match (&a.experiment, a.dirs.as_slice()) {
        (Some(exp), []) => {
            let p = prepare(exp, &a.scale)?;
            let root = a.out.clone().unwrap_or_else(|| PathBuf::from("runs/validate").join(&p.loaded.experiment.name));
            let (sd, rd) = (root.join("sim"), root.join("replay"));
            std::fs::create_dir_all(&root)?;
            simulate(&p, &sd, &a.scale)?;
            let res = do_replay(&p, &rd, &a.scale, stop_flag())?;
            print_replay(&res, &rd);
            (sd, rd, root.join("report"))
        }
        (None, [s, r]) => (s.clone(), r.clone(), a.out.clone().unwrap_or_else(|| r.join("validation"))),
        _ => bail!("give SIM_DIR REPLAY_DIR, or --experiment EXP.toml (not both)"),
    };
    let v = validate::compare(&sim_dir, &replay_dir)?;
    print!("{}", validate::table(&v));
    validate::write_report(&v, &sim_dir, &replay_dir, &report)?;
    println!("report: {}", report.display());
    Ok(())
}
