//! `basin serve EXP.toml`: the experiment's gateway, live, for KServe v2 clients.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;

use crate::cli::replay::{Prepared, open_meter, replay_section, stop_flag, write_run};
use crate::io::{experiment, manifest};
use crate::replay::ReplayOptions;
use crate::replay::real::RealBackends;
use crate::serve::{self, ServeOptions};

/// Serves an experiment's gateway (early exit, controller, servers) over the KServe v2 HTTP
/// protocol, with live Prometheus metrics; SIGTERM/SIGINT drains and writes the run.
#[derive(Args, Debug)]
pub struct ServeArgs {
    pub experiment: PathBuf,
    /// Address to listen on (no authentication: keep it on loopback, or behind a proxy).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Where the run is written on shutdown (default runs/<name>-serve).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Request bodies larger than this are refused (413).
    #[arg(long, default_value_t = 1 << 20)]
    pub max_body_bytes: usize,
    /// Threads of the HTTP server.
    #[arg(long, default_value_t = 2)]
    pub http_threads: usize,
}

/// Clients are the workload: an experiment without `[workload]` gets a stand-in the gateway
/// ignores once it is open to clients (the resolver needs one to build the spec).
fn stand_in_workload() -> toml::Value {
    let mut t = toml::Table::new();
    t.insert("rate_rps".into(), 1.0.into());
    t.insert("duration_s".into(), 1.0.into());
    toml::Value::Table(t)
}

pub fn run(a: ServeArgs) -> Result<()> {
    let mut table = experiment::read_table::<crate::config::Experiment>(&a.experiment, &a.set)?;
    table.entry("workload").or_insert_with(stand_in_workload);
    let loaded = experiment::resolve(&a.experiment, table, None)?;
    let section = replay_section(&loaded)?;
    let p = Prepared { spec: loaded.spec.clone(), loaded, section };
    let dir = a.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(format!("{}-serve", p.loaded.experiment.name)));
    let base = std::env::current_dir()?;
    let backends = RealBackends::new(&p.section, &base);
    let mut meter = open_meter(&p, &base)?;
    let remote = p.spec.servers.iter().any(|s| crate::spec::BackendKind::is_triton(&s.backend));
    let opts = ServeOptions {
        listen: a.listen,
        drain_timeout: Duration::from_secs_f64(p.section.drain_timeout_s.max(0.0)),
        max_body_bytes: a.max_body_bytes,
        http_threads: a.http_threads,
        health_urls: if remote { vec![p.section.triton_url.clone()] } else { Vec::new() },
        workers: ReplayOptions {
            client_threads: p.section.client_threads,
            early_exit_backend: p.early_exit_backend(),
            ..ReplayOptions::default()
        },
    };
    let stop = stop_flag();
    let started = manifest::now_rfc3339();
    let t0 = Instant::now();
    let res = serve::run(&p.spec, p.loaded.experiment.seed, &backends, meter.as_mut(), &opts, stop, |addr| {
        eprintln!("basin serve: listening on http://{addr} (models: {})", model_names(&p));
    })?;
    let extra = serde_json::json!({
        "energy_meter": res.meter,
        "failed_reasons": res.failed_reasons,
        "ignored_reconfigs": res.ignored_reconfigs,
        "listen": a.listen.to_string(),
        "gateway_overhead_ms": res.gateway_overhead_ms,
    });
    let mut output = res.output;
    output.summary.mode = "serve".into();
    write_run(&dir, &p, &output, "serve", started, t0.elapsed().as_secs_f64(), extra)?;
    std::fs::write(dir.join(FINAL_METRICS), res.final_metrics)?;
    print!("{}", crate::cli::simulate::human_summary(&output, output.summary.duration_s));
    println!("wrote {}", dir.display());
    Ok(())
}

/// `/metrics` as it stood when the run closed, written beside the run.
pub const FINAL_METRICS: &str = "metrics.prom";

fn model_names(p: &Prepared) -> String {
    let mut names: Vec<&str> = p.spec.servers.iter().flat_map(|s| s.variants.iter().map(|v| v.model.as_str())).collect();
    names.dedup();
    names.join(", ")
}
