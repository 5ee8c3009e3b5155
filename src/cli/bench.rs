//! `basin bench`: throughput and memory figures of the simulator, measured in one run so they
//! can be reported as ratios (this machine is noisy; absolute numbers drift).
//!
//! - `speed`: simulated requests per second per core (one thread) on M/M/1 and on the bursty
//!   IPA trace scaled ×100 through a dynamic batcher, outputs streaming (no per-request
//!   records); with `--simpy`, the same M/M/1 run as a plain SimPy model, and the ratio.
//! - `memory`: a 24-hour workload at 1,000 requests/s (86.4 M requests) without per-request
//!   output; prints the peak resident set size (VmHWM).
//! - `load`: open-loop KServe v2 load on a running server ([`super::bench_load`]).

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use crate::model::arrivals::{ArrivalProcess, ArrivalSpec};
use crate::model::controller::ControllerConfig;
use crate::model::cost::{CostRow, LatencyDistribution};
use crate::model::server::{ServerKind, ServerSpec, Variant};
use crate::sim;
use crate::spec::SimSpec;

#[derive(Subcommand, Debug)]
pub enum BenchCmd {
    /// Requests per second on M/M/1 and on the bursty trace ×100 (and SimPy with --simpy).
    Speed(SpeedArgs),
    /// Peak RSS of a 24 h × 1,000 req/s run without per-request output.
    Memory(MemoryArgs),
    /// Requests per second with each controller on the same workload (bursty ×100 behind a
    /// cascade and a two-variant batcher).
    Controllers(ControllersArgs),
    /// Sweep throughput: runs per second of a standard sweep at --jobs 1 and 2, and the speedup.
    Sweep(SweepBenchArgs),
    /// Open-loop KServe v2 load on a server (e.g. `basin serve`): latency and errors.
    #[cfg(feature = "triton")]
    Load(super::bench_load::LoadArgs),
}

#[derive(Args, Debug)]
pub struct SweepBenchArgs {
    /// The sweep file (default: experiments/sweep-k-tau0/bench.toml).
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Job counts to time, in order; the speedup is of each over the first.
    #[arg(long, value_delimiter = ',', default_values_t = vec![1usize, 2])]
    pub jobs: Vec<usize>,
    /// Repetitions per job count (the best is reported).
    #[arg(long, default_value_t = 1)]
    pub reps: u32,
}

#[derive(Args, Debug)]
pub struct ControllersArgs {
    /// The bursty rate trace (default: ${BASIN_TRACES_DIR}/twitter/bursty.csv).
    #[arg(long)]
    pub trace: Option<PathBuf>,
    #[arg(long, default_value_t = 3)]
    pub reps: u32,
}

#[derive(Args, Debug)]
pub struct SpeedArgs {
    /// Requests in the M/M/1 run.
    #[arg(long, default_value_t = 5_000_000)]
    pub requests: u64,
    /// The bursty rate trace (default: ${BASIN_TRACES_DIR}/twitter/bursty.csv).
    #[arg(long)]
    pub trace: Option<PathBuf>,
    /// Also time SimPy with this Python: the M/M/1 model (scripts/simpy_mm1.py) in process, and
    /// the batching model (scripts/simpy_batcher.py) against `basin simulate` on the same
    /// workload (experiments/bench/bursty-x100.toml), both as whole processes.
    #[arg(long)]
    pub simpy: Option<PathBuf>,
    /// Requests for the SimPy M/M/1 run (it is ~50x slower).
    #[arg(long, default_value_t = 1_000_000)]
    pub simpy_requests: u64,
    /// Interleaved pairs of whole-process runs (basin simulate, SimPy) of the batching model.
    #[arg(long, default_value_t = 3)]
    pub simpy_pairs: u32,
    /// Repetitions of each basin measurement (the best is reported).
    #[arg(long, default_value_t = 3)]
    pub reps: u32,
}

#[derive(Args, Debug)]
pub struct MemoryArgs {
    #[arg(long, default_value_t = 86_400)]
    pub duration_s: u64,
    #[arg(long, default_value_t = 1000.0)]
    pub rate_rps: f64,
}

fn server(
    kind: ServerKind,
    max_batch: u32,
    delay_us: u64,
    dist: Option<LatencyDistribution>,
    cost: impl Fn(u32) -> (f64, f64),
) -> ServerSpec {
    crate::spec::build::server("s", kind, 1, max_batch, delay_us, dist, cost)
}

fn spec(arrivals: ArrivalSpec, server: ServerSpec, max_requests: Option<u64>) -> SimSpec {
    SimSpec { max_requests, ..crate::spec::build::spec("bench", arrivals, vec![server], 60.0) }
}

/// M/M/1 at ρ = 0.9 (λ = 900/s, μ = 1000/s) for `requests` requests.
pub fn mm1_spec(requests: u64) -> SimSpec {
    let seconds = (requests as f64 / 900.0 * 1.01).ceil() as usize + 1;
    spec(
        ArrivalSpec::Rate { rates_rps: vec![900.0; seconds], process: ArrivalProcess::Poisson },
        server(ServerKind::Local, 1, 0, Some(LatencyDistribution::Exponential), |_| (1.0, 0.1)),
        Some(requests),
    )
}

/// The bursty trace ×100 (mean 1,200 req/s, peak 3,400) through a batcher (max 16, 2 ms delay,
/// 0.6 + 0.15·b ms per batch: ~60% utilisation at the peak).
pub fn bursty_spec(rates: Vec<f64>) -> SimSpec {
    spec(
        ArrivalSpec::Rate { rates_rps: rates.iter().map(|r| r * 100.0).collect(), process: ArrivalProcess::Poisson },
        server(ServerKind::Batched, 16, 2000, None, |b| (0.6 + 0.15 * b as f64, 0.02 * b as f64)),
        None,
    )
}

fn time_run(spec: &SimSpec, reps: u32) -> (f64, u64, u64) {
    let mut best = f64::INFINITY;
    let mut n = 0;
    let mut events = 0;
    for i in 0..reps.max(1) {
        let t0 = Instant::now();
        let out = sim::run(spec, 1 + i as u64);
        best = best.min(t0.elapsed().as_secs_f64());
        n = out.summary.requests;
        events = out.events;
    }
    (best, n, events)
}

pub fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = s.lines().find(|l| l.starts_with("VmHWM"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

pub fn run(cmd: BenchCmd) -> Result<()> {
    match cmd {
        BenchCmd::Speed(a) => speed(a),
        BenchCmd::Memory(a) => memory(a),
        BenchCmd::Controllers(a) => controllers(a),
        BenchCmd::Sweep(a) => sweep_bench(a),
        #[cfg(feature = "triton")]
        BenchCmd::Load(a) => super::bench_load::run(a),
    }
}

fn default_trace(t: Option<PathBuf>) -> Result<PathBuf> {
    match t {
        Some(t) => Ok(t),
        None => crate::io::experiment::resolve_path(std::path::Path::new("./x.toml"), "${BASIN_TRACES_DIR}/twitter/bursty.csv")
            .map_err(anyhow::Error::msg),
    }
}

/// The controllers benchmarked, as `[controller]` tables.
pub const BENCH_CONTROLLERS: &[(&str, &str)] = &[
    ("open_loop", "kind = \"open_loop\""),
    ("static_threshold", "kind = \"static_threshold\"\nthreshold = 0.3"),
    ("bio_threshold", "kind = \"bio_threshold\"\ntau0 = 0.6\ntau_inf = 0.1\nk = 0.01"),
    (
        "bio_threshold+feedback",
        "kind = \"bio_threshold\"\ntau0 = 0.6\ntau_inf = 0.1\nk = 0.01\n[feedback]\nwindow_s = 10\nslo_violation_target = 0.05\nreheat = 0.2\ntau_max = 0.9",
    ),
    ("ipa", "kind = \"ipa\"\ninterval_s = 10\nmax_instances = 4"),
    ("fa2_low", "kind = \"fa2_low\"\ninterval_s = 10\nmax_instances = 4"),
    ("fa2_high", "kind = \"fa2_high\"\ninterval_s = 10\nmax_instances = 4"),
    ("rim_high", "kind = \"rim_high\"\ninterval_s = 10\nmax_instances = 4"),
    ("qlearn", "kind = \"qlearn\"\ninterval_s = 10\nmax_instances = 4"),
    ("carbon", "kind = \"carbon\"\ninterval_s = 60"),
];

/// Bursty ×100 behind a cascade (early exit `tiny`) and a batcher with two variants, with a
/// synthetic joint quality table (deterministic).
pub fn cascade_spec(rates: &[f64], controller: ControllerConfig, cascade: bool) -> SimSpec {
    use crate::model::quality::{Quality, QualityTable};
    use rand::RngExt;
    let mut rng = crate::core::RngStreams::new(7).stream("bench_table");
    let mut rows = Vec::new();
    for i in 0..1000u32 {
        for (m, skill) in [("tiny", 0.6), ("small", 0.85), ("large", 0.95)] {
            let c: f64 = (skill + rng.random::<f64>() * 0.3 - 0.15_f64).clamp(0.0, 1.0);
            rows.push((m.to_string(), i, c, rng.random::<f64>() < c));
        }
    }
    let table = QualityTable::from_rows(rows).expect("valid synthetic table");
    let mut srv = server(ServerKind::Batched, 16, 2000, None, |b| (0.6 + 0.15 * b as f64, 0.02 * b as f64));
    let small = server(ServerKind::Batched, 16, 2000, None, |b| (0.3 + 0.08 * b as f64, 0.01 * b as f64));
    srv.variants[0].model = "large".into();
    srv.variants[0].quality_index = table.index_of("large");
    srv.variants.push(Variant { model: "small".into(), costs: small.variants[0].costs.clone(), quality_index: table.index_of("small") });
    let mut s =
        spec(ArrivalSpec::Rate { rates_rps: rates.iter().map(|r| r * 100.0).collect(), process: ArrivalProcess::Poisson }, srv, None);
    if cascade {
        s.early_exit = Some(crate::spec::EarlyExitSpec {
            model: "tiny".into(),
            dist: CostRow::fixed("tiny", "sim", "dev0", 1, 0.05, 0.001).service_dist().expect("valid row"),
            quality_index: table.index_of("tiny"),
            overhead_energy_j: 0.0,
        });
    }
    s.quality = Some(Quality::Table(table));
    s.controller = controller;
    s
}

fn controllers(a: ControllersArgs) -> Result<()> {
    let rates = crate::io::traces::load_rate_csv(&default_trace(a.trace)?)?.rates_rps;
    println!(
        "basin {} ({}), bursty x100, one thread, best of {} interleaved rounds",
        env!("CARGO_PKG_VERSION"),
        if cfg!(debug_assertions) { "debug build" } else { "release build" },
        a.reps
    );
    let mut cases: Vec<(String, SimSpec)> = vec![
        ("open_loop (no cascade)".into(), cascade_spec(&rates, ControllerConfig::default(), false)),
        ("open_loop+cascade".into(), cascade_spec(&rates, ControllerConfig::default(), true)),
    ];
    for (name, src) in BENCH_CONTROLLERS.iter().skip(1) {
        let cfg: ControllerConfig = toml::from_str(src).context("bench controller config")?;
        cases.push((name.to_string(), cascade_spec(&rates, cfg, true)));
    }
    // rounds over all cases, so that machine drift hits every controller alike
    let mut best = vec![(f64::INFINITY, 0u64, 0u64); cases.len()];
    for _ in 0..a.reps.max(1) {
        for (i, (_, spec)) in cases.iter().enumerate() {
            let (t, n, ev) = time_run(spec, 1);
            if t < best[i].0 {
                best[i] = (t, n, ev);
            }
        }
    }
    let (tc, nc, _) = best[1];
    for ((name, _), (t, n, ev)) in cases.iter().zip(&best) {
        println!(
            "  {:<24} {:>6.2} M requests/s {:>6.2} M events/s {:>5.2} events/request  {:+6.1}% time per request vs open_loop+cascade",
            name,
            *n as f64 / t / 1e6,
            *ev as f64 / t / 1e6,
            *ev as f64 / *n as f64,
            ((t / *n as f64) / (tc / nc as f64) - 1.0) * 100.0
        );
    }
    Ok(())
}

fn speed(a: SpeedArgs) -> Result<()> {
    let trace = default_trace(a.trace)?;
    let rates = crate::io::traces::load_rate_csv(&trace)?.rates_rps;
    println!(
        "basin {} ({}), one thread, best of {}",
        env!("CARGO_PKG_VERSION"),
        if cfg!(debug_assertions) { "debug build" } else { "release build" },
        a.reps
    );
    let mm1 = mm1_spec(a.requests);
    let (t, n, ev) = time_run(&mm1, a.reps);
    let mm1_rate = n as f64 / t;
    println!(
        "  M/M/1 rho=0.9          {n:>10} requests in {t:>7.3} s: {:>6.2} M requests/s ({:.1} M events/s)",
        mm1_rate / 1e6,
        ev as f64 / t / 1e6
    );
    let b = bursty_spec(rates);
    let (t, n, ev) = time_run(&b, a.reps);
    println!(
        "  bursty x100, batcher   {n:>10} requests in {t:>7.3} s: {:>6.2} M requests/s ({:.1} M events/s)",
        n as f64 / t / 1e6,
        ev as f64 / t / 1e6
    );
    if let Some(py) = a.simpy {
        let mut mm1 = Command::new(&py);
        mm1.arg(repo_file("scripts/simpy_mm1.py")).args([
            "--lambda-rps",
            "0.9",
            "--mu-rps",
            "1.0",
            "--requests",
            &a.simpy_requests.to_string(),
            "--seed",
            "1",
        ]);
        let v = json_line(&mut mm1, "SimPy M/M/1")?.1;
        let simpy_rate = v["requests_per_s"].as_f64().unwrap_or(f64::NAN);
        println!(
            "  SimPy {} M/M/1     {:>10} requests in {:>7.3} s: {:>6.3} M requests/s",
            v["simpy_version"].as_str().unwrap_or("?"),
            a.simpy_requests,
            v["wall_s"].as_f64().unwrap_or(f64::NAN),
            simpy_rate / 1e6
        );
        println!("  basin / SimPy on M/M/1: {:.0}x", mm1_rate / simpy_rate);
        whole_process_batcher(&py, &trace, a.simpy_pairs)?;
    }
    Ok(())
}

/// A file of the source tree (the SimPy scripts and the benchmark's experiment).
fn repo_file(rel: &str) -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Runs `cmd` to the end; its wall time and the JSON object on its stdout (the first line that
/// opens one, or all of stdout when it is pretty-printed).
fn json_line(cmd: &mut Command, what: &str) -> Result<(f64, serde_json::Value)> {
    let t0 = Instant::now();
    let out = cmd.output().with_context(|| format!("cannot run {what} ({:?})", cmd.get_program()))?;
    let wall = t0.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!("{what} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let json = text.find('{').map_or("", |i| &text[i..]);
    let v = serde_json::from_str(json).or_else(|_| serde_json::from_str(json.lines().next().unwrap_or("")));
    Ok((wall, v.with_context(|| format!("cannot parse {what}'s JSON output"))?))
}

/// The batching model as whole processes, interleaved in pairs so that the host's drift hits
/// both alike: `basin simulate` (experiment file, trace reading, outputs written) against the
/// same model written in SimPy. The two are independent implementations, so their mean latency
/// and batch size are printed side by side as well (they agree within sampling noise).
fn whole_process_batcher(py: &std::path::Path, trace: &std::path::Path, pairs: u32) -> Result<()> {
    let exe = std::env::current_exe().context("cannot find basin's own executable")?;
    let out = tempdir_path().join("bursty-x100");
    let (mut basin_s, mut simpy_s, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let (mut basin_v, mut simpy_v) = (serde_json::Value::Null, serde_json::Value::Null);
    for _ in 0..pairs.max(1) {
        let mut sim = Command::new(&exe);
        sim.arg("simulate").arg(repo_file("experiments/bench/bursty-x100.toml")).arg("--out").arg(&out).arg("--json");
        sim.env("BASIN_TRACES_DIR", trace.parent().and_then(|p| p.parent()).unwrap_or(std::path::Path::new(".")));
        let (tb, vb) = json_line(&mut sim, "basin simulate")?;
        let mut simpy = Command::new(py);
        simpy.arg(repo_file("scripts/simpy_batcher.py")).arg("--trace").arg(trace).args(["--rate-scale", "100"]);
        let (ts, vs) = json_line(&mut simpy, "SimPy batcher")?;
        basin_s.push(tb);
        simpy_s.push(ts);
        ratios.push(ts / tb);
        (basin_v, simpy_v) = (vb, vs);
    }
    let _ = std::fs::remove_dir_all(tempdir_path());
    let spread = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        (v[0], crate::calibrate::measure::quantile_sorted(&v, 0.5), v[v.len() - 1])
    };
    let (bl, bm, bh) = spread(&basin_s);
    let (sl, sm, sh) = spread(&simpy_s);
    let (rl, rm, rh) = spread(&ratios);
    println!("  batching model, whole processes, {} interleaved pairs (min / median / max wall s):", basin_s.len());
    println!(
        "    basin simulate  {bl:.3} / {bm:.3} / {bh:.3} s   {} requests, mean latency {:.4} ms, mean batch {:.4}",
        basin_v["requests"],
        basin_v["latency_ms"]["mean"].as_f64().unwrap_or(f64::NAN),
        basin_v["mean_batch_size"].as_f64().unwrap_or(f64::NAN)
    );
    println!(
        "    SimPy {}     {sl:.3} / {sm:.3} / {sh:.3} s   {} requests, mean latency {:.4} ms, mean batch {:.4}",
        simpy_v["simpy_version"].as_str().unwrap_or("?"),
        simpy_v["requests"],
        simpy_v["latency_mean_ms"].as_f64().unwrap_or(f64::NAN),
        simpy_v["mean_batch_size"].as_f64().unwrap_or(f64::NAN)
    );
    println!("  basin / SimPy on the batching model, whole process: {rm:.0}x (pairs {rl:.0}x to {rh:.0}x)");
    Ok(())
}

fn memory(a: MemoryArgs) -> Result<()> {
    let before = peak_rss_mib();
    let s = spec(
        ArrivalSpec::Rate { rates_rps: vec![a.rate_rps; a.duration_s as usize], process: ArrivalProcess::Poisson },
        server(ServerKind::Batched, 8, 1000, None, |b| (0.3 + 0.05 * b as f64, 0.01 * b as f64)),
        None,
    );
    let t0 = Instant::now();
    let out = sim::run(&s, 1);
    let t = t0.elapsed().as_secs_f64();
    let mut ts = crate::io::outputs::timeseries_frame(&out.timeseries)?;
    let dir = tempdir_path();
    std::fs::create_dir_all(&dir)?;
    crate::io::outputs::write_parquet(&dir.join("timeseries.parquet"), &mut ts)?;
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "{} requests over {} s simulated in {t:.1} s ({:.2} M requests/s), {} time-series rows written",
        out.summary.requests,
        a.duration_s,
        out.summary.requests as f64 / t / 1e6,
        out.timeseries.len()
    );
    println!("peak RSS {:.1} MiB (at start {:.1} MiB)", peak_rss_mib().unwrap_or(f64::NAN), before.unwrap_or(f64::NAN));
    Ok(())
}

fn tempdir_path() -> PathBuf {
    std::env::temp_dir().join(format!("basin-bench-{}", std::process::id()))
}

/// Times a whole sweep (journal, fsync and results files included) at each job count.
fn sweep_bench(a: SweepBenchArgs) -> Result<()> {
    let file = a.file.unwrap_or_else(|| PathBuf::from("experiments/sweep-k-tau0/bench.toml"));
    let p = crate::cli::sweep::prepare(&file)?;
    println!(
        "basin {} ({}), sweep {}: {} runs, {} cores available",
        env!("CARGO_PKG_VERSION"),
        if cfg!(debug_assertions) { "debug build" } else { "release build" },
        file.display(),
        p.runs.len(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    let mut first: Option<f64> = None;
    let mut results: Vec<Vec<u8>> = Vec::new();
    for &j in &a.jobs {
        let mut best = f64::INFINITY;
        for _ in 0..a.reps.max(1) {
            let dir = tempdir_path().join(format!("jobs-{j}"));
            let _ = std::fs::remove_dir_all(&dir);
            let t0 = Instant::now();
            crate::cli::sweep::execute(&p, &dir, j, None, false, false, false)?;
            best = best.min(t0.elapsed().as_secs_f64());
            results.push(std::fs::read(dir.join(crate::io::sweep::RESULTS_CSV))?);
            let _ = std::fs::remove_dir_all(&dir);
        }
        let rate = p.runs.len() as f64 / best;
        let speedup = first.map(|f| rate / f);
        first.get_or_insert(rate);
        println!(
            "  --jobs {j}: {} runs in {best:.2} s = {rate:.2} runs/s{}",
            p.runs.len(),
            speedup.map_or(String::new(), |s| format!("  (speedup {s:.2}x over --jobs {})", a.jobs[0]))
        );
    }
    let same = results.windows(2).all(|w| w[0] == w[1]);
    println!("  results.csv identical across job counts: {same}");
    let _ = std::fs::remove_dir_all(tempdir_path());
    if !same {
        bail!("results differ between job counts");
    }
    Ok(())
}
