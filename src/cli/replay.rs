//! `basin replay EXP.toml` and `basin load-profile`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::calibrate::load_profile::LoadRow;
use crate::core::SimDuration;
use crate::io::experiment::{self, Loaded};
use crate::io::{manifest, outputs};
use crate::metrics::RunOutput;
use crate::model::load::{LoadPoint, LoadProfile};
use crate::replay::real::{RealBackends, ReplaySection};
use crate::replay::{self, Dataset, ReplayOptions, ReplayResult};
use crate::spec::SimSpec;

/// `basin load-profile`'s provenance file: what each of its (plain) CSVs holds, the command,
/// and the gateway's fitted power.
pub const LOAD_PROFILE_MANIFEST: &str = "load-profile.json";

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
    /// Run the replay driver on a virtual clock with backends that serve the cost table's
    /// service times (validation level 0: its outputs equal `basin simulate`'s).
    #[arg(long = "virtual")]
    pub virtual_clock: bool,
}

#[derive(Clone)]
pub(crate) struct Prepared {
    pub(crate) loaded: Loaded,
    pub(crate) spec: SimSpec,
    pub(crate) section: ReplaySection,
}

pub(crate) fn prepare(file: &Path, scale: &ScaleArgs) -> Result<Prepared> {
    prepare_with(file, scale, false)
}

/// `without_load_profiles`: drop every server's `load_profile` / `load_window_ms` (what
/// `basin load-profile` measures must not depend on a profile, which may not exist yet).
fn prepare_with(file: &Path, scale: &ScaleArgs, without_load_profiles: bool) -> Result<Prepared> {
    let mut table = experiment::read_table::<crate::config::Experiment>(file, &scale.set)?;
    if without_load_profiles && let Some(toml::Value::Array(servers)) = table.get_mut("server") {
        for s in servers.iter_mut().filter_map(|s| s.as_table_mut()) {
            s.remove("load_profile");
            s.remove("load_window_ms");
        }
    }
    let loaded = experiment::resolve(file, table, scale.seed)?;
    let section = replay_section(&loaded)?;
    let spec = replay::scaled_spec(&loaded.spec, loaded.experiment.seed, scale.time_scale, scale.rate_scale, scale.duration_s)?;
    Ok(Prepared { loaded, spec, section })
}

/// The experiment's `[replay]` section (where the real backends are), or the defaults.
pub(crate) fn replay_section(loaded: &Loaded) -> Result<ReplaySection> {
    let file = &loaded.file;
    Ok(match &loaded.experiment.replay {
        Some(t) => crate::config::from_table(file, t.clone()).with_context(|| format!("{}: [replay]", file.display()))?,
        None => ReplaySection::default(),
    })
}

fn scale_json(scale: &ScaleArgs) -> serde_json::Value {
    serde_json::json!({ "time_scale": scale.time_scale, "rate_scale": scale.rate_scale, "duration_s": scale.duration_s })
}

pub(crate) fn write_run(
    dir: &Path,
    p: &Prepared,
    out: &RunOutput,
    mode: &str,
    started: String,
    wall: f64,
    extra: serde_json::Value,
) -> Result<()> {
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

pub(crate) fn simulate(p: &Prepared, dir: &Path, scale: &ScaleArgs) -> Result<RunOutput> {
    let started = manifest::now_rfc3339();
    let t0 = Instant::now();
    let mut out = crate::sim::run(&p.spec, p.loaded.experiment.seed);
    out.summary.seed = p.loaded.experiment.seed;
    write_run(dir, p, &out, "simulate", started, t0.elapsed().as_secs_f64(), serde_json::json!({ "replay_scaling": scale_json(scale) }))?;
    Ok(out)
}

/// The labelled data set a replay scores real answers against (`[replay] dataset`, or the
/// model directory's `digits_test.csv` when it exists).
pub(crate) fn load_dataset(p: &Prepared, backends: &RealBackends, base: &Path) -> Result<Option<Arc<Dataset>>> {
    Ok(match &p.section.dataset {
        Some(d) => Some(Arc::new(Dataset::load_csv(&base.join(d))?)),
        None => {
            let d = backends.model_dir.join("digits_test.csv");
            if d.is_file() { Some(Arc::new(Dataset::load_csv(&d)?)) } else { None }
        }
    })
}

/// The replay's energy meter: `[replay] meter`, charging the Triton server's session too when
/// the CPU-time estimate is in use and `server_pid_file` names a running server.
pub(crate) fn open_meter(p: &Prepared, base: &Path) -> Result<Box<dyn crate::hw::meter::EnergyMeter>> {
    let mut meter = crate::hw::meter::open(p.section.meter.clone()).context("opening the energy meter")?;
    if let Some(pf) = &p.section.server_pid_file
        && meter.info().kind == crate::hw::meter::MeterKind::Estimate
    {
        let pf = base.join(crate::io::experiment::resolve_path(&p.loaded.file, pf).map_err(anyhow::Error::msg)?);
        match std::fs::read_to_string(&pf) {
            // no server started by scripts/start-triton.sh here: this process only, said loudly
            Err(e) => eprintln!(
                "warning: [replay] server_pid_file {}: {e}; the energy estimate covers this process only, not the Triton server",
                pf.display()
            ),
            Ok(text) => {
                let pid: u32 = text
                    .trim()
                    .parse()
                    .map_err(|_| anyhow::anyhow!("[replay] server_pid_file {}: not a pid: {:?}", pf.display(), text.trim()))?;
                let cfg = match &p.section.meter {
                    crate::hw::meter::MeterChoice::Estimate { config } => config.clone(),
                    _ => crate::hw::meter::EstimateConfig::default(),
                };
                meter =
                    Box::new(crate::hw::meter::procset::ProcessSetMeter::open(cfg, pid).with_context(|| {
                        format!("[replay] server_pid_file {} (pid {pid}): opening the process-set meter", pf.display())
                    })?);
            }
        }
    }
    Ok(meter)
}

impl Prepared {
    /// The backend the cascade's early-exit model runs on (ONNX Runtime unless the experiment
    /// names one).
    pub(crate) fn early_exit_backend(&self) -> String {
        let named = self.loaded.experiment.early_exit.as_ref().map(|e| e.backend.clone());
        named.unwrap_or_else(|| crate::spec::BackendKind::OnnxRuntime.name().into())
    }
}

pub(crate) fn replay_options(p: &Prepared, stop: Arc<AtomicBool>) -> ReplayOptions {
    ReplayOptions {
        drain_timeout: Duration::from_secs_f64(p.section.drain_timeout_s.max(0.0)),
        client_threads: p.section.client_threads,
        stop,
        early_exit_backend: p.early_exit_backend(),
        ..ReplayOptions::default()
    }
}

/// Replays `p` on `factory`'s backends into `dir`.
pub(crate) fn replay_on(
    p: &Prepared,
    dir: &Path,
    scale: &ScaleArgs,
    factory: &dyn crate::replay::BackendFactory,
    data: Option<Arc<Dataset>>,
    opts: &ReplayOptions,
) -> Result<ReplayResult> {
    let base = std::env::current_dir()?;
    let mut meter = open_meter(p, &base)?;
    let started = manifest::now_rfc3339();
    let t0 = Instant::now();
    let res = replay::run(&p.spec, p.loaded.experiment.seed, factory, data, meter.as_mut(), opts)?;
    write_replay(p, dir, scale, res, "replay", started, t0)
}

fn do_replay(p: &Prepared, dir: &Path, scale: &ScaleArgs, stop: Arc<AtomicBool>) -> Result<ReplayResult> {
    let base = std::env::current_dir()?;
    let backends = RealBackends::new(&p.section, &base);
    let data = load_dataset(p, &backends, &base)?;
    replay_on(p, dir, scale, &backends, data, &replay_options(p, stop))
}

/// `basin replay --virtual`: the replay driver on a virtual clock with cost-table backends.
fn do_virtual_replay(p: &Prepared, dir: &Path, scale: &ScaleArgs) -> Result<ReplayResult> {
    let started = manifest::now_rfc3339();
    let t0 = Instant::now();
    let res = replay::run_virtual(&p.spec, p.loaded.experiment.seed)?;
    write_replay(p, dir, scale, res, "replay_virtual", started, t0)
}

fn write_replay(
    p: &Prepared,
    dir: &Path,
    scale: &ScaleArgs,
    mut res: ReplayResult,
    mode: &str,
    started: String,
    t0: Instant,
) -> Result<ReplayResult> {
    res.output.summary.seed = p.loaded.experiment.seed;
    res.output.summary.mode = mode.into();
    let extra = serde_json::json!({
        "schedule_error_ms": res.extras.schedule_error_ms,
        "energy_meter": res.extras.meter,
        "failed_reasons": res.extras.failed_reasons,
        "interrupted": res.extras.interrupted,
        "ignored_reconfigs": res.extras.ignored_reconfigs,
        "scored_requests": res.extras.scored_requests,
        "host_drift": res.extras.host_probe.host_drift,
        "host_probe": res.extras.host_probe,
        "replay_scaling": scale_json(scale),
    });
    write_run(dir, p, &res.output, mode, started, t0.elapsed().as_secs_f64(), extra)?;
    Ok(res)
}

pub(crate) fn stop_flag() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
            tracing::warn!("cannot install the signal handler: {e}");
        }
    }
    stop
}

pub(crate) fn print_replay(res: &ReplayResult, dir: &Path) {
    print!("{}", crate::cli::simulate::human_summary(&res.output, res.output.summary.duration_s));
    let s = &res.extras.schedule_error_ms;
    println!(
        "  schedule err p50 {:.3} ms · p99 {:.3} ms · max {:.3} ms over {} arrivals ({:.0} req/s offered)",
        s.p50, s.p99, s.max, s.n, s.offered_rps
    );
    if let Some(d) = res.extras.host_probe.host_drift {
        let flag = if d - 1.0 > crate::hw::probe::UNRELIABLE_DRIFT { " (UNRELIABLE: the host's speed drifted)" } else { "" };
        println!("  host drift {d:.3} (max/min of the speed probe's rolling median){flag}");
    }
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
    let res = if a.virtual_clock { do_virtual_replay(&p, &dir, &a.scale)? } else { do_replay(&p, &dir, &a.scale, stop_flag())? };
    print_replay(&res, &dir);
    Ok(())
}

/// Measures a server's load profile: the experiment's pipeline under open-loop Poisson load.
#[derive(Args, Debug)]
pub struct LoadProfileArgs {
    pub experiment: PathBuf,
    /// Arrival rates to measure (requests/s), e.g. 50,150,300,450,600.
    #[arg(long, value_delimiter = ',', required = true)]
    pub rates: Vec<f64>,
    /// Seconds of load per rate.
    #[arg(long, default_value_t = 10.0)]
    pub duration_s: f64,
    /// Before the server's rates: measure the gateway's own energy per arrival at these rates
    /// (every request answered by the early-exit model, none sent to the server), i.e. the
    /// `[early_exit] overhead_energy_j` to use; the profile's simulations then include it.
    #[arg(long, value_delimiter = ',')]
    pub gateway_rates: Vec<f64>,
    /// How the service factor is set: `fitted` (the factor at which the simulator reproduces
    /// Triton's measured queue + compute time per request) or `measured` (Triton's execution
    /// times over the cost table's).
    #[arg(long, value_parser = ["fitted", "measured"], default_value = "fitted")]
    pub service: String,
    /// Passes over the rates (alternately ascending and descending); load-passes.csv keeps
    /// every pass.
    #[arg(long, default_value_t = 1)]
    pub passes: u32,
    /// Each rate's profile point: the `fastest` pass (the smallest service factor, whole row:
    /// the pipeline at the host's own speed, other tenants' slow spells left to the replays'
    /// spread) or the `median` of the passes, field by field.
    #[arg(long, value_enum, default_value_t = crate::calibrate::load_profile::Pick::Fastest)]
    pub pick: crate::calibrate::load_profile::Pick,
    /// Seconds of load at the first rate before measuring (not recorded in the profile).
    #[arg(long, default_value_t = 3.0)]
    pub warmup_s: f64,
    /// The server to profile (default: the first with backend = "triton").
    #[arg(long)]
    pub server: Option<String>,
    /// Output directory: load.csv (the profile), load-batches.csv, and each rate's replay.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long)]
    pub seed: Option<u64>,
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

#[cfg(feature = "triton")]
fn triton_snapshot(url: &str, model: &str) -> Result<crate::calibrate::transport::ServerSnapshot> {
    use crate::hw::backend::triton::{Timeouts, TritonClient};
    let c = TritonClient::new(url, Timeouts { connect: Duration::from_secs(2), request: Duration::from_secs(10) })?;
    Ok(crate::calibrate::transport::ServerSnapshot::from(
        &c.model_stats(model).with_context(|| format!("reading Triton's statistics of `{model}` at {url}"))?,
    ))
}

#[cfg(not(feature = "triton"))]
fn triton_snapshot(_: &str, _: &str) -> Result<crate::calibrate::transport::ServerSnapshot> {
    bail!("basin was built without the `triton` feature (rebuild with --features ort,triton)")
}

/// `spec` with its workload replaced by `secs` seconds of Poisson arrivals at `rate`
/// (listed from the seed's arrival stream, per-request records on).
pub(crate) fn poisson_spec(spec: &SimSpec, rate: f64, secs: f64, seed: u64) -> Result<SimSpec> {
    use crate::model::arrivals::{ArrivalProcess, ArrivalSpec};
    let mut s = spec.clone();
    s.arrivals = ArrivalSpec::Rate { rates_rps: vec![rate; secs.ceil() as usize], process: ArrivalProcess::Poisson };
    s.max_requests = None;
    s.record_requests = true;
    replay::scaled_spec(&s, seed, 1.0, 1.0, Some(secs))
}

pub fn run_load_profile(a: LoadProfileArgs) -> Result<()> {
    use crate::calibrate::load_profile;
    if a.rates.is_empty() || a.rates.iter().any(|r| !(r.is_finite() && *r > 0.0)) {
        bail!("--rates: every rate must be a finite number > 0 (got {:?})", a.rates);
    }
    let valid = a.duration_s.is_finite() && a.duration_s >= 1.0 && a.warmup_s.is_finite() && a.warmup_s >= 0.0;
    if !valid {
        bail!("--duration-s must be >= 1 and --warmup-s >= 0 (got {}, {})", a.duration_s, a.warmup_s);
    }
    if a.passes == 0 {
        bail!("--passes must be at least 1");
    }
    if a.gateway_rates.iter().any(|r| !(r.is_finite() && *r > 0.0)) {
        bail!("--gateway-rates: every rate must be a finite number > 0 (got {:?})", a.gateway_rates);
    }
    let scale = ScaleArgs { time_scale: 1.0, rate_scale: 1.0, duration_s: None, seed: a.seed, set: a.set.clone() };
    let base = prepare_with(&a.experiment, &scale, true)?;
    let s = match &a.server {
        Some(n) => base
            .spec
            .servers
            .iter()
            .position(|x| &x.name == n)
            .with_context(|| format!("{}: no [[server]] named `{n}`", a.experiment.display()))?,
        None => base
            .spec
            .servers
            .iter()
            .position(|x| crate::spec::BackendKind::is_triton(&x.backend))
            .with_context(|| format!("{}: no [[server]] with backend = \"triton\" (name one with --server)", a.experiment.display()))?,
    };
    let srv = &base.spec.servers[s];
    if !crate::spec::BackendKind::is_triton(&srv.backend) {
        bail!(
            "server `{}` runs on `{}`: a load profile reads the server's own statistics, which only Triton exposes",
            srv.name,
            srv.backend
        );
    }
    let model = srv.variants[0].model.clone();
    let seed = base.loaded.experiment.seed;
    let mut spec0 = base.spec.clone();
    if !a.gateway_rates.is_empty() && spec0.early_exit.is_none() {
        bail!(
            "--gateway-rates needs an experiment with an [early_exit] model (the gateway's energy is measured with every request answered by it)"
        );
    }
    std::fs::create_dir_all(a.out.join("runs"))?;
    let stop = stop_flag();
    // Provenance of each CSV written (they are plain CSVs; this goes to load-profile.json).
    let mut tables: std::collections::BTreeMap<&str, String> = std::collections::BTreeMap::new();
    let mut gateway_fit = None;
    if !a.gateway_rates.is_empty() {
        // every request exits early: static threshold above any uncertainty
        let mut g = spec0.clone();
        g.controller =
            crate::model::controller::ControllerConfig::StaticThreshold(crate::model::controller::StaticThresholdConfig { threshold: 2.0 });
        if let Some(e) = &mut g.early_exit {
            e.overhead_energy_j = 0.0;
        }
        let mut pts = Vec::new();
        let mut text = String::from("rate_rps,arrivals,duration_s,replay_energy_j,sim_energy_j,power_w\n");
        for &rate in &a.gateway_rates {
            let p =
                Prepared { loaded: base.loaded.clone(), spec: poisson_spec(&g, rate, a.duration_s, seed)?, section: base.section.clone() };
            let res = do_replay(&p, &a.out.join(format!("runs/gateway-rate-{rate}")), &scale, stop.clone())?;
            if res.extras.interrupted {
                bail!("interrupted");
            }
            let sim_out = crate::sim::run(&p.spec, seed);
            let n = res.output.summary.requests.max(1) as f64;
            let pue = sim_out.summary.energy.pue.max(1e-9);
            let dur = res.output.summary.duration_s.max(1e-9);
            let w = (res.output.summary.energy_j - sim_out.summary.energy_j) / pue / dur;
            println!(
                "gateway at {rate} req/s: {n} arrivals in {dur:.2} s, replay {:.2} J, simulated {:.2} J: {w:.3} W beyond the simulation",
                res.output.summary.energy_j, sim_out.summary.energy_j
            );
            text.push_str(&format!("{rate},{n},{dur:.4},{:.5},{:.5},{w:.5}\n", res.output.summary.energy_j, sim_out.summary.energy_j));
            pts.push((n / dur, w));
        }
        let (base_w, per_j) = load_profile::fit_power(&pts);
        tables.insert("gateway.csv", "The gateway's own power beyond the simulated idle and early-exit model energy, every request answered by the early-exit model (static_threshold 2.0): power_w = (replay - simulated energy) / duration; fitted power_w = base_power_w + overhead_energy_j x rate (gateway_fit).".into());
        gateway_fit = Some(
            serde_json::json!({ "base_power_w": base_w, "overhead_energy_j": per_j, "use": "add base_power_w to the early-exit [[device]] idle_power_w; set [early_exit] overhead_energy_j" }),
        );
        outputs::write_atomic(&a.out.join("gateway.csv"), text.as_bytes())?;
        println!(
            "gateway: {per_j:.6} J per arrival + {base_w:.3} W: set [early_exit] overhead_energy_j = {per_j:.8} and add {base_w:.5} W to the early-exit device's idle_power_w (gateway.csv)"
        );
        if let Some(ee) = &mut spec0.early_exit {
            ee.overhead_energy_j = per_j;
        }
        if let Some(e) = &base.loaded.experiment.early_exit
            && let Some(d) = spec0.devices.iter().position(|d| d.name == e.device)
        {
            spec0.devices[d].idle_power_w += base_w;
        }
    }
    let with_rate = |rate: f64, secs: f64| -> Result<Prepared> {
        Ok(Prepared { loaded: base.loaded.clone(), spec: poisson_spec(&spec0, rate, secs, seed)?, section: base.section.clone() })
    };
    if a.warmup_s > 0.0 {
        println!("warm-up: {} req/s for {} s", a.rates[0], a.warmup_s);
        do_replay(&with_rate(a.rates[0], a.warmup_s)?, &a.out.join("runs/warmup"), &scale, stop.clone())?;
    }
    let mut per_rate: Vec<Vec<load_profile::LoadRow>> = vec![Vec::new(); a.rates.len()];
    let mut all = Vec::new();
    let measure = LoadPass { base: &base, spec: &spec0, server: s, fitted: a.service == "fitted" };
    for pass in 0..a.passes {
        let order: Vec<usize> = if pass % 2 == 0 { (0..a.rates.len()).collect() } else { (0..a.rates.len()).rev().collect() };
        for ri in order {
            let rate = a.rates[ri];
            let row = measure.run(rate, a.duration_s, &a.out.join(format!("runs/pass{pass}-rate-{rate}")), &scale, stop.clone())?;
            println!("{}", describe_row(&row));
            all.push(row.clone());
            per_rate[ri].push(row);
        }
    }
    let mut rows: Vec<load_profile::LoadRow> = per_rate.iter().map(|r| a.pick.apply(r)).collect();
    rows.sort_by(|x, y| x.rps.total_cmp(&y.rps));
    let header = format!(
        "Load profile of server `{}` (model {model}, Triton) measured by `basin load-profile {}` on {}, {}. Each row: the experiment's pipeline (replay driver) under open-loop Poisson load for {} s, {} of {} pass(es). service_factor ({}) = the factor at which the simulator reproduces Triton's queue + compute time per request (fitted) or measured_factor = mean execution time / cost-table mean for the batch sizes that ran (measured); overhead_ms = mean latency - the simulator's mean latency on the same arrivals at that factor without overhead; energy_factor = (energy - simulated idle and early-exit energy) / simulated batch energy (transport_ms = mean latency - early exit - Triton queue - Triton compute per request). Use: [[server]] load_profile = \"<this file>\" (and drop request_overhead_ms).",
        srv.name,
        a.experiment.display(),
        {
            let h = crate::io::manifest::Host::describe();
            format!("{} ({}, {} CPUs)", h.hostname, h.cpu_model, h.cpus)
        },
        manifest::now_rfc3339(),
        a.duration_s,
        a.pick.describe(),
        a.passes,
        a.service
    );
    tables.insert("load.csv", header);
    tables
        .insert("load-batches.csv", "Per rate and batch size: executions, measured and cost-table mean service time, their ratio.".into());
    tables.insert("load-passes.csv", "Every pass's rows (load.csv takes one per rate: see --pick).".into());
    outputs::write_atomic(&a.out.join("load.csv"), load_profile::csv(&rows).as_bytes())?;
    outputs::write_atomic(&a.out.join("load-batches.csv"), load_profile::batches_csv(&all).as_bytes())?;
    outputs::write_atomic(&a.out.join("load-passes.csv"), load_profile::csv(&all).as_bytes())?;
    let provenance = serde_json::json!({
        "mode": "load-profile",
        "basin_version": manifest::BASIN_VERSION,
        "git_revision": manifest::GIT_REVISION,
        "command_line": std::env::args().collect::<Vec<_>>(),
        "experiment": a.experiment,
        "tables": tables,
        "gateway_fit": gateway_fit,
    });
    outputs::write_json(&a.out.join(LOAD_PROFILE_MANIFEST), &provenance)?;
    println!("profile: {} (set [[server]] load_profile to it)", a.out.join("load.csv").display());
    Ok(())
}

/// One rate of a load profile: `rate` requests/s of Poisson arrivals for `secs` through the
/// pipeline `spec` (the experiment's, without a load profile) with server `server` on the real
/// Triton, Triton's statistics read around it, and the profile row derived from them.
pub(crate) struct LoadPass<'a> {
    /// The experiment (file, replay section); its spec is not used.
    pub base: &'a Prepared,
    pub spec: &'a SimSpec,
    pub server: usize,
    /// `fitted` service factor (the simulator reproduces Triton's queue + compute per request),
    /// else `measured` (Triton's execution times over the cost table's).
    pub fitted: bool,
}

impl LoadPass<'_> {
    pub(crate) fn run(&self, rate: f64, secs: f64, dir: &Path, scale: &ScaleArgs, stop: Arc<AtomicBool>) -> Result<LoadRow> {
        use crate::calibrate::load_profile;
        let s = self.server;
        let srv = &self.spec.servers[s];
        let model = &srv.variants[0].model;
        let table_ms: Vec<f64> = srv.variants[0].costs.iter().map(|c| c.mean_s() * 1e3).collect();
        let ee_ms = self.spec.early_exit.as_ref().map_or(0.0, |e| e.dist.mean_s() * 1e3);
        let section = &self.base.section;
        let stats_url = section.triton_stats_url.as_deref().unwrap_or(&section.triton_url);
        let seed = self.base.loaded.experiment.seed;
        let p = Prepared { loaded: self.base.loaded.clone(), spec: poisson_spec(self.spec, rate, secs, seed)?, section: section.clone() };
        let before = triton_snapshot(stats_url, model)?;
        let res = do_replay(&p, dir, scale, stop)?;
        let after = triton_snapshot(stats_url, model)?;
        if res.extras.interrupted {
            bail!("interrupted");
        }
        let d = crate::calibrate::transport::diff(&after, &before);
        // the simulator on the identical arrivals, at this rate's factor and no overhead
        let (measured, _) = load_profile::service_factor(&d, &table_ms).map_err(anyhow::Error::msg)?;
        let simulate_at = |f: f64| -> Result<RunOutput> {
            let mut sim_spec = p.spec.clone();
            sim_spec.servers[s].request_overhead = SimDuration::ZERO;
            let point = LoadPoint { rps: rate, service_factor: f, overhead_ms: 0.0, energy_factor: 1.0 };
            sim_spec.servers[s].load = Some(
                LoadProfile::new(vec![point], SimDuration::from_millis_f64(crate::model::load::DEFAULT_WINDOW_MS))
                    .map_err(anyhow::Error::msg)?,
            );
            Ok(crate::sim::run(&sim_spec, seed))
        };
        let factor = if self.fitted {
            let n = d.inference_count.max(1) as f64;
            let target_ms = (d.queue_ns + d.compute_ns) as f64 / n / 1e6;
            load_profile::fit_factor(target_ms, |f| {
                simulate_at(f).ok().and_then(|o| load_profile::sim_server_time(&o, s, ee_ms)).unwrap_or(f64::INFINITY)
            })
        } else {
            measured
        };
        let sim_out = simulate_at(factor)?;
        let mut row =
            load_profile::derive(rate, secs, s, &d, &res.output, &sim_out, factor, &table_ms, ee_ms).map_err(anyhow::Error::msg)?;
        // kept per pass: whether this host's slow spells show in the probe (load-passes.csv)
        row.host_probe_us = res.extras.host_probe.median_kernel_us.unwrap_or(f64::NAN);
        Ok(row)
    }
}

/// One line for a load pass's row.
pub(crate) fn describe_row(row: &LoadRow) -> String {
    format!(
        "{:>7.1} req/s at the server (offered {}): service ×{:.3} (compute ×{:.3}), energy ×{:.3}, overhead {:.3} ms (transport {:.3}), queue {:.3} ms (sim {:.3}), compute {:.3} ms, mean batch {:.2}, latency mean {:.3} (sim w/o overhead {:.3}) / p99 {:.3} ms, {:.2} W{}",
        row.rps,
        row.offered_rps,
        row.service_factor,
        row.measured_factor,
        row.energy_factor,
        row.overhead_ms,
        row.transport_ms,
        row.queue_ms,
        row.sim_queue_ms,
        row.compute_ms,
        row.mean_batch,
        row.latency_mean_ms,
        row.sim_latency_mean_ms,
        row.latency_p99_ms,
        row.power_w,
        if row.failed > 0 { format!(", {} FAILED", row.failed) } else { String::new() }
    )
}
