//! The command-line front end: one function per subcommand. `main.rs` only calls [`main`].

pub mod bench;
#[cfg(feature = "triton")]
pub mod bench_load;
pub mod calibrate;
pub mod completions;
pub mod landscape;
pub mod new;
pub mod pareto;
pub mod plot;
pub mod replay;
#[cfg(feature = "serve")]
pub mod serve;
pub mod simulate;
pub mod sweep;
pub mod trace;
pub mod validate;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// basin — energy-aware ML inference serving: simulate, sweep, calibrate, replay.
#[derive(Parser, Debug)]
#[command(name = "basin", version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("BASIN_GIT_REVISION"), ")"), about, long_about = None)]
pub struct Cli {
    /// Log more (-v: info, -vv: debug).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run one simulated experiment.
    Simulate(simulate::SimulateArgs),
    /// Throughput and memory benchmarks of the simulator.
    Bench {
        #[command(subcommand)]
        cmd: bench::BenchCmd,
    },
    /// Run every (point, seed) of a sweep file in parallel; one results row per run.
    Sweep(sweep::SweepArgs),
    /// Join the shard directories of one sweep (checks every run is present once).
    Merge(sweep::MergeArgs),
    /// Non-dominated runs of a sweep per workload: front, hypervolume, knee, baseline.
    Pareto(pareto::ParetoArgs),
    /// The landscape of a metric over two sweep axes: basins, catchments, global minimum
    /// (a heatmap figure and FIG.json beside it).
    Landscape(landscape::LandscapeArgs),
    /// Figures from recorded outputs (Pareto front, time series, latency CDF, energy).
    Plot {
        #[command(subcommand)]
        cmd: plot::PlotCmd,
    },
    /// Measure cost and quality tables on this host (ONNX Runtime, Triton).
    Calibrate(calibrate::CalibrateArgs),
    /// Inspect and generate arrival traces.
    Trace {
        #[command(subcommand)]
        cmd: trace::TraceCmd,
    },
    /// The same experiment in real time on real backends (ONNX Runtime, Triton).
    Replay(replay::ReplayArgs),
    /// The experiment's gateway, live: a KServe v2 HTTP server with Prometheus metrics.
    #[cfg(feature = "serve")]
    Serve(serve::ServeArgs),
    /// The simulator against repeated replays, in levels (controlled, conditioned, predicted).
    Validate(validate::ValidateArgs),
    /// Measure how a Triton server's service and transport times grow with load (open-loop
    /// Poisson through the experiment's replay pipeline): a `[[server]] load_profile`.
    LoadProfile(replay::LoadProfileArgs),
    /// Write a commented, runnable experiment from a template (batched, local, cascade-bio, ipa, carbon).
    New(new::NewArgs),
    /// Print a shell completion script (bash, zsh, fish).
    Completions(completions::CompletionsArgs),
}

/// Parses the command line, runs the subcommand, prints any error as one paragraph.
pub fn main() -> ExitCode {
    // Like other Unix tools, stop quietly when the reader of our output goes away
    // (`basin ... | head`) instead of panicking on a broken pipe.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("BASIN_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).without_time().try_init();
    let res = match cli.command {
        Command::Simulate(a) => simulate::run(a),
        Command::Trace { cmd } => trace::run(cmd),
        Command::Bench { cmd } => bench::run(cmd),
        Command::Sweep(a) => sweep::run(a),
        Command::Merge(a) => sweep::merge(a),
        Command::Pareto(a) => pareto::run(a),
        Command::Landscape(a) => landscape::run(a),
        Command::Plot { cmd } => plot::run(cmd),
        Command::Replay(a) => replay::run_replay(a),
        #[cfg(feature = "serve")]
        Command::Serve(a) => serve::run(a),
        Command::Validate(a) => validate::run(a),
        Command::LoadProfile(a) => replay::run_load_profile(a),
        Command::Calibrate(a) => calibrate::run(a),
        Command::New(a) => new::run(a),
        Command::Completions(a) => completions::run(a),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut msg = format!("error: {e}");
            for cause in e.chain().skip(1) {
                msg.push_str(&format!(": {cause}"));
            }
            eprintln!("{msg}");
            ExitCode::from(1)
        }
    }
}
