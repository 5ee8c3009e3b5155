//! `basin validate`: the simulator against the real system, in levels (`crate::validate`).
//!
//! `basin validate --experiment EXP.toml --level controlled|conditioned|predicted [--repeats N]`
//! starts the Triton the level needs on loopback (controlled-service models for level 1, the
//! real models otherwise; through `scripts/start-triton.sh`), replays N times, simulates, compares
//! and stops what it started — also on an error or Ctrl-C. Everything is written under a
//! temporary name and renamed into `--out` at the end, so a failed validation leaves nothing
//! half-written. `basin validate SIM_DIR REPLAY_DIR` compares two existing runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::json;

use super::replay::{self as cli_replay, LoadPass, Prepared, ScaleArgs};
use crate::calibrate::load_profile::LoadRow;
use crate::core::SimDuration;
#[cfg(feature = "triton")]
use crate::hw::backend::triton::{Timeouts, TritonClient};
use crate::hw::probe;
use crate::io::outputs;
use crate::metrics::RunOutput;
use crate::model::controller::{ControllerConfig, StaticThresholdConfig};
use crate::model::load::LoadProfile;
use crate::model::transport::{ObservedOverhead, ObservedTransport, Transport};
use crate::plot::{self, FigureSpec, Panel, Width};
use crate::replay::real::RealBackends;
use crate::replay::{BackendFactory, ReplayResult};
use crate::validate::conditioned::TakenFromRun;
use crate::validate::trace::{self, TracedRequest};
use crate::validate::{self, Level, ReplayRun, Validation, compare, conditioned, controlled};

/// Simulation against replays of the same experiment.
#[derive(Args, Debug)]
pub struct ValidateArgs {
    /// SIM_DIR REPLAY_DIR: compare two existing runs (omit with --experiment).
    pub dirs: Vec<PathBuf>,
    /// Validate this experiment: start what the level needs, replay, simulate, compare.
    #[arg(long)]
    pub experiment: Option<PathBuf>,
    /// controlled (level 1: compute replaced by holding the cost table's time), conditioned
    /// (level 2: the simulation takes every observed execution time), or predicted (level 3).
    #[arg(long, default_value = "predicted")]
    pub level: String,
    /// Replays (default 5 for predicted, 3 otherwise).
    #[arg(long)]
    pub repeats: Option<usize>,
    /// The HTTP port of the Triton this command starts (gRPC and metrics take the next two).
    #[arg(long, default_value_t = 8700)]
    pub triton_port: u16,
    /// Use the Triton already running at `[replay] triton_url` instead of starting one (its
    /// models and batcher must match the experiment; level 1 needs controlled models).
    #[arg(long)]
    pub external_triton: bool,
    /// Level 3: seconds of a load pass just before each replay (the real pipeline, open loop,
    /// Poisson at the rate the simulation sends the profiled server); that replay's simulation
    /// takes the load profile rescaled to it, so that the host's drift hits both sides alike.
    /// 0: the committed profile alone. Default 5.
    #[arg(long)]
    pub host_pass_s: Option<f64>,
    /// Report directory (default: REPLAY_DIR/validation, or runs/validate/<name>-<level>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub scale: ScaleArgs,
}

pub fn run(a: ValidateArgs) -> Result<()> {
    match (&a.experiment, a.dirs.as_slice()) {
        (Some(exp), []) => run_levels(&a, exp),
        (None, [s, r]) => {
            let report = a.out.clone().unwrap_or_else(|| r.join("validation"));
            let v = compare::compare(s, r)?;
            print!("{}", compare::table(&v));
            compare::write_report(&v, s, r, &report)?;
            println!("report: {}", report.display());
            Ok(())
        }
        _ => bail!("give SIM_DIR REPLAY_DIR, or --experiment EXP.toml (not both)"),
    }
}

/// The repository holding `scripts/start-triton.sh`: the nearest ancestor of the working
/// directory or of the experiment file that has it, else the source tree basin was built from.
fn scripts_root(experiment: &Path) -> Result<PathBuf> {
    let cwd = std::env::current_dir()?;
    let exp = std::fs::canonicalize(experiment).unwrap_or_else(|_| experiment.to_path_buf());
    for start in [cwd.as_path(), exp.parent().unwrap_or(Path::new("."))] {
        if let Some(root) = start.ancestors().find(|d| d.join("scripts/start-triton.sh").is_file()) {
            return Ok(root.to_path_buf());
        }
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR"));
    if built.join("scripts/start-triton.sh").is_file() {
        return Ok(built.to_path_buf());
    }
    bail!("cannot find scripts/start-triton.sh above {} or {}: run basin validate from the basin repository", cwd.display(), exp.display())
}

/// A Triton server this command started; stopped when dropped (also on errors).
struct StartedTriton {
    root: PathBuf,
    url: String,
    pid_file: PathBuf,
}

impl StartedTriton {
    fn start(root: &Path, args: &[String], port: u16) -> Result<Self> {
        let out = Command::new(root.join("scripts/start-triton.sh"))
            .args(args)
            .args(["--http-port", &port.to_string(), "--grpc-port", &(port + 1).to_string(), "--metrics-port", &(port + 2).to_string()])
            .current_dir(root)
            .output()
            .context("running scripts/start-triton.sh")?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let tail: Vec<&str> = err.lines().rev().take(15).collect::<Vec<_>>().into_iter().rev().collect();
            bail!("scripts/start-triton.sh {} failed:\n{}", args.join(" "), tail.join("\n"));
        }
        let cache = std::env::var_os("BASIN_CACHE").map_or_else(|| root.join(".cache"), PathBuf::from);
        Ok(StartedTriton { root: root.to_path_buf(), url: format!("http://127.0.0.1:{port}"), pid_file: cache.join("triton/triton.pid") })
    }
}

impl Drop for StartedTriton {
    fn drop(&mut self) {
        match Command::new(self.root.join("scripts/stop-triton.sh")).current_dir(&self.root).output() {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!("warning: scripts/stop-triton.sh: {}", String::from_utf8_lossy(&o.stderr).trim()),
            Err(e) => eprintln!("warning: cannot run scripts/stop-triton.sh: {e}"),
        }
    }
}

/// The `start-triton.sh` arguments for the experiment's Triton servers (real models): they
/// share one server, so they must share its batcher knobs.
fn real_triton_args(p: &Prepared, remote: &[usize], batch_log: Option<&Path>) -> Result<Vec<String>> {
    let servers: Vec<_> = remote.iter().map(|&i| &p.spec.servers[i]).collect();
    let first = servers[0];
    let knobs = |s: &crate::model::server::ServerSpec| (s.max_batch_size, s.max_queue_delay, s.instances, s.preferred_batch_sizes.clone());
    if let Some(other) = servers.iter().find(|s| knobs(s) != knobs(first)) {
        bail!(
            "servers `{}` and `{}` run on Triton with different batchers; basin validate starts one Triton for all: start it yourself and pass --external-triton",
            first.name,
            other.name
        );
    }
    let mut models: Vec<String> = servers.iter().flat_map(|s| s.variants.iter().map(|v| v.model.clone())).collect();
    models.sort();
    models.dedup();
    let mut args = vec!["--models".to_string()];
    args.extend(models);
    args.extend([
        "--max-batch-size".into(),
        first.max_batch_size.to_string(),
        "--max-queue-delay-us".into(),
        (first.max_queue_delay.0 / 1000).to_string(),
        "--instances".into(),
        first.instances.to_string(),
        "--ort-threads".into(),
        p.section.ort_threads.to_string(),
    ]);
    if !first.preferred_batch_sizes.is_empty() {
        args.push("--preferred-batch-sizes".into());
        args.extend(first.preferred_batch_sizes.iter().map(u32::to_string));
    }
    if let Some(d) = batch_log {
        args.extend(["--batch-log".into(), d.display().to_string()]);
    }
    Ok(args)
}

/// Triton's trace files: `TRACE_STEM.<n>` in the trace directory.
const TRACE_STEM: &str = "trace.json";
/// Triton releases a request's trace just after its answer: wait this long after a replay's
/// last answer, and again after asking Triton to write what it holds.
const TRACE_SETTLE: Duration = Duration::from_millis(200);

/// Triton 2.51 (the wheel's) can crash when it traces more requests a second than about 100
/// (triton-inference-server/server#7795): trace every N-th request so that this many a second
/// are traced on average; the others take the traced ones' mean transport.
const TRACED_RPS: f64 = 80.0;

/// Trace every N-th request (see [`TRACED_RPS`]).
fn trace_rate(spec: &crate::spec::SimSpec) -> u64 {
    let offered = spec.arrivals.expected_requests() / spec.arrivals.end().as_secs_f64().max(1e-9);
    (offered / TRACED_RPS).ceil().max(1.0) as u64
}

/// Requests sent to every remote model before the first replay: a Python backend's first
/// executions are slow (tens of ms), and a served model is warm.
const WARM_UP_REQUESTS: usize = 20;

fn warm_up(factory: &dyn BackendFactory, p: &Prepared, remote: &[usize]) -> Result<()> {
    for &i in remote {
        let s = &p.spec.servers[i];
        for v in &s.variants {
            let mut b = factory.open(&v.model, &s.backend).with_context(|| format!("warming up `{}` on {}", v.model, s.backend))?;
            b.prepare(1).with_context(|| format!("warming up `{}`", v.model))?;
            for _ in 0..WARM_UP_REQUESTS {
                b.infer().with_context(|| format!("warming up `{}`", v.model))?;
            }
        }
    }
    Ok(())
}

/// Makes the Triton at `url` write its trace into `dir`, and reads (and removes) it.
fn take_trace(url: &str, dir: &Path) -> Result<Vec<TracedRequest>> {
    std::thread::sleep(TRACE_SETTLE);
    #[cfg(feature = "triton")]
    trace::flush(&TritonClient::new(url, Timeouts::default()).map_err(anyhow::Error::msg)?)?;
    #[cfg(not(feature = "triton"))]
    bail!("cannot read Triton's trace at {url}: basin was built without the `triton` feature");
    std::thread::sleep(TRACE_SETTLE);
    trace::take_traces(dir, TRACE_STEM)
}

/// `DIR/transport.csv`: each traced request's transport, as the simulation takes it (ms), and
/// Triton's trace stamps of it (queue start, execution start and end; seconds since the replay's
/// start, like the request records).
fn write_transport_csv(dir: &Path, p: &Prepared, r: &ReplayResult, traced: &[TracedRequest], transport: &[Transports]) -> Result<()> {
    if r.output.requests.is_none() {
        return Ok(());
    }
    let by_id: std::collections::HashMap<u64, &TracedRequest> = traced.iter().map(|t| (t.request_id, t)).collect();
    let mut csv = String::from("server,request_id,to_server_ms,from_server_ms,queue_start_s,compute_start_s,compute_end_s\n");
    for (s, t) in p.spec.servers.iter().zip(transport) {
        let Some(t) = t else { continue };
        for (id, t) in t.iter() {
            let Some(tr) = by_id.get(&id) else { continue };
            let since_start = |ns: u64| (ns as i128 - r.started_monotonic_ns as i128) as f64 / 1e9;
            csv.push_str(&format!(
                "{},{id},{},{},{},{},{}\n",
                s.name,
                t.to_server.as_millis_f64(),
                t.from_server.as_millis_f64(),
                since_start(tr.queue_start_ns),
                since_start(tr.compute_start_ns),
                since_start(tr.compute_end_ns)
            ));
        }
    }
    std::fs::write(dir.join("transport.csv"), csv).with_context(|| format!("writing {}", dir.join("transport.csv").display()))
}

/// The mean and p99 (an HDR-histogram quantile, like the summary's) of durations, in ms.
fn mean_p99_ms(durations: impl Iterator<Item = SimDuration>) -> (f64, f64) {
    let mut h = hdrhistogram::Histogram::<u64>::new(3).expect("3 significant digits are valid");
    let (mut sum, mut n) = (0.0, 0usize);
    for d in durations {
        sum += d.0 as f64;
        n += 1;
        let _ = h.record(d.0.max(1));
    }
    (sum / n.max(1) as f64 / 1e6, h.value_at_quantile(0.99) as f64 / 1e6)
}

/// How many requests were traced, and the mean and p99 of their transport each way (ms).
fn transport_summary(o: &ObservedTransport) -> serde_json::Value {
    let stat = |way: fn(&Transport) -> SimDuration| {
        let (mean, p99) = mean_p99_ms(o.iter().map(|(_, t)| way(&t)));
        json!({"mean": mean, "p99": p99})
    };
    json!({"traced": o.observed(), "to_server_ms": stat(|t| t.to_server), "from_server_ms": stat(|t| t.from_server)})
}

/// How many batches' overhead outside the model was traced, and its mean and p99 (ms).
fn overhead_summary(o: &ObservedOverhead) -> serde_json::Value {
    let (mean, p99) = mean_p99_ms(o.iter());
    json!({"batches": o.observed(), "mean_ms": mean, "p99_ms": p99})
}

/// One server's traced requests' transport in a replay (`None`: none traced).
type Transports = Option<Arc<ObservedTransport>>;

/// Per server, the transport of each request Triton's trace saw.
fn observed_transports(p: &Prepared, r: &ReplayResult, traced: &[TracedRequest]) -> Vec<Transports> {
    let requests = r.output.requests.as_ref().filter(|_| !traced.is_empty());
    (0..p.spec.servers.len())
        .map(|i| requests.and_then(|q| trace::observed_transport(traced, q, i as u16, r.started_monotonic_ns)).map(Arc::new))
        .collect()
}

/// A replay and what the simulation may take from it.
struct Replayed {
    result: ReplayResult,
    dir: String,
    /// Triton's trace of its requests (empty without one).
    traced: Vec<TracedRequest>,
    /// Per server, the traced requests' transport.
    transport: Vec<Transports>,
}

fn replay_run(r: &Replayed) -> ReplayRun {
    let x = &r.result.extras;
    ReplayRun {
        dir: r.dir.clone(),
        host_drift: x.host_probe.host_drift,
        median_probe_us: x.host_probe.median_kernel_us,
        schedule_error_p99_ms: x.schedule_error_ms.p99,
        failed: r.result.output.summary.failed,
    }
}

/// Each remote server's transport in replay `r` (ms).
fn transports(p: &Prepared, r: &ReplayResult) -> Vec<Option<f64>> {
    (0..p.spec.servers.len())
        .map(|i| {
            let stats = r.remote_stats.get(i)?.as_ref()?;
            conditioned::transport_ms(r.output.requests.as_ref()?, i as u16, stats)
        })
        .collect()
}

/// What the simulation takes from replay `k`: each remote server's transport (per request from
/// Triton's trace, else its mean), dispatch lag and per-execution overhead (per traced batch,
/// else the mean), and (level 2) every server's observed execution times.
fn taken_from(p: &Prepared, runs: &[Replayed], k: usize, batch_log: Option<&Path>, remote: &[usize], level: Level) -> Result<TakenFromRun> {
    let (r, traced) = (&runs[k].result, &runs[k].traced);
    let from = r.started_monotonic_ns;
    let to = runs.get(k + 1).map_or(u64::MAX, |n| n.result.started_monotonic_ns);
    let mut taken = TakenFromRun { transport_ms: transports(p, r), ..TakenFromRun::default() };
    for (i, s) in p.spec.servers.iter().enumerate() {
        let server = i as u16;
        let traced_here = r.output.requests.as_ref().filter(|_| remote.contains(&i) && !traced.is_empty());
        // a replay has transports only where Triton traced it and it recorded its requests
        taken.transport.push(runs[k].transport[i].clone().filter(|_| remote.contains(&i)));
        taken
            .dispatch_lag_ms
            .push(traced_here.and_then(|q| trace::dispatch_lag(traced, q, server, s.max_queue_delay)).map(SimDuration::as_millis_f64));
        let (executed, overhead_ms, overhead) = match (remote.contains(&i), batch_log) {
            (true, None) => (None, None, None),
            (true, Some(dir)) => {
                let log = conditioned::read_batch_logs(dir, &s.variants[0].model)?;
                let d = conditioned::durations_within(&log, from, to);
                if d.is_empty() {
                    bail!("Triton's batch log in {} has no batch of `{}` during replay {}", dir.display(), s.variants[0].model, k + 1);
                }
                let stats = r.remote_stats.get(i).and_then(Option::as_ref);
                let mean_ms = stats.and_then(|st| conditioned::execution_overhead_ms(st, &d));
                let per_batch = traced_here.and_then(|q| trace::observed_overhead(traced, q, server, &log, from));
                (Some(d), mean_ms, per_batch.map(Arc::new))
            }
            (false, _) => (r.output.batches.as_ref().map(|b| conditioned::recorded_durations(b, server)), None, None),
        };
        taken.execution_overhead_ms.push(overhead_ms);
        taken.overhead.push(overhead);
        taken.observed.push(if level == Level::Conditioned { executed } else { None });
    }
    Ok(taken)
}

fn cdf_points(out: &RunOutput) -> Vec<(f64, f64)> {
    compare::cdf_points(validate::served_latencies(out))
}

/// latency_cdf.png (the simulation and every replay) and timeseries.png (the simulation over the
/// first replay).
fn figures(dir: &Path, name: &str, sims: &[&RunOutput], replays: &[&RunOutput]) -> Result<()> {
    let mut runs: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for (i, s) in sims.iter().enumerate() {
        runs.push((if sims.len() == 1 { "simulation".into() } else { format!("simulation {}", i + 1) }, cdf_points(s)));
    }
    for (i, r) in replays.iter().enumerate() {
        runs.push((format!("replay {}", i + 1), cdf_points(r)));
    }
    runs.retain(|(_, p)| !p.is_empty());
    if !runs.is_empty() {
        let p = dir.join("latency_cdf.png");
        plot::latency_cdf_figure(&p, &FigureSpec::for_path(&p, Width::Single)?, &runs, true)?;
    }
    let (Some(s), Some(r)) = (sims.first(), replays.first()) else { return Ok(()) };
    let series = |o: &RunOutput, f: fn(&crate::metrics::TimeSeries, usize) -> f64| -> Vec<(f64, f64)> {
        (0..o.timeseries.len()).map(|i| (o.timeseries.t_s[i], f(&o.timeseries, i))).collect()
    };
    let panel = |label: &str, f: fn(&crate::metrics::TimeSeries, usize) -> f64| Panel {
        y_label: label.into(),
        series: vec![("simulation".into(), series(s, f)), ("replay 1".into(), series(r, f))],
    };
    let panels = vec![
        panel("completed per interval", |t, i| t.completed[i] as f64),
        panel("queue length (requests)", |t, i| t.queue_len[i]),
        panel("in service (requests)", |t, i| t.in_service[i]),
        panel("power (W)", |t, i| t.power_w[i]),
    ];
    let p = dir.join("timeseries.png");
    plot::timeseries_figure(
        &p,
        &FigureSpec::for_path(&p, Width::Double)?.with_title(format!("{name}: simulation vs replay 1")),
        "time (s)",
        &panels,
    )?;
    Ok(())
}

/// Level 3's host pass before each replay, unless `--host-pass-s` says otherwise (s).
const DEFAULT_HOST_PASS_S: f64 = 5.0;

/// Level 3's re-measurement of the host: a load pass of `rate_rps` Poisson arrivals at the
/// gateway through `spec` (the experiment's pipeline, no load profile) with the profiled server
/// `server`.
struct HostPassPlan {
    server: usize,
    rate_rps: f64,
    spec: crate::spec::SimSpec,
}

/// The plan for `p`'s one remote server with a load profile (`None`: none has one, nothing to
/// rescale). The pass loads the host as the experiment does: the server gets the mean rate the
/// simulation sends it, and where the experiment's controller skips requests (a cascade
/// admitting under 99%), the gateway gets the experiment's whole arrival rate, every request
/// runs the early-exit model and a fixed uncertainty threshold (`static_threshold`, chosen in
/// simulation) sends the server its share; otherwise open loop at the server's rate.
fn host_pass_plan(p: &Prepared, remote: &[usize], secs: f64) -> Result<Option<HostPassPlan>> {
    let profiled: Vec<usize> = remote.iter().copied().filter(|&i| p.spec.servers[i].load.is_some()).collect();
    let server = match profiled.as_slice() {
        [] => return Ok(None),
        [i] => *i,
        _ => bail!(
            "--host-pass-s re-measures one server with a load profile, and this experiment has {}: pass --host-pass-s 0",
            profiled.len()
        ),
    };
    let seed = p.loaded.experiment.seed;
    let sent_to = |o: &RunOutput| sent_to_server(o, server);
    let sim = crate::sim::run(&p.spec, seed);
    let duration_s = sim.summary.duration_s.max(1e-9);
    let server_rps = sent_to(&sim) as f64 / duration_s;
    if server_rps <= 0.0 {
        return Ok(None);
    }
    let mut spec = p.spec.clone();
    spec.controller = ControllerConfig::OpenLoop(Default::default());
    for s in &mut spec.servers {
        s.load = None;
    }
    let arrival_rps = sim.summary.requests as f64 / duration_s;
    if p.spec.early_exit.is_some() && server_rps < 0.99 * arrival_rps {
        // the threshold whose simulated pass sends the server `server_rps` (more threshold, fewer)
        let with = |t: f64| {
            let mut s = spec.clone();
            s.controller = ControllerConfig::StaticThreshold(StaticThresholdConfig { threshold: t });
            s
        };
        let pass_rps = |t: f64| -> Result<f64> {
            Ok(sent_to(&crate::sim::run(&cli_replay::poisson_spec(&with(t), arrival_rps, secs, seed)?, seed)) as f64 / secs)
        };
        let (mut lo, mut hi) = (0.0, 1.0);
        for _ in 0..20 {
            let mid = 0.5 * (lo + hi);
            if pass_rps(mid)? > server_rps { lo = mid } else { hi = mid }
        }
        let t = 0.5 * (lo + hi);
        // a quality table without confidences gives every request U = 1: no threshold thins it
        if (pass_rps(t)? / server_rps - 1.0).abs() <= 0.1 {
            return Ok(Some(HostPassPlan { server, rate_rps: arrival_rps, spec: with(t) }));
        }
    }
    Ok(Some(HostPassPlan { server, rate_rps: server_rps, spec }))
}

/// How many of `o`'s recorded requests went to server `server`.
fn sent_to_server(o: &RunOutput, server: usize) -> usize {
    o.requests.as_ref().map_or(0, |r| r.path.iter().filter(|x| **x == Some(server as u16)).count())
}

/// One host pass against the profile, as `validation.json` keeps it.
#[derive(Clone, Debug, serde::Serialize)]
struct HostPass {
    /// At the gateway, and the static threshold that thinned it for the server (`None`: open loop).
    offered_rps: f64,
    threshold: Option<f64>,
    rps: f64,
    service_factor: f64,
    profile_service_factor: f64,
    overhead_ms: f64,
    profile_overhead_ms: f64,
    energy_factor: f64,
    profile_energy_factor: f64,
    host_probe_us: f64,
}

impl HostPass {
    fn new(row: &LoadRow, plan: &HostPassPlan, profile: &LoadProfile) -> Self {
        let at = profile.at(row.rps);
        let threshold = match &plan.spec.controller {
            ControllerConfig::StaticThreshold(c) => Some(c.threshold),
            _ => None,
        };
        HostPass {
            offered_rps: row.offered_rps,
            threshold,
            rps: row.rps,
            service_factor: row.service_factor,
            profile_service_factor: at.service_factor,
            overhead_ms: row.overhead_ms,
            profile_overhead_ms: at.overhead_ms,
            energy_factor: row.energy_factor,
            profile_energy_factor: at.energy_factor,
            host_probe_us: row.host_probe_us,
        }
    }

    /// The profile as this pass found the host.
    fn rescale(&self, profile: &LoadProfile) -> Result<LoadProfile> {
        profile
            .rescaled(
                self.service_factor / self.profile_service_factor,
                self.overhead_ms - self.profile_overhead_ms,
                self.energy_factor / self.profile_energy_factor,
            )
            .map_err(anyhow::Error::msg)
    }
}

/// Refuses to replace a directory that is not a validation report.
fn check_out(out: &Path) -> Result<()> {
    if out.exists() && !(out.join("validation.json").is_file() || std::fs::read_dir(out).is_ok_and(|mut d| d.next().is_none())) {
        bail!("{} exists and is not a validation report; refusing to replace it", out.display());
    }
    Ok(())
}

fn run_levels(a: &ValidateArgs, exp: &Path) -> Result<()> {
    let level: Level = a.level.parse().map_err(anyhow::Error::msg).context("--level")?;
    let repeats = a.repeats.unwrap_or(if level == Level::Predicted { 5 } else { 3 });
    if repeats == 0 {
        bail!("--repeats must be at least 1 (a comparison needs a replay; 3 or more give a confidence band)");
    }
    let host_pass_s = match (level, a.host_pass_s) {
        (Level::Predicted, None) => DEFAULT_HOST_PASS_S,
        (Level::Predicted, Some(s)) if s == 0.0 || (s.is_finite() && s >= 1.0) => s,
        (Level::Predicted, Some(s)) => bail!("--host-pass-s must be 0 (no re-measurement) or at least 1 s, got {s}"),
        (_, Some(_)) => bail!("--host-pass-s re-measures the host for --level predicted; levels 1-2 take the service from the run"),
        (_, None) => 0.0,
    };
    let mut p = cli_replay::prepare(exp, &a.scale)?;
    // KS, transport, utilisation and observed batches need the records
    p.spec.record_requests = true;
    p.spec.record_batches = true;
    if level != Level::Predicted {
        // the load profile models how this host slows the real models down: levels 1-2 take the
        // service from the run instead, and the replay's controller must see the same energy
        // estimates as the simulation's
        for s in &mut p.spec.servers {
            s.load = None;
        }
    }
    let out =
        a.out.clone().unwrap_or_else(|| PathBuf::from("runs/validate").join(format!("{}-{}", p.loaded.experiment.name, level.as_str())));
    check_out(&out)?;
    let base = std::env::current_dir()?;
    let probe_factory = RealBackends::new(&p.section, &base);
    let remote: Vec<usize> = (0..p.spec.servers.len()).filter(|&i| probe_factory.batches_remotely(&p.spec.servers[i].backend)).collect();
    let stop = cli_replay::stop_flag();
    if out.exists() {
        std::fs::remove_dir_all(&out).with_context(|| format!("cannot replace {}", out.display()))?;
    }
    outputs::write_dir_atomic(&out, |tmp| {
        // what Triton's models executed (levels 1-2 take the per-execution overhead from it, level 2 every execution time)
        let batch_log = (level != Level::Predicted && !remote.is_empty()).then(|| tmp.join("triton-batches"));
        // levels 1-2 take each request's transport from Triton's trace (the Triton this command starts)
        let trace_dir = (batch_log.is_some() && !a.external_triton).then(|| tmp.join("triton-trace"));
        let _triton = if remote.is_empty() || a.external_triton {
            None
        } else {
            let root = scripts_root(exp)?;
            let args = match level {
                Level::Controlled => {
                    let f = tmp.join("controlled-models.json");
                    outputs::write_json(&f, &controlled::triton_config(&p.spec, p.loaded.experiment.seed, &probe_factory))?;
                    let mut args = vec!["--controlled".to_string(), f.display().to_string()];
                    if let Some(d) = &batch_log {
                        args.extend(["--batch-log".into(), d.display().to_string()]);
                    }
                    args
                }
                _ => real_triton_args(&p, &remote, batch_log.as_deref())?,
            };
            let mut args = args;
            if let Some(d) = &trace_dir {
                args.extend(["--trace-file".into(), d.join(TRACE_STEM).display().to_string()]);
                args.extend(["--trace-rate".into(), trace_rate(&p.spec).to_string()]);
            }
            if let Some(d) = &batch_log {
                std::fs::create_dir_all(d)?;
            }
            eprintln!("validate: starting Triton on 127.0.0.1:{} ({})", a.triton_port, args.join(" "));
            let t = StartedTriton::start(&root, &args, a.triton_port)?;
            p.section.triton_url = t.url.clone();
            p.section.triton_stats_url = None;
            p.section.server_pid_file = Some(t.pid_file.display().to_string());
            Some(t)
        };
        let real = RealBackends::new(&p.section, &base);
        let data = cli_replay::load_dataset(&p, &real, &base)?;
        let controlled_factory = controlled::ControlledFactory::new(&p.spec, p.loaded.experiment.seed, &real);
        let factory: &dyn BackendFactory = if level == Level::Controlled { &controlled_factory } else { &real };
        if _triton.is_some() {
            warm_up(factory, &p, &remote)?;
        }
        let mut opts = cli_replay::replay_options(&p, stop.clone());
        opts.modelled_answers = level == Level::Controlled;
        let plan = if host_pass_s > 0.0 { host_pass_plan(&p, &remote, host_pass_s)? } else { None };
        let pass_scale = ScaleArgs { time_scale: 1.0, rate_scale: 1.0, duration_s: None, ..a.scale.clone() };
        let mut host_passes: Vec<HostPass> = Vec::new();
        // per replay: the experiment with the profile rescaled by the pass before it
        let mut rescaled: Vec<Prepared> = Vec::new();
        let mut runs = Vec::new();
        for k in 0..repeats {
            if stop.load(Ordering::Relaxed) {
                bail!("interrupted before replay {} of {repeats}", k + 1);
            }
            // a short re-measurement of the host between replays, kept with the report
            let t = probe::HostProbe::start(Instant::now())?;
            std::thread::sleep(Duration::from_secs(1));
            let between = probe::summarize(&t.finish());
            let name = format!("replay-{}", k + 1);
            if let Some(plan) = &plan {
                let pass = LoadPass { base: &p, spec: &plan.spec, server: plan.server, fitted: true };
                let row = pass.run(plan.rate_rps, host_pass_s, &tmp.join(format!("host-pass-{}", k + 1)), &pass_scale, stop.clone())?;
                let profile = p.spec.servers[plan.server].load.as_ref().expect("a plan's server has a load profile");
                let hp = HostPass::new(&row, plan, profile);
                eprintln!(
                    "validate: host pass before {name}: {:.1} req/s at the server ({:.1} at the gateway{}), service ×{:.3} (profile ×{:.3}), overhead {:.3} ms (profile {:.3}), energy ×{:.3} (profile ×{:.3})",
                    hp.rps,
                    hp.offered_rps,
                    hp.threshold.map_or(String::new(), |t| format!(", uncertainty threshold {t:.3}")),
                    hp.service_factor,
                    hp.profile_service_factor,
                    hp.overhead_ms,
                    hp.profile_overhead_ms,
                    hp.energy_factor,
                    hp.profile_energy_factor
                );
                let mut q = p.clone();
                q.spec.servers[plan.server].load = Some(hp.rescale(profile)?);
                rescaled.push(q);
                host_passes.push(hp);
            }
            eprintln!("validate: {name} of {repeats} (host probe before it: {:?} µs)", between.median_kernel_us);
            // the replay's gateway estimates each answer's energy from the profile, as the
            // simulation's controller sees it: both take the rescaled one
            let run_p = rescaled.get(k).unwrap_or(&p);
            let result = cli_replay::replay_on(run_p, &tmp.join(&name), &a.scale, factory, data.clone(), &opts)?;
            cli_replay::print_replay(&result, &tmp.join(&name));
            if result.extras.interrupted {
                bail!("interrupted during {name}");
            }
            let traced = match &trace_dir {
                Some(d) => take_trace(&p.section.triton_url, d)?,
                None => Vec::new(),
            };
            let transport = observed_transports(&p, &result, &traced);
            if trace_dir.is_some() {
                write_transport_csv(&tmp.join(&name), &p, &result, &traced, &transport)?;
            }
            runs.push(Replayed { result, dir: name, traced, transport });
        }
        let mut inputs = BTreeMap::new();
        let names: Vec<&str> = p.spec.servers.iter().map(|s| s.name.as_str()).collect();
        let taken: Vec<TakenFromRun> = if level == Level::Predicted {
            Vec::new()
        } else {
            (0..runs.len()).map(|k| taken_from(&p, &runs, k, batch_log.as_deref(), &remote, level)).collect::<Result<_>>()?
        };
        // per server and replay: what was taken, kept in the report
        for (i, n) in names.iter().enumerate() {
            if remote.contains(&i) && !taken.is_empty() {
                inputs.insert(format!("{n}.transport_ms"), json!(taken.iter().map(|t| t.transport_ms[i]).collect::<Vec<_>>()));
                inputs.insert(
                    format!("{n}.traced_transport"),
                    json!(taken.iter().map(|t| t.transport.get(i).cloned().flatten().map(|o| transport_summary(&o))).collect::<Vec<_>>()),
                );
                inputs.insert(format!("{n}.dispatch_lag_ms"), json!(taken.iter().map(|t| t.dispatch_lag_ms[i]).collect::<Vec<_>>()));
                inputs.insert(
                    format!("{n}.execution_overhead_ms"),
                    json!(taken.iter().map(|t| t.execution_overhead_ms[i]).collect::<Vec<_>>()),
                );
                inputs.insert(
                    format!("{n}.traced_overhead"),
                    json!(taken.iter().map(|t| t.overhead[i].as_deref().map(overhead_summary)).collect::<Vec<_>>()),
                );
            }
            if level == Level::Conditioned {
                inputs.insert(
                    format!("{n}.observed_batches"),
                    json!(taken.iter().map(|t| t.observed[i].as_ref().map(Vec::len)).collect::<Vec<_>>()),
                );
            }
        }
        if let Some(plan) = &plan {
            inputs.insert(format!("{}.host_pass", names[plan.server]), json!(host_passes));
        }
        let sims: Vec<RunOutput> = match (level, &plan) {
            // one simulation per replay, on the profile as the pass before it found the host
            (Level::Predicted, Some(_)) => rescaled
                .iter()
                .enumerate()
                .map(|(k, q)| cli_replay::simulate(q, &tmp.join(format!("sim-{}", k + 1)), &a.scale))
                .collect::<Result<_>>()?,
            (Level::Predicted, None) => vec![cli_replay::simulate(&p, &tmp.join("sim"), &a.scale)?],
            // one simulation per replay, on what that replay's transport and execution were
            (Level::Controlled | Level::Conditioned, _) => {
                let mut sims = Vec::new();
                for (k, t) in taken.iter().enumerate() {
                    let q = Prepared { spec: conditioned::conditioned_spec(&p.spec, t), ..p.clone() };
                    sims.push(cli_replay::simulate(&q, &tmp.join(format!("sim-{}", k + 1)), &a.scale)?);
                }
                sims
            }
        };
        let sim_refs: Vec<&RunOutput> = sims.iter().collect();
        let rep_refs: Vec<&RunOutput> = runs.iter().map(|r| &r.result.output).collect();
        let metrics = validate::metrics(&sim_refs, &rep_refs);
        let host_drift = runs.iter().filter_map(|r| r.result.extras.host_probe.host_drift).reduce(f64::max);
        let instances: u32 = p.spec.servers.iter().map(|s| s.instances).sum();
        let v = Validation {
            level,
            name: p.loaded.experiment.name.clone(),
            experiment: exp.display().to_string(),
            repeats,
            host_drift,
            unreliable: runs.iter().any(|r| validate::drift_unreliable(r.result.extras.host_probe.host_drift)),
            taken_from_run: level.taken_from_run(plan.is_some()),
            inputs,
            sim_utilisation: validate::utilisation(&sims[0], instances),
            targets: (level == Level::Controlled).then(|| validate::controlled_targets(&metrics)),
            metrics,
            replays: runs.iter().map(replay_run).collect(),
            date: crate::io::manifest::now_rfc3339(),
            host: crate::io::manifest::Host::describe().hostname,
        };
        outputs::write_json(&tmp.join("validation.json"), &v)?;
        let md = validate::markdown(&v);
        std::fs::write(tmp.join("validation.md"), &md)?;
        figures(tmp, &v.name, &sim_refs, &rep_refs)?;
        print!("{md}");
        Ok(())
    })?;
    println!("report: {}", out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replay_experiment(controller: &str) -> Prepared {
        let exp = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/replay/steady_low.toml");
        let scale = ScaleArgs {
            time_scale: 20.0,
            rate_scale: 1.0,
            duration_s: Some(20.0),
            seed: None,
            set: vec![format!("controller.kind=\"{controller}\"")],
        };
        let mut p = cli_replay::prepare(&exp, &scale).unwrap();
        p.spec.record_requests = true;
        p
    }

    fn server_rps(o: &RunOutput, server: usize, secs: f64) -> f64 {
        assert!(o.requests.is_some(), "the run records its requests");
        sent_to_server(o, server) as f64 / secs
    }

    #[test]
    fn a_skipping_cascade_is_re_measured_at_its_arrival_rate_with_the_servers_share_admitted() {
        let p = replay_experiment("bio_threshold");
        let sim = crate::sim::run(&p.spec, p.loaded.experiment.seed);
        let (arrival_rps, target) = (sim.summary.requests as f64 / sim.summary.duration_s, server_rps(&sim, 0, sim.summary.duration_s));
        assert!(target < 0.5 * arrival_rps, "bio skips most of steady_low ({target} of {arrival_rps} req/s)");
        let plan = host_pass_plan(&p, &[0], 5.0).unwrap().expect("a profiled remote server");
        assert!(matches!(plan.spec.controller, ControllerConfig::StaticThreshold(_)));
        assert!((plan.rate_rps - arrival_rps).abs() < 1e-9);
        assert!(plan.spec.servers.iter().all(|s| s.load.is_none()));
        let seed = p.loaded.experiment.seed;
        let pass = crate::sim::run(&cli_replay::poisson_spec(&plan.spec, plan.rate_rps, 5.0, seed).unwrap(), seed);
        let got = server_rps(&pass, 0, 5.0);
        assert!((got / target - 1.0).abs() <= 0.1, "the pass sends the server {got} req/s, the experiment {target}");
    }

    #[test]
    fn an_admitting_controller_is_re_measured_open_loop_at_the_servers_rate() {
        let p = replay_experiment("open_loop");
        let plan = host_pass_plan(&p, &[0], 5.0).unwrap().expect("a profiled remote server");
        assert!(matches!(plan.spec.controller, ControllerConfig::OpenLoop(_)));
        let sim = crate::sim::run(&p.spec, p.loaded.experiment.seed);
        assert!((plan.rate_rps - server_rps(&sim, 0, sim.summary.duration_s)).abs() < 1e-9);
    }
}
