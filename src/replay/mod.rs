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
pub mod real;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::core::{RngStreams, SimDuration, SimTime};
use crate::gateway::{Backends, CostTable, EarlyExitAnswer, Execution, FailReason, Flow, Gateway, Wake};
use crate::hw::backend::stats::{self, ServerSnapshot};
use crate::hw::backend::{BackendError, InferOutput, InferenceBackend, InputData, TensorSpec};
use crate::hw::meter::{EnergyMeter, MeterInfo};
use crate::hw::probe::{self, HostProbe, ProbeSummary};
use crate::metrics::RunOutput;
use crate::model::arrivals::{ArrivalGen, ArrivalSpec};
use crate::model::request::QueuedRequest;
use crate::spec::SimSpec;

pub use data::Dataset;

/// Opens the backends a replay runs on.
pub trait BackendFactory: Send + Sync {
    /// A fresh backend running `model` through `backend` (the experiment's backend name).
    fn open(&self, model: &str, backend: &str) -> Result<Box<dyn InferenceBackend>, BackendError>;
    /// Whether `backend` batches requests itself (each request is sent on its own).
    fn batches_remotely(&self, backend: &str) -> bool {
        crate::spec::BackendKind::named_batches_remotely(backend)
    }
    /// Cumulative statistics of a remotely batched model, if the backend exposes them.
    fn server_snapshot(&self, _model: &str, _backend: &str) -> Option<ServerSnapshot> {
        None
    }
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
    /// The backends are controlled-service models whose answers are placeholders: confidence
    /// and correctness come from the quality table (validation level 1).
    pub modelled_answers: bool,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            drain_timeout: Duration::from_secs(30),
            early_exit_threads: 2,
            client_threads: None,
            stop: Arc::new(AtomicBool::new(false)),
            spin: Duration::from_micros(150),
            early_exit_backend: crate::spec::BackendKind::OnnxRuntime.name().into(),
            modelled_answers: false,
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
    /// The host speed probe over the run (empty on a virtual clock).
    pub host_probe: ProbeSummary,
}

pub struct ReplayResult {
    pub output: RunOutput,
    pub extras: ReplayExtras,
    /// Per server: the remote server's statistics over the run (Path B, where it exposes them).
    pub remote_stats: Vec<Option<ServerSnapshot>>,
    /// The run's time zero on `CLOCK_MONOTONIC` (ns): the clock Triton's batch logs use.
    pub started_monotonic_ns: u64,
}

/// The spec a replay (and the simulation it is compared with) runs: the experiment's workload
/// rate-scaled by `rate_scale`, time-compressed by `time_scale` (arrival times divided; the
/// arrivals are drawn once from the seed's "arrivals" stream and listed, so both runs see
/// exactly the same times) and cut at `duration_s` seconds of (compressed) time.
pub fn scaled_spec(spec: &SimSpec, seed: u64, time_scale: f64, rate_scale: f64, duration_s: Option<f64>) -> Result<SimSpec> {
    let positive = |x: f64| x.is_finite() && x > 0.0;
    if !positive(time_scale) || !positive(rate_scale) {
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
pub(crate) enum Tag {
    EarlyExit {
        slot: u32,
    },
    Batch {
        server: usize,
        instance: u32,
    },
    Remote {
        server: usize,
        slot: u32,
    },
    /// No answer: another thread put work in the driver's inbox (`basin serve`'s clients).
    #[cfg_attr(not(feature = "serve"), allow(dead_code))]
    Wake,
}

/// Where workers find the inputs of the samples they run: the labelled data set (replay), or
/// the clients' tensors (`basin serve`, where a sample is the driver's ticket).
pub(crate) trait InputSource: Send + Sync {
    /// The batch for `samples`, if this source has inputs for the model's `specs`.
    fn input_for(&self, specs: &[TensorSpec], samples: &[u32]) -> Option<InputData>;
}

impl InputSource for Dataset {
    fn input_for(&self, specs: &[TensorSpec], samples: &[u32]) -> Option<InputData> {
        Dataset::input_for(self, specs, samples)
    }
}

type Inputs = Option<Arc<dyn InputSource>>;

struct Job {
    tag: Tag,
    /// Which of the worker's backends (model variant) runs it.
    variant: usize,
    samples: Vec<u32>,
    /// The gateway's id of a request sent on its own (remote servers).
    request_id: Option<u64>,
}

/// (predicted class, confidence) per sample; `scored` when the inputs were the real samples.
pub(crate) struct JobResult {
    preds: Vec<(u32, f32)>,
    scored: bool,
    /// The class probabilities themselves (what `basin serve` answers with).
    #[cfg_attr(not(feature = "serve"), allow(dead_code))]
    pub(crate) output: InferOutput,
}

/// A backend's answer, back at the gateway thread.
pub(crate) struct Msg {
    pub(crate) tag: Tag,
    pub(crate) samples: Vec<u32>,
    pub(crate) res: Result<JobResult, String>,
}

impl Msg {
    /// Wakes the driver to look at its inbox.
    #[cfg_attr(not(feature = "serve"), allow(dead_code))]
    pub(crate) fn wake() -> Msg {
        Msg { tag: Tag::Wake, samples: Vec::new(), res: Err(String::new()) }
    }
}

fn run_job(backends: &mut [Box<dyn InferenceBackend>], data: Option<&dyn InputSource>, job: &Job) -> Result<JobResult, String> {
    let b = backends.get_mut(job.variant).ok_or("no backend for this model variant")?;
    let n = job.samples.len();
    let input = data.and_then(|d| d.input_for(b.inputs(), &job.samples));
    let scored = input.is_some();
    match &input {
        Some(i) => b.set_inputs(i).map_err(|e| e.to_string())?,
        None => b.prepare(n).map_err(|e| e.to_string())?,
    }
    b.set_request_id(job.request_id);
    let out = b.infer().map_err(|e| e.to_string())?;
    if out.batch_size != n {
        return Err(format!("the backend answered {} rows for a batch of {n}", out.batch_size));
    }
    Ok(JobResult { preds: (0..n).map(|i| (out.argmax(i) as u32, out.confidence(i))).collect(), scored, output: out })
}

/// A thread owning `backends` that serves jobs from `rx` (shared by a pool, or its own).
fn spawn_worker(
    name: String,
    mut backends: Vec<Box<dyn InferenceBackend>>,
    data: Inputs,
    rx: Arc<Mutex<Receiver<Job>>>,
    tx: Sender<Msg>,
) -> Result<()> {
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
            if tx.send(Msg { tag: job.tag, samples: job.samples, res }).is_err() {
                return;
            }
        }
    })?;
    Ok(())
}

fn open_all(f: &dyn BackendFactory, models: &[String], backend: &str) -> Result<Vec<Box<dyn InferenceBackend>>> {
    models.iter().map(|m| f.open(m, backend).map_err(|e| anyhow::anyhow!("opening model `{m}` on backend `{backend}`: {e}"))).collect()
}

/// `n` threads serving one job queue.
fn pool(
    name: &str,
    n: usize,
    f: &dyn BackendFactory,
    models: &[String],
    backend: &str,
    data: Inputs,
    tx: &Sender<Msg>,
) -> Result<Sender<Job>> {
    let (jtx, jrx) = mpsc::channel();
    let jrx = Arc::new(Mutex::new(jrx));
    for i in 0..n.max(1) {
        spawn_worker(format!("{name}-{i}"), open_all(f, models, backend)?, data.clone(), jrx.clone(), tx.clone())?;
    }
    Ok(jtx)
}

// ---------------------------------------------------------------------------------------------
// the real backends, as the gateway sees them

enum Exec {
    /// The gateway batches (the simulator's batcher) and one worker thread per instance executes.
    Local { workers: Vec<Option<Sender<Job>>>, backend: String, models: Vec<String> },
    /// The backend batches; every request is sent on its own from a pool of client threads.
    Remote { clients: Sender<Job> },
}

/// Worker threads and client pools executing what the gateway hands them.
pub(crate) struct Executors<'a> {
    factory: &'a dyn BackendFactory,
    data: Inputs,
    servers: Vec<Exec>,
    early_exit: Option<Sender<Job>>,
    tx: Sender<Msg>,
}

impl<'a> Executors<'a> {
    /// Opens every backend (before the clock starts).
    pub(crate) fn open(
        spec: &SimSpec,
        factory: &'a dyn BackendFactory,
        data: Inputs,
        opts: &ReplayOptions,
        tx: Sender<Msg>,
    ) -> Result<Self> {
        let mut servers = Vec::new();
        for (i, s) in spec.servers.iter().enumerate() {
            let models: Vec<String> = s.variants.iter().map(|v| v.model.clone()).collect();
            servers.push(if factory.batches_remotely(&s.backend) {
                let n = opts.client_threads.unwrap_or((2 * s.instances * s.max_batch_size).max(8) as usize);
                Exec::Remote { clients: pool(&format!("client{i}"), n, factory, &models, &s.backend, data.clone(), &tx)? }
            } else {
                let mut workers = Vec::new();
                for k in 0..s.instances {
                    workers.push(Some(local_worker(i, k, factory, &models, &s.backend, data.clone(), &tx)?));
                }
                Exec::Local { workers, backend: s.backend.clone(), models }
            });
        }
        let early_exit = match &spec.early_exit {
            Some(e) => Some(pool(
                "early-exit",
                opts.early_exit_threads,
                factory,
                std::slice::from_ref(&e.model),
                &opts.early_exit_backend,
                data.clone(),
                &tx,
            )?),
            None => None,
        };
        Ok(Executors { factory, data, servers, early_exit, tx })
    }
}

/// The worker thread of instance `k` of local server `server` (a pool of one).
fn local_worker(
    server: usize,
    k: u32,
    f: &dyn BackendFactory,
    models: &[String],
    backend: &str,
    data: Inputs,
    tx: &Sender<Msg>,
) -> Result<Sender<Job>> {
    pool(&format!("s{server}-w{k}"), 1, f, models, backend, data, tx)
}

impl Backends for Executors<'_> {
    fn batches_remotely(&self, server: usize) -> bool {
        matches!(self.servers.get(server), Some(Exec::Remote { .. }))
    }

    fn runs_early_exit(&self) -> bool {
        true
    }

    fn start_batch(&mut self, server: usize, instance: u32, variant: usize, batch: &[QueuedRequest]) -> Execution {
        let tag = Tag::Batch { server, instance };
        let samples: Vec<u32> = batch.iter().map(|r| r.sample).collect();
        let Some(Exec::Local { workers, backend, models }) = self.servers.get_mut(server) else {
            let _ = self.tx.send(Msg { tag, samples, res: Err("not a locally batched server".into()) });
            return Execution::Pending;
        };
        let i = instance as usize;
        if workers.len() <= i {
            workers.resize_with(i + 1, || None);
        }
        if workers[i].is_none() {
            // an instance added by reconfiguration warms up by opening its backend on first use
            match local_worker(server, instance, self.factory, models, backend, self.data.clone(), &self.tx) {
                Ok(w) => workers[i] = Some(w),
                Err(e) => tracing::warn!("cannot start worker {i} of server {server}: {e}"),
            }
        }
        let job = Job { tag, variant, samples, request_id: None };
        let unsent = match &workers[i] {
            Some(w) => w.send(job).err().map(|mpsc::SendError(job)| job),
            None => Some(job),
        };
        if let Some(job) = unsent {
            let _ = self.tx.send(Msg { tag, samples: job.samples, res: Err("worker unavailable".into()) });
        }
        Execution::Pending
    }

    fn send_remote(&mut self, server: usize, slot: u32, variant: usize, r: &QueuedRequest) -> Result<(), FailReason> {
        let Some(Exec::Remote { clients }) = self.servers.get(server) else { return Err(FailReason::ClientPoolGone) };
        let job = Job { tag: Tag::Remote { server, slot }, variant, samples: vec![r.sample], request_id: Some(r.id) };
        clients.send(job).map_err(|_| FailReason::ClientPoolGone)
    }

    fn run_early_exit(&mut self, slot: u32, r: &QueuedRequest) -> Result<(), FailReason> {
        let job = Job { tag: Tag::EarlyExit { slot }, variant: 0, samples: vec![r.sample], request_id: None };
        match &self.early_exit {
            Some(p) => p.send(job).map_err(|_| FailReason::EarlyExitPoolGone),
            None => Err(FailReason::EarlyExitPoolGone),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// clocks

/// What the replay loop waits on: the wall clock and the backends' answers, or a virtual clock.
trait Clock {
    /// A real clock: requests can be in flight at backends, and a run can stall.
    const REAL: bool;
    fn now(&self) -> SimTime;
    /// A backend's answer that has already arrived.
    fn try_recv(&mut self) -> Option<Msg>;
    /// Waits until `deadline`, or until a backend answers (returned) if that comes first.
    fn wait(&mut self, deadline: SimTime) -> Option<Msg>;
}

struct WallClock {
    t0: Instant,
    rx: Receiver<Msg>,
    /// Spin instead of sleeping for the last part of every wait.
    spin: Duration,
}

/// The longest single sleep, so a stop request is seen promptly.
const MAX_SLEEP: Duration = Duration::from_millis(50);

impl Clock for WallClock {
    const REAL: bool = true;

    fn now(&self) -> SimTime {
        SimTime(self.t0.elapsed().as_nanos() as u64)
    }

    fn try_recv(&mut self) -> Option<Msg> {
        self.rx.try_recv().ok()
    }

    fn wait(&mut self, deadline: SimTime) -> Option<Msg> {
        let spin = self.spin.as_nanos() as u64;
        let now = self.now();
        if deadline.0 > now.0 + spin {
            let wait = Duration::from_nanos(deadline.0 - now.0 - spin).min(MAX_SLEEP);
            // a timeout or a closed channel both mean: nothing arrived before the deadline
            return self.rx.recv_timeout(wait).ok();
        }
        // spin the last stretch for precision, still taking answers
        while self.now() < deadline {
            if let Ok(m) = self.rx.try_recv() {
                return Some(m);
            }
            std::hint::spin_loop();
        }
        None
    }
}

/// Time that moves only when the loop waits: every wait ends exactly at its deadline.
struct VirtualClock {
    now: SimTime,
}

impl Clock for VirtualClock {
    const REAL: bool = false;

    fn now(&self) -> SimTime {
        self.now
    }

    fn try_recv(&mut self) -> Option<Msg> {
        None
    }

    fn wait(&mut self, deadline: SimTime) -> Option<Msg> {
        self.now = self.now.max(deadline);
        None
    }
}

// ---------------------------------------------------------------------------------------------
// the loop

/// The meter as the loop reads it, once per interval.
pub(crate) struct MeterState<'a> {
    meter: &'a mut dyn EnergyMeter,
    last_j: f64,
    last_t: SimTime,
    pub(crate) total_j: f64,
    pub(crate) power_w: f64,
    pub(crate) next_sample: SimTime,
}

impl<'a> MeterState<'a> {
    /// Starts reading `meter` (its first sample `interval` after the clock's zero).
    pub(crate) fn start(meter: &'a mut dyn EnergyMeter, interval: SimDuration) -> Result<Self> {
        let r0 = meter.read().map_err(|e| anyhow::anyhow!("reading the energy meter ({}): {e}", meter.info().name))?;
        Ok(MeterState {
            meter,
            last_j: r0.energy_j,
            last_t: SimTime::ZERO,
            total_j: 0.0,
            power_w: 0.0,
            next_sample: SimTime::ZERO + interval,
        })
    }

    /// The energy of the interval ending at `at` goes into that interval.
    pub(crate) fn sample(&mut self, gateway: &mut Gateway<'_>, at: SimTime) {
        match self.meter.read() {
            Ok(r) => {
                let d = (r.energy_j - self.last_j).max(0.0);
                let dt = at.since(self.last_t).as_secs_f64();
                if dt > 0.0 {
                    self.power_w = d / dt;
                }
                self.last_j = r.energy_j;
                self.last_t = at;
                self.total_j += d;
                gateway.meter_reading(at, d, self.power_w);
            }
            Err(e) => {
                tracing::warn!("energy meter read failed at {:.3} s: {e}", at.as_secs_f64());
                gateway.advance(at);
            }
        }
    }

    /// The last partial interval's energy.
    pub(crate) fn close(&mut self, gateway: &mut Gateway<'_>) {
        match self.meter.read() {
            Ok(r) => {
                let d = (r.energy_j - self.last_j).max(0.0);
                self.total_j += d;
                gateway.meter_reading(self.last_t, d, self.power_w);
            }
            Err(e) => tracing::warn!("final energy meter read failed: {e}"),
        }
    }
}

/// What the loop measured besides the gateway's outputs.
#[derive(Default)]
struct LoopStats {
    interrupted: bool,
    /// Actual − scheduled arrival dispatch, ns.
    schedule_error: Option<Histogram<u64>>,
    schedule_error_sum_ns: u128,
}

struct Driver<'a, 'm, C: Clock, B: Backends> {
    gateway: Gateway<'a>,
    clock: C,
    backends: B,
    meter: Option<MeterState<'m>>,
    data: Option<Arc<Dataset>>,
    stats: LoopStats,
}

impl<C: Clock, B: Backends> Driver<'_, '_, C, B> {
    /// Runs until the gateway is done; a real clock also stops on `stop` and fails what is
    /// still in flight `drain_timeout` after the last arrival.
    fn run(&mut self, stop: &AtomicBool, drain_timeout: Duration, interval: SimDuration) {
        let mut drain_deadline: Option<SimTime> = None;
        loop {
            if C::REAL && !self.gateway.arrivals_done() && stop.load(Ordering::Relaxed) {
                self.stats.interrupted = true;
                self.gateway.stop_arrivals();
            }
            while let Some(m) = self.clock.try_recv() {
                self.deliver(m);
            }
            let now = self.clock.now();
            if let Some(m) = &mut self.meter
                && now >= m.next_sample
            {
                let at = m.next_sample;
                m.next_sample = at + interval;
                m.sample(&mut self.gateway, at);
                continue;
            }
            if let Some(due) = self.gateway.next_due()
                && due <= now
            {
                let Some((due, wake)) = self.gateway.pop() else { break };
                if wake == Wake::Arrival && !self.gateway.arrivals_done() {
                    self.note_schedule_error(now.since(due).0);
                }
                if self.gateway.handle(due, now, wake, &mut self.backends) == Flow::Finished {
                    break;
                }
                continue;
            }
            if C::REAL && self.gateway.arrivals_done() {
                if !self.gateway.busy() {
                    break;
                }
                let deadline = *drain_deadline.get_or_insert(now + SimDuration(drain_timeout.as_nanos() as u64));
                if now >= deadline {
                    self.gateway.fail_all(now, &FailReason::DrainTimeout);
                    break;
                }
            }
            let mut next = self.gateway.next_due();
            if let Some(m) = &self.meter {
                next = Some(next.map_or(m.next_sample, |t| t.min(m.next_sample)));
            }
            if let Some(d) = drain_deadline {
                next = Some(next.map_or(d, |t| t.min(d)));
            }
            let Some(next) = next else { break };
            if let Some(m) = self.clock.wait(next) {
                self.deliver(m);
            }
        }
    }

    fn note_schedule_error(&mut self, ns: u64) {
        let h = self.stats.schedule_error.get_or_insert_with(|| Histogram::new(3).expect("3 significant figures is valid"));
        // auto-resizing histogram: `record` grows the range instead of clamping
        let _ = h.record(ns.max(1));
        self.stats.schedule_error_sum_ns += ns as u128;
    }

    fn deliver(&mut self, m: Msg) {
        deliver(&mut self.gateway, &mut self.backends, self.data.as_deref(), self.clock.now(), m);
    }
}

/// Whether each prediction is right, where the inputs were the labelled samples.
fn correctness(data: Option<&Dataset>, samples: &[u32], j: &JobResult) -> Vec<Option<bool>> {
    match (data, j.scored) {
        (Some(d), true) => samples.iter().zip(&j.preds).map(|(&s, &(p, _))| Some(d.label(s) == p)).collect(),
        _ => vec![None; samples.len()],
    }
}

/// Hands a backend's answer to the gateway at `now` (`data`: the labels that score it).
pub(crate) fn deliver<B: Backends>(gateway: &mut Gateway<'_>, backends: &mut B, data: Option<&Dataset>, now: SimTime, m: Msg) {
    let backend_failure = |gateway: &Gateway<'_>, server: usize, error: String| FailReason::Backend {
        backend: gateway.servers()[server].spec.backend.clone(),
        error,
    };
    match m.tag {
        Tag::EarlyExit { slot } => {
            let answer = match m.res {
                Ok(j) => {
                    let correct = correctness(data, &m.samples, &j)[0];
                    Ok(EarlyExitAnswer { correct, confidence: j.preds[0].1 as f64 })
                }
                Err(e) => Err(FailReason::EarlyExit(e)),
            };
            gateway.early_exit_done(slot, now, answer, backends);
        }
        Tag::Remote { server, slot } => {
            let answer = match m.res {
                Ok(j) => Ok(correctness(data, &m.samples, &j)[0]),
                Err(e) => Err(backend_failure(gateway, server, e)),
            };
            gateway.remote_done(slot, now, answer);
        }
        Tag::Batch { server, instance } => match m.res {
            Ok(j) => {
                let correct = correctness(data, &m.samples, &j);
                gateway.batch_done(server, instance, now, Ok(&correct), backends);
            }
            Err(e) => {
                let reason = backend_failure(gateway, server, e);
                gateway.batch_done(server, instance, now, Err(reason), backends);
            }
        },
        Tag::Wake => {}
    }
}

/// Runs `spec` in real time. `spec` should already be scaled ([`scaled_spec`]).
pub fn run(
    spec: &SimSpec,
    seed: u64,
    factory: &dyn BackendFactory,
    data: Option<Arc<Dataset>>,
    meter: &mut dyn EnergyMeter,
    opts: &ReplayOptions,
) -> Result<ReplayResult> {
    let (tx, rx) = mpsc::channel();
    let backends = Executors::open(spec, factory, data.clone().map(|d| d as Arc<dyn InputSource>), opts, tx)?;
    let mut gateway = Gateway::new(spec, seed, true, &backends).map_err(anyhow::Error::msg)?;
    if opts.modelled_answers {
        gateway.model_answers();
    }
    let snapshots_before = remote_snapshots(spec, factory);
    let info = meter.info().clone();
    let meter = MeterState::start(meter, spec.interval)?;
    let clock = WallClock { t0: Instant::now(), rx, spin: opts.spin };
    let started_monotonic_ns = monotonic_ns();
    let host_probe = HostProbe::start(clock.t0)?;
    let mut driver = Driver { gateway, clock, backends, meter: Some(meter), data, stats: LoopStats::default() };
    driver.run(&opts.stop, opts.drain_timeout, spec.interval);
    let now = driver.clock.now();
    let probe_samples = host_probe.finish();
    let Driver { mut gateway, meter, stats, backends, .. } = driver;
    // closing the job queues ends the worker threads
    drop(backends);
    let mut meter = meter.expect("a real replay has a meter");
    meter.close(&mut gateway);
    let remote_stats: Vec<Option<ServerSnapshot>> = remote_snapshots(spec, factory)
        .iter()
        .zip(&snapshots_before)
        .map(|(after, before)| Some(stats::diff(after.as_ref()?, before.as_ref()?)))
        .collect();
    for d in remote_stats.iter().flatten() {
        for (size, n) in d.executions_by_size() {
            gateway.remote_batches(std::iter::repeat_n(size as u32, n as usize));
        }
    }
    let end = if stats.interrupted { now } else { now.max(spec.arrivals.end()) };
    let mut totals = gateway.finish(end, "replay", Some(meter.total_j), info.estimated);
    totals.output.summary.seed = seed;
    let ts = &mut totals.output.timeseries;
    ts.host_probe_us = Some(probe::per_interval(&probe_samples, &ts.t_s, spec.interval.as_secs_f64()));
    let last_arrival_s = spec.arrivals.end().as_secs_f64().min(end.as_secs_f64()).max(1e-9);
    Ok(ReplayResult {
        output: RunOutput { events: 0, ..totals.output },
        extras: ReplayExtras {
            schedule_error_ms: schedule_error(&stats, last_arrival_s),
            meter: info,
            failed_reasons: totals.failed_reasons,
            interrupted: stats.interrupted,
            ignored_reconfigs: totals.ignored_reconfigs,
            scored_requests: totals.scored_requests,
            host_probe: probe::summarize(&probe_samples),
        },
        remote_stats,
        started_monotonic_ns,
    })
}

/// `CLOCK_MONOTONIC` now, ns (what `Instant` reads on Linux, and Python's `time.monotonic_ns`).
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we own; CLOCK_MONOTONIC always exists on Linux
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Runs `spec` through the replay's loop on a virtual clock, with backends that execute every
/// batch and early-exit answer in the cost table's (drawn) time: `basin replay --virtual`.
/// Its outputs equal `sim::run`'s (validation level 0: the replay driver is the simulator).
pub fn run_virtual(spec: &SimSpec, seed: u64) -> Result<ReplayResult> {
    let backends = CostTable;
    let gateway = Gateway::new(spec, seed, false, &backends).map_err(anyhow::Error::msg)?;
    let mut driver =
        Driver { gateway, clock: VirtualClock { now: SimTime::ZERO }, backends, meter: None, data: None, stats: LoopStats::default() };
    driver.run(&AtomicBool::new(false), Duration::ZERO, spec.interval);
    let Driver { gateway, stats, .. } = driver;
    let end = gateway.last_activity().max(spec.arrivals.end());
    let events = gateway.delivered();
    let mut totals = gateway.finish(end, "replay_virtual", None, false);
    totals.output.summary.seed = seed;
    let meter = MeterInfo {
        kind: crate::hw::meter::MeterKind::CostTable,
        name: "cost table (modelled energy, virtual clock)".into(),
        estimated: spec.energy_estimated,
        domains: Vec::new(),
    };
    Ok(ReplayResult {
        output: RunOutput { events, ..totals.output },
        extras: ReplayExtras {
            schedule_error_ms: schedule_error(&stats, spec.arrivals.end().as_secs_f64().max(1e-9)),
            meter,
            failed_reasons: totals.failed_reasons,
            interrupted: false,
            ignored_reconfigs: totals.ignored_reconfigs,
            scored_requests: 0,
            host_probe: ProbeSummary::default(),
        },
        remote_stats: vec![None; spec.servers.len()],
        started_monotonic_ns: 0,
    })
}

fn remote_snapshots(spec: &SimSpec, factory: &dyn BackendFactory) -> Vec<Option<ServerSnapshot>> {
    spec.servers
        .iter()
        .map(
            |s| if factory.batches_remotely(&s.backend) { factory.server_snapshot(s.variants[0].model.as_str(), &s.backend) } else { None },
        )
        .collect()
}

/// The schedule error's percentiles, the same HDR-histogram quantiles as the summary's latency.
fn schedule_error(stats: &LoopStats, last_arrival_s: f64) -> ScheduleError {
    let Some(h) = &stats.schedule_error else { return ScheduleError::default() };
    let n = h.len();
    let ms = |ns: u64| ns as f64 / 1e6;
    ScheduleError {
        p50: ms(h.value_at_quantile(0.5)),
        p99: ms(h.value_at_quantile(0.99)),
        max: ms(h.max()),
        mean: stats.schedule_error_sum_ns as f64 / n.max(1) as f64 / 1e6,
        n,
        offered_rps: n as f64 / last_arrival_s,
    }
}
