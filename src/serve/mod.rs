//! `basin serve`: the gateway live — the third driver of the same request path, after the
//! simulator and the replay. Real clients speak the KServe v2 inference protocol over HTTP (the
//! protocol Triton speaks, so tritonclient, perf_analyzer and curl work unchanged); every
//! request goes through the [`Gateway`] (early exit, the experiment's controller, the router,
//! the servers' batchers) and its real backends; `/metrics` shows the run live in the
//! Prometheus text format; SIGTERM or SIGINT drains in-flight requests and the run is written in
//! the simulation's schema (`mode = "serve"`).
//!
//! Threads: the **gateway thread** (the caller's) owns the gateway, as the replay's driver does
//! ([`driver`]); the replay's worker pools execute batches and early-exit answers on the
//! clients' tensors ([`payloads`]); a small tokio runtime runs the HTTP server ([`http`]), whose
//! handlers parse and validate a request, hand it to the gateway thread's inbox and wait for
//! its answer. The pure core knows none of this: the gateway only gained external arrivals
//! ([`Gateway::arrive`]) and a queue of how each of them ended ([`Gateway::take_outcomes`]).

pub(crate) mod driver;
pub(crate) mod http;
pub mod kserve;
pub mod metrics;
pub mod payloads;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::gateway::Gateway;
use crate::hw::backend::TensorSpec;
use crate::hw::backend::triton::{Timeouts, TritonClient};
use crate::hw::meter::{EnergyMeter, MeterInfo};
use crate::metrics::RunOutput;
use crate::replay::{BackendFactory, Executors, InputSource, MeterState, Msg, ReplayOptions};
use crate::spec::SimSpec;
use driver::{GatewayThread, Inbound};
use metrics::LiveMetrics;
use payloads::Payloads;

/// How `basin serve` runs (besides the experiment).
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    /// After a stop, how long in-flight requests may take before they are failed.
    pub drain_timeout: Duration,
    /// Larger request bodies are refused with 413.
    pub max_body_bytes: usize,
    /// Threads of the HTTP runtime.
    pub http_threads: usize,
    /// Triton servers (base URLs) that `/v2/health/ready` follows.
    pub health_urls: Vec<String>,
    /// Worker pools, as in replay.
    pub workers: ReplayOptions,
}

/// What the HTTP tasks share with the gateway thread.
pub struct Shared {
    models: BTreeMap<String, ModelMeta>,
    inbox: Sender<Inbound>,
    /// Wakes the gateway thread (it waits on its backends' answers).
    wake: Sender<Msg>,
    metrics: LiveMetrics,
    ready: AtomicBool,
}

struct ModelMeta {
    inputs: Vec<TensorSpec>,
    classes: usize,
}

pub struct ServeResult {
    pub output: RunOutput,
    pub failed_reasons: BTreeMap<String, u64>,
    pub ignored_reconfigs: u64,
    pub meter: MeterInfo,
    /// Facility energy (J), the energy counter's last value.
    pub energy_j: f64,
    /// `/metrics` as it stood when the run closed.
    pub final_metrics: String,
    pub gateway_overhead_ms: Overhead,
}

/// The gateway's own latency over answered requests: from the HTTP handler's receipt of the
/// parsed request to the answer handed back to it, minus the backends' time (ms).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Overhead {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    pub n: u64,
}

impl Overhead {
    pub(crate) fn of(h: &Histogram<u64>) -> Overhead {
        let ms = |ns: u64| ns as f64 / 1e6;
        Overhead { p50: ms(h.value_at_quantile(0.5)), p99: ms(h.value_at_quantile(0.99)), max: ms(h.max()), n: h.len() }
    }
}

/// Inputs and class count of every model a client may name, from one opened backend each.
fn model_metadata(spec: &SimSpec, factory: &dyn BackendFactory) -> Result<BTreeMap<String, ModelMeta>> {
    let mut models = BTreeMap::new();
    for s in &spec.servers {
        for v in &s.variants {
            if models.contains_key(&v.model) {
                continue;
            }
            let mut b = factory.open(&v.model, &s.backend).with_context(|| format!("opening model `{}` on `{}`", v.model, s.backend))?;
            b.prepare(1).with_context(|| format!("model `{}`: preparing a warm-up input", v.model))?;
            let classes = b.infer().with_context(|| format!("model `{}`: a warm-up inference", v.model))?.num_classes;
            models.insert(v.model.clone(), ModelMeta { inputs: b.inputs().to_vec(), classes });
        }
    }
    Ok(models)
}

/// Serves `spec` until `stop` is set, then drains and closes the
/// run. `listening` is called with the bound address once clients can connect.
pub fn run(
    spec: &SimSpec,
    seed: u64,
    factory: &dyn BackendFactory,
    meter: &mut dyn EnergyMeter,
    opts: &ServeOptions,
    stop: Arc<AtomicBool>,
    listening: impl FnOnce(SocketAddr),
) -> Result<ServeResult> {
    let models = model_metadata(spec, factory)?;
    let (answers_tx, answers) = mpsc::channel();
    let (inbox_tx, inbox) = mpsc::channel();
    let payloads = Arc::new(Payloads::default());
    let backends = Executors::open(spec, factory, Some(payloads.clone() as Arc<dyn InputSource>), &opts.workers, answers_tx.clone())?;
    let mut gateway = Gateway::new(spec, seed, true, &backends).map_err(anyhow::Error::msg)?;
    gateway.open_to_clients();
    let info = meter.info().clone();
    let meter = MeterState::start(meter, spec.interval)?;
    let servers = spec.servers.iter().map(|s| s.name.clone()).collect();
    let shared = Arc::new(Shared {
        models,
        inbox: inbox_tx,
        wake: answers_tx,
        metrics: LiveMetrics::new(servers, &info.name, info.estimated),
        ready: AtomicBool::new(true),
    });
    let listener = std::net::TcpListener::bind(opts.listen).with_context(|| format!("listening on {}", opts.listen))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let t0 = Instant::now();
    let pue = spec.pue;
    let gateway_thread = GatewayThread {
        gateway,
        backends,
        meter,
        answers,
        inbox,
        payloads,
        shared: shared.clone(),
        t0,
        pue,
        interval: spec.interval,
        meter_estimated: info.estimated,
        early_exit_model: spec.early_exit.as_ref().map(|e| e.model.clone()).unwrap_or_default(),
    };
    let served = thread::scope(|scope| -> Result<driver::Served> {
        let http = {
            let (shared, stop) = (shared.clone(), stop.clone());
            thread::Builder::new().name("http".into()).spawn_scoped(scope, move || http_server(listener, shared, stop, opts))?
        };
        if !opts.health_urls.is_empty() {
            let (shared, stop) = (shared.clone(), stop.clone());
            thread::Builder::new().name("health".into()).spawn_scoped(scope, move || follow_health(&opts.health_urls, &shared, &stop))?;
        }
        listening(addr);
        let served = gateway_thread.run(&stop, opts.drain_timeout);
        // the HTTP server may have failed on its own: stop the rest either way
        stop.store(true, Ordering::Relaxed);
        match http.join() {
            Ok(r) => r?,
            Err(_) => anyhow::bail!("the HTTP server thread panicked"),
        }
        Ok(served)
    })?;
    let final_metrics = shared.metrics.encode();
    let mut output = served.totals.output;
    output.summary.seed = seed;
    output.events = 0;
    Ok(ServeResult {
        output,
        failed_reasons: served.totals.failed_reasons,
        ignored_reconfigs: served.totals.ignored_reconfigs,
        meter: info,
        energy_j: served.energy_j,
        final_metrics,
        gateway_overhead_ms: served.overhead,
    })
}

/// How often the stop flag and the backends' health are looked at.
const POLL: Duration = Duration::from_millis(100);

/// Runs the HTTP server until a signal or `stop`, then lets in-flight requests finish (bounded
/// by the drain timeout and a little more).
fn http_server(listener: std::net::TcpListener, shared: Arc<Shared>, stop: Arc<AtomicBool>, opts: &ServeOptions) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(opts.http_threads.max(1)).enable_all().build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let app = http::router(shared.clone(), opts.max_body_bytes);
        let (begin_shutdown, shutdown) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = shutdown.await;
                })
                .await
        });
        wait_for_stop(&stop).await;
        stop.store(true, Ordering::Relaxed);
        let _ = shared.wake.send(Msg::wake());
        let _ = begin_shutdown.send(());
        match tokio::time::timeout(opts.drain_timeout + Duration::from_secs(5), server).await {
            Ok(joined) => joined?.context("the HTTP server")?,
            Err(_) => tracing::warn!("HTTP connections still open after the drain timeout: closing them"),
        }
        Ok(())
    })
}

/// `stop` is set by SIGTERM/SIGINT (the CLI registers them) or by the caller.
async fn wait_for_stop(stop: &AtomicBool) {
    let mut poll = tokio::time::interval(POLL);
    while !stop.load(Ordering::Relaxed) {
        poll.tick().await;
    }
}

/// `/v2/health/ready` is true while every Triton server answers ready.
fn follow_health(urls: &[String], shared: &Shared, stop: &AtomicBool) {
    let timeouts = Timeouts { connect: Duration::from_millis(500), request: Duration::from_secs(1) };
    let clients: Result<Vec<TritonClient>, _> = urls.iter().map(|u| TritonClient::new(u, timeouts)).collect();
    while !stop.load(Ordering::Relaxed) {
        let ready = clients.as_ref().is_ok_and(|cs| cs.iter().all(|c| c.ready().unwrap_or(false)));
        shared.ready.store(ready, Ordering::Relaxed);
        thread::sleep(POLL);
    }
}
