//! Real-time replay: an experiment's trace and controller against real backends, on the wall
//! clock, producing the simulation's output schema (`mode = "replay"`).
//!
//! The driver mirrors `sim` step by step (see that module's docs for a request's path):
//! - arrivals come from [`ArrivalGen`] on the same "arrivals" stream of the same seed, and each
//!   request draws its quality sample from the "quality" stream, so simulation and replay see
//!   the same requests carrying the same samples; a sample is a row of the labelled data set
//!   ([`data::Dataset`]) whose real features are sent to the real models, and correctness is the
//!   real model's answer against the label;
//! - one **gateway thread** (the caller's) owns the controller (built by
//!   `ControllerConfig::build`, called exactly where the simulator calls it), the router and,
//!   for servers executed locally (Path A: ONNX Runtime in process, or the mock), the very
//!   [`Server`] batcher state machine the simulator uses, with wall-clock time since the start
//!   as `SimTime`; batches it dispatches run on one **worker thread per instance**;
//! - servers whose backend batches by itself (Path B: `backend = "triton"`) receive every
//!   admitted request as its own KServe v2 request from a pool of **client threads**, so
//!   Triton's real dynamic batcher forms the batches; batch sizes come from Triton's statistics;
//! - the cascade's early-exit model runs for real on a small pool of threads, and its real
//!   confidence is the controller's uncertainty signal;
//! - completions return to the gateway over one channel.
//!
//! Arrivals are open loop: a request's arrival time is its *scheduled* time, so a late
//! dispatch shows up in its latency (no coordinated omission) and in the driver's own schedule
//! error (actual − scheduled dispatch time), reported as p50/p99/max. Nothing is dropped or
//! silently delayed: a request that fails (backend error, dead or stalled server) is recorded
//! with `decision = failed` and a reason, and the run goes on. At the end (or on a stop
//! request, e.g. Ctrl-C) arrivals stop, in-flight requests are drained until a deadline, and
//! whatever is still in flight then is recorded as failed.

pub mod data;
pub mod load_profile;
pub mod real;
pub mod validate;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use rand::RngExt;
use serde::Serialize;

use crate::core::{RngStreams, SimDuration, SimTime, StreamRng};
use crate::hw::backend::{BackendError, InferenceBackend};
use crate::hw::meter::{EnergyMeter, MeterInfo};
use crate::metrics::{BatchRecords, EnergyBreakdown, RequestRecords, RequestRow, RunOutput, SeriesAccumulator, SummaryCollector};
use crate::model::arrivals::{ArrivalGen, ArrivalSpec};
use crate::model::controller::{CompletionView, Controller, Decision, GatewayView, Reconfig, RequestView, ServerView};
use crate::model::request::{Outcome, QueuedRequest};
use crate::model::routing::Router;
use crate::model::server::Server;
use crate::spec::SimSpec;

pub use data::Dataset;

/// Triton-style batch counters of a remotely batched model (cumulative).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchCounts {
    /// (batch size, executions) pairs.
    pub by_size: Vec<(u64, u64)>,
}

/// Opens the backends a replay runs on.
pub trait BackendFactory: Send + Sync {
    /// A fresh backend running `model` through `backend` (the experiment's backend name).
    fn open(&self, model: &str, backend: &str) -> Result<Box<dyn InferenceBackend>, BackendError>;
    /// Whether `backend` batches requests itself (each request is sent on its own).
    fn batches_remotely(&self, backend: &str) -> bool { backend == "triton" }
    /// Cumulative batch counters of a remotely batched model, if the backend exposes them.
    fn batch_counts(&self, _model: &str, _backend: &str) -> Option<BatchCounts> { None }
}

/// How a replay runs (besides the experiment).
#[derive(Clone, Debug)]
pub struct ReplayOptions {
    /// After the last arrival, how long in-flight requests may take before they are failed.
    pub drain_timeout: Duration,
    /// Threads running the early-exit model.
    pub early_exit_threads: usize,
    /// Client threads per remotely batched server (default: enough for every instance's
    /// largest batch twice over, at least 8).
    pub client_threads: Option<usize>,
    /// Set (e.g. by Ctrl-C) to stop arrivals and drain.
    pub stop: Arc<AtomicBool>,
    /// Spin instead of sleeping for the last part of every wait.
    pub spin: Duration,
    /// The backend the early-exit model runs on (the experiment's `early_exit.backend`).
    pub early_exit_backend: String,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            drain_timeout: Duration::from_secs(30),
            early_exit_threads: 2,
            client_threads: None,
            stop: Arc::new(AtomicBool::new(false)),
            spin: Duration::from_micros(150),
            early_exit_backend: "onnxruntime".into(),
        }
    }
}

/// The driver's own timing error: actual − scheduled arrival dispatch, in ms.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ScheduleError {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
    /// Arrivals measured.
    pub n: u64,
    /// Offered arrival rate over the run (requests/s).
    pub offered_rps: f64,
}

/// What a replay adds to the common schema (written into summary.json as extension keys).
#[derive(Clone, Debug, Serialize)]
pub struct ReplayExtras {
    pub schedule_error_ms: ScheduleError,
    pub meter: MeterInfo,
    /// Failed requests by reason.
    pub failed_reasons: BTreeMap<String, u64>,
    /// Stopped early (stop flag / Ctrl-C).
    pub interrupted: bool,
    /// Reconfigurations a remote server cannot apply at run time (Triton's configuration is
    /// fixed when it starts), counted and ignored.
    pub ignored_reconfigs: u64,
    /// Requests whose correctness came from a real model output against the data set label.
    pub scored_requests: u64,
}

pub struct ReplayResult {
    pub output: RunOutput,
    pub extras: ReplayExtras,
}

/// The spec a replay (and the simulation it is compared with) runs: the experiment's workload
/// rate-scaled by `rate_scale`, time-compressed by `time_scale` (arrival times divided; the
/// arrivals are drawn once from the seed's "arrivals" stream and listed, so both runs see
/// exactly the same times) and cut at `duration_s` seconds of (compressed) time.
pub fn scaled_spec(spec: &SimSpec, seed: u64, time_scale: f64, rate_scale: f64, duration_s: Option<f64>) -> Result<SimSpec> {
    if !(time_scale.is_finite() && time_scale > 0.0) || !(rate_scale.is_finite() && rate_scale > 0.0) {
        bail!("--time-scale and --rate-scale must be finite and > 0 (got {time_scale}, {rate_scale})");
    }
    let mut s = spec.clone();
    match &mut s.arrivals {
        ArrivalSpec::Rate { rates_rps, .. } => rates_rps.iter_mut().for_each(|r| *r *= rate_scale),
        ArrivalSpec::Times { arrivals_s } => arrivals_s.iter_mut().for_each(|t| *t /= rate_scale),
    }
    if time_scale != 1.0 {
        let streams = RngStreams::new(seed);
        let mut g = ArrivalGen::new(&s.arrivals, streams.stream("arrivals"), s.max_requests);
        let mut times = Vec::new();
        while let Some(t) = g.next_arrival() {
            times.push(t.as_secs_f64() / time_scale);
        }
        s.arrivals = ArrivalSpec::Times { arrivals_s: times };
    }
    if let Some(d) = duration_s {
        match &mut s.arrivals {
            ArrivalSpec::Rate { rates_rps, .. } => rates_rps.truncate(d.ceil() as usize),
            ArrivalSpec::Times { arrivals_s } => arrivals_s.retain(|&t| t < d),
        }
    }
    if s.arrivals.expected_requests() <= 0.0 {
        bail!("the scaled workload has no requests");
    }
    Ok(s)
}

// ---------------------------------------------------------------------------------------------
// worker threads

#[derive(Clone, Copy, Debug)]
enum Tag {
    EarlyExit { slot: u32 },
    Batch { server: usize, instance: u32 },
    Remote { server: usize, slot: u32 },
}

struct Job {
    tag: Tag,
    /// Which of the worker's backends (model variant) runs it.
    variant: usize,
    samples: Vec<u32>,
}

/// (predicted class, confidence) per sample; `scored` when the inputs were the real samples.
struct JobResult {
    preds: Vec<(u32, f32)>,
    scored: bool,
}

struct Msg {
    tag: Tag,
    res: Result<JobResult, String>,
}

fn run_job(backends: &mut [Box<dyn InferenceBackend>], data: Option<&Dataset>, job: &Job) -> Result<JobResult, String> {
    let b = backends.get_mut(job.variant).ok_or("no backend for this model variant")?;
    let n = job.samples.len();
    let input = data.and_then(|d| d.input_for(b.inputs(), &job.samples));
    let scored = input.is_some();
    match &input {
        Some(i) => b.set_inputs(i).map_err(|e| e.to_string())?,
        None => b.prepare(n).map_err(|e| e.to_string())?,
    }
    let out = b.infer().map_err(|e| e.to_string())?;
    if out.batch_size != n {
        return Err(format!("the backend answered {} rows for a batch of {n}", out.batch_size));
    }
    Ok(JobResult { preds: (0..n).map(|i| (out.argmax(i) as u32, out.confidence(i))).collect(), scored })
}

/// A thread owning `backends` that serves jobs from `rx` (shared by a pool, or its own).
fn spawn_worker(name: String, mut backends: Vec<Box<dyn InferenceBackend>>, data: Option<Arc<Dataset>>, rx: Arc<Mutex<Receiver<Job>>>, tx: Sender<Msg>) -> Result<()> {
    thread::Builder::new().name(name).spawn(move || {
        loop {
            let job = {
                let Ok(guard) = rx.lock() else { return };
                match guard.recv() {
                    Ok(j) => j,
                    Err(_) => return,
                }
            };
            let res = run_job(&mut backends, data.as_deref(), &job);
            if tx.send(Msg { tag: job.tag, res }).is_err() {
                return;
            }
        }
    })?;
    Ok(())
}

struct Pool {
    tx: Sender<Job>,
}

fn open_all(f: &dyn BackendFactory, models: &[String], backend: &str) -> Result<Vec<Box<dyn InferenceBackend>>> {
    models.iter().map(|m| f.open(m, backend).map_err(|e| anyhow::anyhow!("opening model `{m}` on backend `{backend}`: {e}"))).collect()
}

fn pool(name: &str, n: usize, f: &dyn BackendFactory, models: &[String], backend: &str, data: Option<Arc<Dataset>>, tx: &Sender<Msg>) -> Result<Pool> {
    let (jtx, jrx) = mpsc::channel();
    let jrx = Arc::new(Mutex::new(jrx));
    for i in 0..n.max(1) {
        spawn_worker(format!("{name}-{i}"), open_all(f, models, backend)?, data.clone(), jrx.clone(), tx.clone())?;
    }
    Ok(Pool { tx: jtx })
}

// ---------------------------------------------------------------------------------------------
// the gateway

enum Exec {
    /// The gateway batches (the simulator's Server) and workers execute.
    Local { workers: Vec<Option<Sender<Job>>>, backend: String, models: Vec<String> },
    /// The backend batches; every request is sent on its own.
    Remote { pool: Pool, outstanding: u64 },
}

struct Srv {
    server: Server,
    exec: Exec,
}

/// A request that is somewhere outside the gateway (early-exit model, remote server).
#[derive(Clone, Copy)]
struct Flight {
    r: QueuedRequest,
    start: SimTime,
    variant: usize,
}

struct Gateway<'a> {
    spec: &'a SimSpec,
    opts: &'a ReplayOptions,
    factory: &'a dyn BackendFactory,
    t0: Instant,
    data: Option<Arc<Dataset>>,
    arrivals: ArrivalGen<'a>,
    next_arrival: Option<SimTime>,
    servers: Vec<Srv>,
    views: Vec<ServerView>,
    controller: Box<dyn Controller>,
    router: Router,
    series: SeriesAccumulator,
    summary: SummaryCollector,
    quality_rng: StreamRng,
    requests: Option<RequestRecords>,
    batches: Option<BatchRecords>,
    rx: Receiver<Msg>,
    tx: Sender<Msg>,
    ee: Option<Pool>,
    ee_path: u16,
    /// Requests in the early-exit model or at a remote server, by slot.
    flights: Vec<Option<Flight>>,
    free: Vec<u32>,
    in_flight: u64,
    queued: u64,
    in_service: u64,
    next_id: u64,
    sched_err_ns: Vec<u64>,
    failed_reasons: BTreeMap<String, u64>,
    ignored_reconfigs: u64,
    scored: u64,
    next_tick: Option<SimTime>,
    meter: &'a mut dyn EnergyMeter,
    meter_last_j: f64,
    meter_last_t: SimTime,
    meter_total_j: f64,
    power_w: f64,
    next_sample: SimTime,
    reconfigs: Vec<Reconfig>,
}

/// Runs `spec` in real time. `spec` should already be scaled ([`scaled_spec`]).
pub fn run(spec: &SimSpec, seed: u64, factory: &dyn BackendFactory, data: Option<Arc<Dataset>>, meter: &mut dyn EnergyMeter, opts: &ReplayOptions) -> Result<ReplayResult> {
    let streams = RngStreams::new(seed);
    let (tx, rx) = mpsc::channel();
    // open every backend before the clock starts
    let mut servers = Vec::new();
    for (i, s) in spec.servers.iter().enumerate() {
        let models: Vec<String> = s.variants.iter().map(|v| v.model.clone()).collect();
        let exec = if factory.batches_remotely(&s.backend) {
            let n = opts.client_threads.unwrap_or((2 * s.instances * s.max_batch_size).max(8) as usize);
            Exec::Remote { pool: pool(&format!("client{i}"), n, factory, &models, &s.backend, data.clone(), &tx)?, outstanding: 0 }
        } else {
            let mut workers = Vec::new();
            for k in 0..s.instances {
                workers.push(Some(local_worker(i, k, factory, &models, &s.backend, data.clone(), &tx)?));
            }
            Exec::Local { workers, backend: s.backend.clone(), models }
        };
        servers.push(Srv { server: Server::new(s.clone(), streams.stream_indexed("service", i as u64)), exec });
    }
    let ee = match &spec.early_exit {
        Some(e) => {
            Some(pool("early-exit", opts.early_exit_threads, factory, std::slice::from_ref(&e.model), &opts.early_exit_backend, data.clone(), &tx)?)
        }
        None => None,
    };
    let model_names: Vec<String> = {
        let mut m: Vec<String> = spec.servers.iter().flat_map(|s| s.variants.iter().map(|v| v.model.clone())).collect();
        if let Some(e) = &spec.early_exit { m.push(e.model.clone()); }
        m.sort();
        m.dedup();
        m
    };
    let mut path_names: Vec<String> = spec.servers.iter().map(|s| s.name.clone()).collect();
    let ee_path = path_names.len() as u16;
    path_names.push("early_exit".into());
    let ctx = spec.controller_context();
    let views = servers.iter().map(|s| s.server.view()).collect();
    let counts0: Vec<Option<BatchCounts>> = spec.servers.iter().map(|s| {
        if factory.batches_remotely(&s.backend) { factory.batch_counts(s.variants[0].model.as_str(), &s.backend) } else { None }
    }).collect();
    let r0 = meter.read().map_err(|e| anyhow::anyhow!("reading the energy meter ({}): {e}", meter.info().name))?;
    let mut g = Gateway {
        spec,
        opts,
        factory,
        t0: Instant::now(),
        data,
        arrivals: ArrivalGen::new(&spec.arrivals, streams.stream("arrivals"), spec.max_requests),
        next_arrival: None,
        servers,
        views,
        controller: spec.controller.build(&ctx),
        router: Router::new(spec.routing.clone(), &ctx).map_err(|e| anyhow::anyhow!("routing: {e}"))?,
        series: SeriesAccumulator::new(spec.interval.0, spec.pue, spec.carbon.clone()),
        summary: SummaryCollector::new(spec.slo),
        quality_rng: streams.stream("quality"),
        requests: spec.record_requests.then(|| RequestRecords { path_names, model_names, ..Default::default() }),
        batches: spec.record_batches.then(|| BatchRecords { server_names: spec.servers.iter().map(|s| s.name.clone()).collect(), ..Default::default() }),
        rx,
        tx,
        ee,
        ee_path,
        flights: Vec::new(),
        free: Vec::new(),
        in_flight: 0,
        queued: 0,
        in_service: 0,
        next_id: 0,
        sched_err_ns: Vec::new(),
        failed_reasons: BTreeMap::new(),
        ignored_reconfigs: 0,
        scored: 0,
        next_tick: None,
        meter,
        meter_last_j: r0.energy_j,
        meter_last_t: SimTime::ZERO,
        meter_total_j: 0.0,
        power_w: 0.0,
        next_sample: SimTime::ZERO + spec.interval,
        reconfigs: Vec::new(),
    };
    let r0_j = r0.energy_j;
    g.meter_last_j = r0_j;
    g.next_arrival = g.arrivals.next_arrival();
    g.next_tick = g.controller.tick_interval().map(|iv| SimTime::ZERO + iv);
    g.t0 = Instant::now();
    let interrupted = g.run_loop();
    let counts1: Vec<Option<BatchCounts>> = spec.servers.iter().map(|s| {
        if factory.batches_remotely(&s.backend) { factory.batch_counts(s.variants[0].model.as_str(), &s.backend) } else { None }
    }).collect();
    for (a, b) in counts0.iter().zip(&counts1) {
        if let (Some(a), Some(b)) = (a, b) {
            for &(size, n) in &b.by_size {
                let before = a.by_size.iter().find(|x| x.0 == size).map_or(0, |x| x.1);
                for _ in 0..n.saturating_sub(before) {
                    g.summary.batch(size as u32);
                }
            }
        }
    }
    Ok(g.finish(interrupted))
}

fn local_worker(server: usize, k: u32, f: &dyn BackendFactory, models: &[String], backend: &str, data: Option<Arc<Dataset>>, tx: &Sender<Msg>) -> Result<Sender<Job>> {
    let (jtx, jrx) = mpsc::channel();
    spawn_worker(format!("s{server}-w{k}"), open_all(f, models, backend)?, data, Arc::new(Mutex::new(jrx)), tx.clone())?;
    Ok(jtx)
}

impl Gateway<'_> {
    fn now(&self) -> SimTime { SimTime(self.t0.elapsed().as_nanos() as u64) }

    fn advance(&mut self, now: SimTime) {
        let ctl = &self.controller;
        self.series.advance(now, &|t| ctl.tau(t));
    }

    /// Returns whether the run was interrupted.
    fn run_loop(&mut self) -> bool {
        let mut interrupted = false;
        let mut drain_deadline: Option<SimTime> = None;
        loop {
            if !interrupted && self.opts.stop.load(Ordering::Relaxed) && self.next_arrival.is_some() {
                interrupted = true;
                self.next_arrival = None;
            }
            // completions first
            while let Ok(m) = self.rx.try_recv() {
                self.on_msg(m);
            }
            let now = self.now();
            if now >= self.next_sample {
                self.sample_meter(self.next_sample);
                self.next_sample = self.next_sample + self.spec.interval;
                continue;
            }
            if let Some(t) = self.next_arrival
                && now >= t
            {
                self.sched_err_ns.push(now.since(t).0);
                self.next_arrival = self.arrivals.next_arrival();
                self.on_arrival(t, now);
                continue;
            }
            if let Some(t) = self.next_tick
                && now >= t
            {
                self.on_tick(now);
                continue;
            }
            for s in 0..self.servers.len() {
                if let Some(t) = self.servers[s].server.timer_pending
                    && now >= t
                {
                    self.advance(now);
                    self.servers[s].server.timer_pending = None;
                    self.pump(s, now);
                }
            }
            let busy = self.in_flight + self.queued + self.in_service > 0;
            if self.next_arrival.is_none() {
                if !busy {
                    break;
                }
                let dl = *drain_deadline.get_or_insert(now + SimDuration(self.opts.drain_timeout.as_nanos() as u64));
                if now >= dl {
                    self.fail_all_in_flight(now, "drain timeout: still in flight when the replay ended");
                    break;
                }
            } else {
                drain_deadline = None;
            }
            // the next deadline
            let mut next = self.next_sample;
            if let Some(t) = self.next_arrival { next = next.min(t); }
            if let Some(t) = self.next_tick { next = next.min(t); }
            for s in &self.servers {
                if let Some(t) = s.server.timer_pending { next = next.min(t); }
            }
            if let Some(d) = drain_deadline { next = next.min(d); }
            let spin = self.opts.spin.as_nanos() as u64;
            let now = self.now();
            if next.0 > now.0 + spin {
                let wait = Duration::from_nanos(next.0 - now.0 - spin).min(Duration::from_millis(50));
                match self.rx.recv_timeout(wait) {
                    Ok(m) => self.on_msg(m),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => {}
                }
            } else {
                // spin the last stretch for precision, still taking completions
                while self.now() < next {
                    if let Ok(m) = self.rx.try_recv() {
                        self.on_msg(m);
                        break;
                    }
                    std::hint::spin_loop();
                }
            }
        }
        interrupted
    }

    fn sample_meter(&mut self, at: SimTime) {
        // energy of the interval ending at `at` goes into that interval (lump before advancing)
        match self.meter.read() {
            Ok(r) => {
                let d = (r.energy_j - self.meter_last_j).max(0.0);
                let dt = at.since(self.meter_last_t).as_secs_f64();
                self.power_w = if dt > 0.0 { d / dt } else { self.power_w };
                self.meter_last_j = r.energy_j;
                self.meter_last_t = at;
                self.meter_total_j += d;
                self.series.lump(d);
            }
            Err(e) => {
                tracing::warn!("energy meter read failed at {:.3} s: {e}", at.as_secs_f64());
            }
        }
        self.advance(at);
    }

    fn slot(&mut self, f: Flight) -> u32 {
        self.in_flight += 1;
        match self.free.pop() {
            Some(s) => { self.flights[s as usize] = Some(f); s }
            None => { self.flights.push(Some(f)); (self.flights.len() - 1) as u32 }
        }
    }

    fn take(&mut self, slot: u32) -> Option<Flight> {
        let f = self.flights.get_mut(slot as usize)?.take()?;
        self.free.push(slot);
        self.in_flight -= 1;
        Some(f)
    }

    fn on_arrival(&mut self, t: SimTime, now: SimTime) {
        self.advance(now);
        self.series.arrival();
        self.router.observe_arrival(t);
        self.summary.requests += 1;
        let id = self.next_id;
        self.next_id += 1;
        let sample = match self.spec.quality.as_ref().map(|q| q.samples()) {
            Some(Some(n)) => self.quality_rng.random_range(0..n as u32),
            Some(None) => self.quality_rng.random::<u32>(),
            None => 0,
        };
        let r = QueuedRequest { id, arrival: t, enqueued: t, sample, pre_energy_j: 0.0 };
        match &self.ee {
            Some(_) => {
                let slot = self.slot(Flight { r, start: now, variant: 0 });
                let job = Job { tag: Tag::EarlyExit { slot }, variant: 0, samples: vec![sample] };
                if self.ee.as_ref().is_some_and(|p| p.tx.send(job).is_err()) {
                    self.take(slot);
                    self.fail(&r, now, None, "early_exit: worker pool gone".into());
                }
            }
            None => self.decide(r, None, now),
        }
    }

    fn record(&mut self, row: RequestRow) {
        if let Some(rec) = &mut self.requests {
            rec.push(row);
        }
    }

    fn fail(&mut self, r: &QueuedRequest, now: SimTime, path: Option<u16>, reason: String) {
        self.summary.failed += 1;
        let key = reason.split(':').next().unwrap_or("").trim().chars().take(60).collect::<String>();
        *self.failed_reasons.entry(key).or_default() += 1;
        self.record(RequestRow {
            id: r.id,
            arrival_s: r.arrival.as_secs_f64(),
            decision: Outcome::Failed,
            path,
            model: None,
            batch_size: None,
            start_s: None,
            end_s: Some(now.as_secs_f64()),
            latency_ms: None,
            energy_j: None,
            correct: None,
            reason: Some(reason),
        });
    }

    fn model_index(&self, name: &str) -> Option<u16> {
        self.requests.as_ref().and_then(|r| r.model_names.iter().position(|m| m == name).map(|i| i as u16))
    }

    fn correct(&mut self, sample: u32, pred: u32, scored: bool) -> Option<bool> {
        if !scored {
            return None;
        }
        let d = self.data.as_ref()?;
        self.scored += 1;
        Some(d.label(sample) == pred)
    }

    /// The early-exit answer (pred, confidence, scored) is ready, or there is none.
    fn decide(&mut self, mut r: QueuedRequest, ee: Option<(u32, f32, bool)>, now: SimTime) {
        self.advance(now);
        let uncertainty = ee.map(|(_, c, _)| 1.0 - c as f64);
        let req = RequestView { id: r.id, arrival: r.arrival, uncertainty };
        let view = GatewayView { now, servers: &self.views, carbon_g_per_kwh: self.series.intensity(), power_w: self.power_w, slo: self.spec.slo };
        let decision = self.controller.decide(&req, &view);
        let target = match decision {
            Decision::Skip if self.spec.early_exit.is_some() => {
                let (pred, _, scored) = ee.unwrap_or((0, 0.0, false));
                let correct = self.correct(r.sample, pred, scored);
                self.summary.skipped += 1;
                self.summary.answered(correct);
                self.series.skipped();
                let m = self.spec.early_exit.as_ref().and_then(|e| self.model_index(&e.model));
                self.record(RequestRow {
                    id: r.id, arrival_s: r.arrival.as_secs_f64(), decision: Outcome::Skipped, path: Some(self.ee_path), model: m,
                    batch_size: None, start_s: Some(r.arrival.as_secs_f64()), end_s: Some(now.as_secs_f64()),
                    latency_ms: Some(now.since(r.arrival).as_millis_f64()), energy_j: None, correct, reason: None,
                });
                return;
            }
            Decision::Skip | Decision::Reject => {
                let why = if decision == Decision::Skip { "skip without an early-exit model" } else { "controller" };
                self.summary.rejected += 1;
                self.series.rejected();
                self.record(RequestRow {
                    id: r.id, arrival_s: r.arrival.as_secs_f64(), decision: Outcome::Rejected, path: None, model: None, batch_size: None,
                    start_s: None, end_s: None, latency_ms: None, energy_j: None, correct: None, reason: Some(why.into()),
                });
                return;
            }
            Decision::Admit => self.router.route(now, &self.views),
            Decision::AdmitTo(s) => s.min(self.servers.len() - 1),
        };
        r.enqueued = now;
        let remote = matches!(self.servers[target].exec, Exec::Remote { .. });
        let full = if remote {
            let q = self.views[target].queue_len;
            self.servers[target].server.spec.max_queue_size.is_some_and(|m| q >= m)
        } else {
            self.servers[target].server.enqueue(r).is_err()
        };
        if full {
            self.summary.rejected += 1;
            self.summary.rejected_queue_full += 1;
            self.series.rejected();
            self.record(RequestRow {
                id: r.id, arrival_s: r.arrival.as_secs_f64(), decision: Outcome::Rejected, path: Some(target as u16), model: None,
                batch_size: None, start_s: None, end_s: None, latency_ms: None, energy_j: None, correct: None, reason: Some("queue_full".into()),
            });
            return;
        }
        self.summary.admitted += 1;
        self.series.admitted();
        if remote {
            self.servers[target].server.note_arrival(now);
            let variant = self.servers[target].server.variant();
            let slot = self.slot(Flight { r, start: now, variant });
            let sent = match &mut self.servers[target].exec {
                Exec::Remote { pool, outstanding } => {
                    *outstanding += 1;
                    pool.tx.send(Job { tag: Tag::Remote { server: target, slot }, variant, samples: vec![r.sample] }).is_ok()
                }
                Exec::Local { .. } => unreachable!(),
            };
            if !sent {
                self.take(slot);
                self.remote_done(target);
                self.fail(&r, now, Some(target as u16), "client pool gone".into());
                return;
            }
            self.in_service += 1;
            self.refresh_remote(target);
            self.series.set_in_service(self.in_service);
        } else {
            self.queued += 1;
            self.series.set_queue_len(self.queued);
            self.pump(target, now);
        }
    }

    fn remote_done(&mut self, s: usize) {
        if let Exec::Remote { outstanding, .. } = &mut self.servers[s].exec {
            *outstanding = outstanding.saturating_sub(1);
        }
        self.refresh_remote(s);
    }

    /// The gateway's estimate of a remote server's state: requests sent and not answered, the
    /// first instances × max_batch_size of them counted as in service, the rest as queued.
    fn refresh_remote(&mut self, s: usize) {
        let Exec::Remote { outstanding, .. } = &self.servers[s].exec else { return };
        let srv = &self.servers[s].server;
        let cap = (srv.instances() * srv.max_batch_size()) as u64;
        let in_service = (*outstanding).min(cap);
        let v = &mut self.views[s];
        v.queue_len = outstanding.saturating_sub(cap) as usize;
        v.in_service = in_service as u32;
        v.busy_instances = (in_service.div_ceil(srv.max_batch_size() as u64) as u32).min(srv.instances());
    }

    /// Starts every batch the server's rule allows now on its workers, and arms its timer.
    fn pump(&mut self, s: usize, now: SimTime) {
        if !matches!(self.servers[s].exec, Exec::Local { .. }) {
            return;
        }
        let mut started = false;
        while let Some(d) = self.servers[s].server.try_dispatch(now) {
            started = true;
            let srv = &mut self.servers[s];
            let samples: Vec<u32> = srv.server.batch(d.instance).iter().map(|r| r.sample).collect();
            let variant = srv.server.variant();
            self.queued -= d.size as u64;
            self.in_service += d.size as u64;
            let Exec::Local { workers, backend, models } = &mut srv.exec else { unreachable!() };
            let i = d.instance as usize;
            if workers.len() <= i {
                workers.resize_with(i + 1, || None);
            }
            if workers[i].is_none() {
                match local_worker(s, d.instance, self.factory, models, backend, self.data.clone(), &self.tx) {
                    Ok(w) => workers[i] = Some(w),
                    Err(e) => tracing::warn!("cannot start worker {i} of server {s}: {e}"),
                }
            }
            let job = Job { tag: Tag::Batch { server: s, instance: d.instance }, variant, samples };
            let ok = workers[i].as_ref().is_some_and(|w| w.send(job).is_ok());
            if !ok {
                let _ = self.tx.send(Msg { tag: Tag::Batch { server: s, instance: d.instance }, res: Err("worker unavailable".into()) });
            }
        }
        if started {
            self.series.set_queue_len(self.queued);
            self.series.set_in_service(self.in_service);
        }
        let srv = &mut self.servers[s].server;
        if srv.timer_pending.is_none()
            && let Some(at) = srv.timer_deadline(now)
        {
            srv.timer_pending = Some(at);
        }
        self.refresh_view(s);
    }

    fn refresh_view(&mut self, s: usize) {
        let srv = &self.servers[s].server;
        let v = &mut self.views[s];
        v.queue_len = srv.queue_len();
        v.in_service = srv.in_service();
        v.busy_instances = srv.busy_instances();
        if v.instances != srv.instances() || v.variant != srv.variant() || v.max_batch_size != srv.max_batch_size() {
            *v = srv.view();
        }
    }

    fn on_msg(&mut self, m: Msg) {
        let now = self.now();
        self.advance(now);
        match m.tag {
            Tag::EarlyExit { slot } => {
                let Some(f) = self.take(slot) else { return };
                match m.res {
                    Ok(j) => {
                        let (p, c) = j.preds[0];
                        self.decide(f.r, Some((p, c, j.scored)), now);
                    }
                    Err(e) => self.fail(&f.r, now, Some(self.ee_path), format!("early_exit: {e}")),
                }
            }
            Tag::Remote { server, slot } => {
                let Some(f) = self.take(slot) else { return };
                self.in_service -= 1;
                self.series.set_in_service(self.in_service);
                let est_b = self.views[server].in_service.clamp(1, self.views[server].max_batch_size.max(1));
                self.remote_done(server);
                match m.res {
                    Ok(j) => {
                        let (p, _) = j.preds[0];
                        let variant = f.variant;
                        // the cost table's estimate, scaled like the simulator's by the load
                        // profile's energy factor at the current rate (same controller input)
                        let factor = self.servers[server].server.load_at(now).map_or(1.0, |l| l.energy_factor);
                        let share = factor * self.spec.servers[server].variants[variant].costs[est_b as usize - 1].mean_energy().0 / est_b as f64;
                        self.answered(server, variant, &f.r, f.start, now, None, p, j.scored, share);
                        self.series.completed(1);
                    }
                    Err(e) => self.fail(&f.r, now, Some(server as u16), format!("{}: {e}", self.spec.servers[server].backend)),
                }
            }
            Tag::Batch { server, instance } => {
                let done = self.servers[server].server.complete(instance);
                let batch: Vec<QueuedRequest> = self.servers[server].server.batch(instance).to_vec();
                let size = batch.len() as u32;
                self.summary.batch(size);
                self.in_service -= size as u64;
                let costs = &self.spec.servers[server].variants[done.variant].costs;
                let batch_j = costs[(size as usize).clamp(1, costs.len()) - 1].mean_energy().0;
                if let Some(b) = &mut self.batches {
                    b.push(server as u16, instance, done.start.as_secs_f64(), now.as_secs_f64(), size, batch_j * self.spec.pue);
                }
                match m.res {
                    Ok(j) => {
                        for (r, (p, _)) in batch.iter().zip(j.preds) {
                            self.answered(server, done.variant, r, done.start, now, Some(size), p, j.scored, batch_j / size as f64);
                        }
                        self.series.completed(size as u64);
                    }
                    Err(e) => {
                        let reason = format!("{}: {e}", self.spec.servers[server].backend);
                        for r in &batch {
                            self.fail(r, now, Some(server as u16), reason.clone());
                        }
                    }
                }
                self.series.set_in_service(self.in_service);
                self.pump(server, now);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn answered(&mut self, s: usize, variant: usize, r: &QueuedRequest, start: SimTime, now: SimTime, batch_size: Option<u32>, pred: u32, scored: bool, share_j: f64) {
        let latency = now.since(r.arrival);
        self.summary.completed(latency);
        let correct = self.correct(r.sample, pred, scored);
        self.summary.answered(correct);
        let model = self.model_index(&self.spec.servers[s].variants[variant].model);
        self.record(RequestRow {
            id: r.id,
            arrival_s: r.arrival.as_secs_f64(),
            decision: Outcome::Admitted,
            path: Some(s as u16),
            model,
            batch_size,
            start_s: Some(start.as_secs_f64()),
            end_s: Some(now.as_secs_f64()),
            latency_ms: Some(latency.as_millis_f64()),
            energy_j: Some(share_j * self.spec.pue),
            correct,
            reason: None,
        });
        let cv = CompletionView { server: s, arrival: r.arrival, completion: now, batch_size: batch_size.unwrap_or(1), energy_j: share_j };
        let view = GatewayView { now, servers: &self.views, carbon_g_per_kwh: self.series.intensity(), power_w: self.power_w, slo: self.spec.slo };
        self.controller.on_completion(&cv, &view);
    }

    fn on_tick(&mut self, now: SimTime) {
        self.advance(now);
        let mut out = std::mem::take(&mut self.reconfigs);
        out.clear();
        {
            let view = GatewayView { now, servers: &self.views, carbon_g_per_kwh: self.series.intensity(), power_w: self.power_w, slo: self.spec.slo };
            self.controller.on_tick(&view, &mut out);
        }
        for rc in out.drain(..) {
            let s = match rc {
                Reconfig::SetVariant { server, .. } | Reconfig::SetMaxBatchSize { server, .. } | Reconfig::SetInstances { server, .. } => server,
            };
            let Some(srv) = self.servers.get_mut(s) else { continue };
            let remote = matches!(srv.exec, Exec::Remote { .. });
            match rc {
                Reconfig::SetVariant { variant, .. } => srv.server.set_variant(variant),
                Reconfig::SetMaxBatchSize { max_batch_size, .. } => {
                    if remote { self.ignored_reconfigs += 1 } else { srv.server.set_max_batch_size(max_batch_size) }
                }
                Reconfig::SetInstances { instances, .. } => {
                    if remote {
                        self.ignored_reconfigs += 1;
                    } else {
                        // real workers warm up by opening their backend on first use
                        for i in srv.server.set_instances(instances) {
                            srv.server.instance_ready(i);
                        }
                    }
                }
            }
        }
        self.reconfigs = out;
        for s in 0..self.servers.len() {
            if matches!(self.servers[s].exec, Exec::Remote { .. }) {
                self.refresh_remote(s);
                let v = self.servers[s].server.view();
                self.views[s].variant = v.variant;
                self.views[s].batch_service_s = v.batch_service_s;
            } else {
                self.pump(s, now);
            }
        }
        let busy = self.queued + self.in_service + self.in_flight > 0;
        self.next_tick = match self.controller.tick_interval() {
            Some(iv) if self.next_arrival.is_some() || busy => Some(now + iv),
            _ => None,
        };
    }

    fn fail_all_in_flight(&mut self, now: SimTime, reason: &str) {
        let flights: Vec<u32> = (0..self.flights.len() as u32).filter(|&i| self.flights[i as usize].is_some()).collect();
        for slot in flights {
            if let Some(f) = self.take(slot) {
                self.fail(&f.r, now, None, reason.to_string());
            }
        }
        for s in 0..self.servers.len() {
            let stuck = drain_server(&mut self.servers[s].server);
            for r in stuck {
                self.fail(&r, now, Some(s as u16), reason.to_string());
            }
            if let Exec::Remote { outstanding, .. } = &mut self.servers[s].exec {
                *outstanding = 0;
            }
        }
        self.queued = 0;
        self.in_service = 0;
    }

    fn finish(mut self, interrupted: bool) -> ReplayResult {
        let now = self.now();
        let end = if interrupted { now } else { now.max(self.spec.arrivals.end()) };
        // the last partial interval's energy
        match self.meter.read() {
            Ok(r) => {
                let d = (r.energy_j - self.meter_last_j).max(0.0);
                self.meter_total_j += d;
                self.series.lump(d);
            }
            Err(e) => tracing::warn!("final energy meter read failed: {e}"),
        }
        let ctl = &self.controller;
        let (timeseries, _, co2_g) = self.series.finish(end, &|t| ctl.tau(t));
        let pue = self.spec.pue;
        let duration_s = end.as_secs_f64();
        let mut s = self.summary.summarize(duration_s);
        s.mode = "replay".into();
        s.name = self.spec.name.clone();
        s.energy_j = self.meter_total_j * pue;
        s.energy_kwh = s.energy_j / crate::core::units::JOULES_PER_KWH;
        s.energy_j_per_request = (s.requests > 0).then(|| s.energy_j / s.requests as f64);
        s.mean_power_w = if duration_s > 0.0 { s.energy_j / duration_s } else { 0.0 };
        s.co2_g = co2_g;
        s.co2_g_per_request = (s.requests > 0).then(|| co2_g / s.requests as f64);
        let iv = self.spec.interval.as_secs_f64();
        let w = |v: &[f64]| -> f64 {
            let mut total = 0.0;
            let mut tw = 0.0;
            for (i, x) in v.iter().enumerate() {
                let len = if i + 1 == v.len() { duration_s - timeseries.t_s[i] } else { iv };
                total += x * len;
                tw += len;
            }
            if tw > 0.0 { total / tw } else { 0.0 }
        };
        s.mean_queue_len = w(&timeseries.queue_len);
        s.carbon_g_per_kwh_mean = w(&timeseries.carbon_g_per_kwh);
        let estimated = self.meter.info().estimated;
        s.energy = EnergyBreakdown { active_j: s.energy_j, idle_j: 0.0, early_exit_j: 0.0, reconfig_j: 0.0, attributed_j: 0.0, pue, estimated };
        let mut requests = self.requests.take();
        if let Some(r) = &mut requests {
            r.sort_by_id();
        }
        let mut e = std::mem::take(&mut self.sched_err_ns);
        e.sort_unstable();
        let q = |p: f64| -> f64 { if e.is_empty() { 0.0 } else { e[((e.len() - 1) as f64 * p).round() as usize] as f64 / 1e6 } };
        let last_arrival = self.spec.arrivals.end().as_secs_f64().min(duration_s).max(1e-9);
        let schedule = ScheduleError {
            p50: q(0.5),
            p99: q(0.99),
            max: e.last().map_or(0.0, |&x| x as f64 / 1e6),
            mean: if e.is_empty() { 0.0 } else { e.iter().map(|&x| x as f64).sum::<f64>() / e.len() as f64 / 1e6 },
            n: e.len() as u64,
            offered_rps: e.len() as f64 / last_arrival,
        };
        let extras = ReplayExtras {
            schedule_error_ms: schedule,
            meter: self.meter.info().clone(),
            failed_reasons: std::mem::take(&mut self.failed_reasons),
            interrupted,
            ignored_reconfigs: self.ignored_reconfigs,
            scored_requests: self.scored,
        };
        ReplayResult { output: RunOutput { summary: s, timeseries, requests, batches: self.batches.take(), events: 0 }, extras }
    }
}

/// Every request a local server still holds (queued or in service), for failing them.
fn drain_server(srv: &mut Server) -> Vec<QueuedRequest> {
    let mut out = Vec::new();
    for i in 0..srv.instance_slots() as u32 {
        if srv.is_busy(i) {
            out.extend_from_slice(srv.batch(i));
            srv.complete(i);
        }
    }
    out.extend(srv.drain_queue());
    out
}
