//! `basin simulate EXP.toml [--out DIR] [--seed N] [--set KEY=VALUE]...`

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::Args;

use crate::io::experiment::{self, Loaded};
use crate::io::manifest::{self, Host, Manifest};
use crate::io::outputs;
use crate::metrics::{RunOutput, Summary};
use crate::sim;

#[derive(Args, Debug)]
pub struct SimulateArgs {
    /// The experiment file (TOML).
    pub experiment: PathBuf,
    /// Output directory (default: runs/<name>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Override the experiment's seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Override any key by its dotted path, e.g. --set controller.tau0=0.7 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Print the summary as JSON instead of the human table.
    #[arg(long)]
    pub json: bool,
}

/// Builds the manifest of a finished run.
pub fn manifest_for(loaded: &Loaded, mode: &str, started_at: String, wall_s: f64, events: u64) -> Result<Manifest> {
    Ok(Manifest {
        mode: mode.into(),
        basin_version: manifest::BASIN_VERSION.into(),
        git_revision: manifest::GIT_REVISION.into(),
        experiment_file: loaded.file.display().to_string(),
        seed: loaded.experiment.seed,
        experiment: serde_json::to_value(&loaded.experiment)?,
        inputs: loaded.inputs.clone(),
        host: Host::describe(),
        command_line: std::env::args().collect(),
        started_at,
        finished_at: manifest::now_rfc3339(),
        wall_s,
        events,
        assumptions: manifest::assumptions(&loaded.experiment),
    })
}

pub fn run(a: SimulateArgs) -> Result<()> {
    let loaded = experiment::load(&a.experiment, &a.set, a.seed)?;
    let started = manifest::now_rfc3339();
    let t0 = Instant::now();
    let out = sim::run(&loaded.spec, loaded.experiment.seed);
    let wall = t0.elapsed().as_secs_f64();
    let dir = a.out.unwrap_or_else(|| PathBuf::from("runs").join(&loaded.experiment.name));
    let manifest = manifest_for(&loaded, "simulate", started, wall, out.events)?;
    outputs::write_dir_atomic(&dir, |tmp| {
        outputs::write_run_files(tmp, &out)?;
        outputs::write_json(&tmp.join(outputs::MANIFEST), &manifest)
    })?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&out.summary)?);
    } else {
        print!("{}", human_summary(&out, wall));
        for a in &manifest.assumptions {
            println!("  {a}");
        }
        println!("outputs: {}", dir.display());
    }
    Ok(())
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".into(), |x| format!("{x:.digits$}"))
}

/// The one-screen summary printed after a run.
pub fn human_summary(out: &RunOutput, wall_s: f64) -> String {
    let s: &Summary = &out.summary;
    let pct = |v: Option<f64>| v.map_or("-".into(), |x| format!("{:.2}%", x * 100.0));
    let mut t = String::new();
    t += &format!("{} ({}, seed {})\n", s.name, s.mode, s.seed);
    t += &format!(
        "  requests     {:>12}   admitted {} · skipped {} · rejected {} ({} queue full) · failed {}\n",
        s.requests, s.admitted, s.skipped, s.rejected, s.rejected_queue_full, s.failed
    );
    t += &format!("  admission    {:>12}   throughput {:.2} req/s over {:.1} s\n", pct(s.admission_rate), s.throughput_rps, s.duration_s);
    let l = &s.latency_ms;
    t += &format!(
        "  latency ms   mean {} · p50 {} · p95 {} · p99 {} · max {}\n",
        opt(l.mean, 2),
        opt(l.p50, 2),
        opt(l.p95, 2),
        opt(l.p99, 2),
        opt(l.max, 2)
    );
    t += &format!("  SLO {} ms   violations {}\n", s.slo_ms, pct(s.slo_violation_rate));
    t += &format!("  accuracy     {:>12}   mean batch {}\n", pct(s.accuracy), opt(s.mean_batch_size, 2));
    let est = match (s.energy.estimated, s.mode.as_str()) {
        (false, _) => "",
        (true, "replay") => "  [ESTIMATED energy: no energy counter]",
        (true, _) => "  [ESTIMATED energy in cost table]",
    };
    t += &format!(
        "  energy       {:>10.1} J   {} J/request · mean power {:.1} W{est}\n",
        s.energy_j,
        opt(s.energy_j_per_request, 4),
        s.mean_power_w
    );
    t += &format!(
        "               active {:.1} J · idle {:.1} J · early exit {:.1} J · warm-up {:.1} J (PUE {})\n",
        s.energy.active_j, s.energy.idle_j, s.energy.early_exit_j, s.energy.reconfig_j, s.energy.pue
    );
    t += &format!(
        "  carbon       {:>10.3} g   {} g/request · mean intensity {:.1} g/kWh\n",
        s.co2_g,
        opt(s.co2_g_per_request, 6),
        s.carbon_g_per_kwh_mean
    );
    if s.mode == "replay" {
        t += &format!("  replayed in {wall_s:.3} s wall\n");
    } else {
        t += &format!(
            "  simulated in {:.3} s wall ({:.2} M requests/s, {} events)\n",
            wall_s,
            s.requests as f64 / wall_s.max(1e-9) / 1e6,
            out.events
        );
    }
    t
}
