//! The gateway: the request path, written once for every driver.
//!
//! Everything a request meets between its arrival and its answer lives here — the controller,
//! the router, the servers' batchers and the views a controller reads, the cascade's early-exit
//! step, the metrics façade and the energy ledger. The gateway is pure: it does no I/O and never
//! reads a clock. A driver gives it the time and the backends:
//! - `sim` pops the gateway's [`agenda`](Gateway::pop) on simulated time and executes batches
//!   with the cost table ([`CostTable`]);
//! - `replay` waits on the wall clock for the agenda's next entry or a backend's answer, and
//!   executes batches on real backends (worker threads, Triton clients); with `--virtual` it runs
//!   the same loop on a virtual clock with [`CostTable`] backends, and equals `sim` exactly.
//!
//! A request's path:
//! 1. it arrives and draws a quality sample (the "quality" stream);
//! 2. with a cascade, the early-exit model answers it first (its latency and energy are paid by
//!    every request), and the controller decides when that answer is ready; otherwise the
//!    controller decides on arrival;
//! 3. `Skip` answers it with the early-exit result, `Reject` drops it, `Admit` routes it to a
//!    server (rejected there if the queue is full);
//! 4. a local server's batcher starts batches on free instances; a remote server (Path B, a real
//!    Triton) forms batches itself; when a batch completes, every request in it is answered
//!    (after the server's transport overhead, when it is modelled).

pub mod energy;
pub mod metrics;
pub mod slots;

use rand::RngExt;

use crate::core::{Engine, RngStreams, SimDuration, SimTime, StreamRng};
use crate::metrics::RunOutput;
use crate::model::arrivals::ArrivalGen;
use crate::model::controller::{CompletionView, Controller, Decision, GatewayView, Reconfig, RequestView, ServerView};
use crate::model::request::QueuedRequest;
use crate::model::routing::Router;
use crate::model::server::Server;
use crate::spec::{BackendKind, SimSpec};

pub use energy::EnergyLedger;
pub use metrics::{FailReason, Metrics, RejectReason, RunEnergy, Served};
use slots::Slots;

/// An entry of the gateway's agenda: something due at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// The next arrival of the workload.
    Arrival,
    /// The modelled early-exit answer of the request parked in `slot` is ready.
    Decide { slot: u32 },
    /// A server's batching delay expires.
    Timer { server: u32 },
    /// A modelled batch on `instance` of `server` finishes.
    Complete { server: u32, instance: u32 },
    /// The controller's periodic tick.
    Tick,
    /// An instance added by reconfiguration has warmed up.
    Ready { server: u32, instance: u32 },
    /// The answer of the request parked in `slot` reaches the gateway (modelled transport).
    Respond { slot: u32 },
    /// The request parked in `slot` reaches its server's queue (observed transport).
    Deliver { slot: u32 },
}

/// How a backend executes work the gateway hands it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Execution {
    /// In modelled time: the cost table's service time, drawn by the batcher.
    Modelled,
    /// For real: the answer comes back through [`Gateway::batch_done`].
    Pending,
}

/// What a driver executes for the gateway.
pub trait Backends {
    /// Whether `server` batches by itself (Path B: each admitted request is sent on its own).
    fn batches_remotely(&self, server: usize) -> bool;
    /// Whether the early-exit model runs for real (answered through
    /// [`Gateway::early_exit_done`]) rather than in modelled time.
    fn runs_early_exit(&self) -> bool;
    /// Starts a batch the gateway's batcher formed on `instance` of local server `server`.
    fn start_batch(&mut self, server: usize, instance: u32, variant: usize, batch: &[QueuedRequest]) -> Execution;
    /// Sends one request to remote server `server` (answered through [`Gateway::remote_done`]).
    fn send_remote(&mut self, server: usize, slot: u32, variant: usize, request: &QueuedRequest) -> Result<(), FailReason>;
    /// Runs the early-exit model on one request (answered through [`Gateway::early_exit_done`]).
    fn run_early_exit(&mut self, slot: u32, request: &QueuedRequest) -> Result<(), FailReason>;
}

/// Backends that execute everything in modelled time from the cost table: the simulator's, and
/// the mock backends of `basin replay --virtual`.
#[derive(Clone, Copy, Debug, Default)]
pub struct CostTable;

impl Backends for CostTable {
    fn batches_remotely(&self, _: usize) -> bool {
        false
    }
    fn runs_early_exit(&self) -> bool {
        false
    }
    #[inline]
    fn start_batch(&mut self, _: usize, _: u32, _: usize, _: &[QueuedRequest]) -> Execution {
        Execution::Modelled
    }
    fn send_remote(&mut self, _: usize, _: u32, _: usize, _: &QueuedRequest) -> Result<(), FailReason> {
        Err(FailReason::Backend { backend: "cost table".into(), error: "the cost table batches every server itself".into() })
    }
    fn run_early_exit(&mut self, _: u32, _: &QueuedRequest) -> Result<(), FailReason> {
        Err(FailReason::EarlyExit("the cost table models the early-exit model".into()))
    }
}

/// The early-exit model's answer on one request.
#[derive(Clone, Copy, Debug)]
pub struct EarlyExitAnswer {
    /// Whether its prediction is right (`None` when the inputs were not the labelled sample).
    pub correct: Option<bool>,
    pub confidence: f64,
}

/// How a request placed with [`Gateway::arrive`] ended (`basin serve` answers its client with
/// it): taken with [`Gateway::take_outcomes`].
#[derive(Clone, Debug, PartialEq)]
pub enum ClientOutcome {
    /// Answered by `server`'s model.
    Served {
        server: u16,
    },
    /// Answered by the early-exit model (the controller skipped the full model).
    Skipped,
    Rejected(RejectReason),
    Failed(FailReason),
}

/// A request placed with [`Gateway::arrive`] has ended: its `sample` (the driver's ticket) and
/// how.
#[derive(Clone, Debug, PartialEq)]
pub struct Ended {
    pub sample: u32,
    pub outcome: ClientOutcome,
}

/// What a live driver shows while the run goes on (`basin serve`'s /metrics).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LiveLevels {
    /// Per server: queued requests, requests in service.
    pub queue_len: Vec<usize>,
    pub in_service: Vec<u32>,
    /// The controller's threshold τ now, if it has one.
    pub tau: Option<f64>,
    /// Grid intensity now (g/kWh) and facility CO₂ so far (g).
    pub carbon_g_per_kwh: f64,
    pub co2_g: f64,
}

/// Where a request is served, as its answer reports it.
#[derive(Clone, Copy, Debug)]
struct ServedBy {
    server: u32,
    variant: u32,
    start: SimTime,
    /// Its batch's size (modelled answers) and share of the batch's IT energy.
    size: u32,
    share: f64,
}

impl ServedBy {
    /// On its way to `server` (0 in the early-exit model) since `start`; the batch size and the
    /// energy share are the answer's to set.
    fn pending(server: usize, variant: usize, start: SimTime) -> Self {
        ServedBy { server: server as u32, variant: variant as u32, start, size: 1, share: 0.0 }
    }
}

/// A request parked outside the server queues: in the early-exit model, at a remote server, or
/// on its way back from a batch.
#[derive(Clone, Copy, Debug)]
struct Flight {
    r: QueuedRequest,
    by: ServedBy,
}

/// The state of a remote server as the gateway sees it: requests sent and not answered.
#[derive(Clone, Copy, Debug, Default)]
struct Remote {
    outstanding: u64,
}

/// The gateway of one run. Build it with [`Gateway::new`], drive it through [`Gateway::pop`] /
/// [`Gateway::handle`] and the `*_done` answers, and close it with [`Gateway::finish`].
pub struct Gateway<'a> {
    spec: &'a SimSpec,
    agenda: Engine<Wake>,
    arrivals: ArrivalGen<'a>,
    arrivals_done: bool,
    servers: Vec<Server>,
    remote: Vec<Option<Remote>>,
    /// Modelled servers that batch remotely in a real run (Triton): the controller sees them as
    /// a real gateway sees a remote server (requests sent and not answered, and the cost table's
    /// energy estimate per answer), not the simulated batcher's queue and batches.
    seen_as_remote: Vec<Option<Remote>>,
    views: Vec<ServerView>,
    controller: Box<dyn Controller>,
    router: Router,
    metrics: Metrics,
    ledger: EnergyLedger,
    quality_rng: StreamRng,
    early_exit_rng: StreamRng,
    /// The records' model index of each server's variants, and of the early-exit model.
    variant_models: Vec<Vec<Option<u16>>>,
    early_exit_model: Option<u16>,
    early_exit_path: u16,
    next_id: u64,
    queued: u64,
    in_service: u64,
    /// Requests in the early-exit model or at a remote server.
    flights: Slots<Flight>,
    /// Answered requests on their way back (modelled transport).
    in_transit: Slots<Flight>,
    /// A finished batch's requests, copied out of the instance's batch to be answered.
    finished_scratch: Vec<QueuedRequest>,
    /// The controller's [`Controller::observes_completions`], asked once.
    observes_completions: bool,
    reconfigs: Vec<Reconfig>,
    last_activity: SimTime,
    /// Energy comes from a meter: the ledger does not drive the time series' power, and the
    /// controller reads the meter's power.
    metered: bool,
    metered_power_w: f64,
    /// Reconfigurations a remote server cannot apply at run time, counted and ignored.
    ignored_reconfigs: u64,
    /// Answered requests whose correctness came from a real model output against the label.
    scored_requests: u64,
    /// Real backends' answers carry no information (controlled-service backends): confidence,
    /// correctness and the controller's power come from the model, as in simulation.
    modelled_answers: bool,
    /// Requests come from [`Gateway::arrive`] (live clients), not from the workload, and how
    /// each ended is kept for the driver.
    external: bool,
    ended: Vec<Ended>,
}

/// What a controller may look at (a free function: the controller is borrowed mutably while
/// the view borrows the servers' views and the series).
#[inline]
fn view<'v>(now: SimTime, views: &'v [ServerView], metrics: &Metrics, power_w: f64, slo: SimDuration) -> GatewayView<'v> {
    GatewayView { now, servers: views, carbon_g_per_kwh: metrics.series.intensity(), power_w, slo }
}

/// What [`Gateway::handle`] says about the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// A controller tick found nothing left to do: the run is over.
    Finished,
}

/// What a run's gateway leaves besides the common outputs.
pub struct GatewayTotals {
    pub output: RunOutput,
    pub failed_reasons: std::collections::BTreeMap<String, u64>,
    pub ignored_reconfigs: u64,
    /// Answered requests whose correctness came from a real model output against the label.
    pub scored_requests: u64,
}

impl<'a> Gateway<'a> {
    /// A gateway for `spec` with `seed`'s streams. `metered`: energy is measured by the driver's
    /// meter ([`Gateway::meter_reading`]) instead of modelled by the ledger.
    pub fn new(spec: &'a SimSpec, seed: u64, metered: bool, backends: &dyn Backends) -> Result<Self, String> {
        let streams = RngStreams::new(seed);
        let servers: Vec<Server> =
            spec.servers.iter().enumerate().map(|(i, s)| Server::new(s.clone(), streams.stream_indexed("service", i as u64))).collect();
        let views = servers.iter().map(Server::view).collect();
        let remote: Vec<Option<Remote>> = (0..servers.len()).map(|i| backends.batches_remotely(i).then(Remote::default)).collect();
        let seen_as_remote = spec
            .servers
            .iter()
            .zip(&remote)
            .map(|(s, r)| (r.is_none() && BackendKind::named_batches_remotely(&s.backend)).then(Remote::default))
            .collect();
        let ctx = spec.controller_context();
        let mut metrics = Metrics::new(spec, !metered);
        if !metered {
            metrics.series_mut().set_power_w(EnergyLedger::idle_power_w(spec));
        }
        let variant_models = spec.servers.iter().map(|s| s.variants.iter().map(|v| metrics.model_index(&v.model)).collect()).collect();
        let early_exit_model = spec.early_exit.as_ref().and_then(|e| metrics.model_index(&e.model));
        let controller = spec.controller.build(&ctx, &streams);
        let observes_completions = controller.observes_completions();
        let mut g = Gateway {
            spec,
            agenda: Engine::new(),
            arrivals: ArrivalGen::new(&spec.arrivals, streams.stream("arrivals"), spec.max_requests),
            arrivals_done: false,
            servers,
            remote,
            seen_as_remote,
            views,
            controller,
            router: Router::new(spec.routing.clone(), &ctx).map_err(|e| format!("routing: {e}"))?,
            metrics,
            ledger: EnergyLedger::new(spec),
            quality_rng: streams.stream("quality"),
            early_exit_rng: streams.stream("early_exit"),
            variant_models,
            early_exit_model,
            early_exit_path: spec.servers.len() as u16,
            next_id: 0,
            queued: 0,
            in_service: 0,
            flights: Slots::default(),
            in_transit: Slots::default(),
            finished_scratch: Vec::new(),
            observes_completions,
            reconfigs: Vec::new(),
            last_activity: SimTime::ZERO,
            metered,
            metered_power_w: 0.0,
            ignored_reconfigs: 0,
            scored_requests: 0,
            modelled_answers: false,
            external: false,
            ended: Vec::new(),
        };
        g.schedule_next_arrival();
        if let Some(iv) = g.controller.tick_interval() {
            g.agenda.schedule_at(SimTime::ZERO + iv, Wake::Tick);
        }
        Ok(g)
    }

    fn schedule_next_arrival(&mut self) {
        match self.arrivals.next_arrival() {
            Some(t) => self.agenda.schedule_lane_at(t, Wake::Arrival),
            None => self.arrivals_done = true,
        }
    }

    /// Takes every answer's confidence and correctness from the quality table instead of the
    /// backends, and the power the controller sees from the energy model instead of the meter
    /// (validation level 1: controlled-service backends answer placeholders and hold their
    /// batches without computing, so what a meter reads of them is not the model's power).
    pub fn model_answers(&mut self) {
        self.modelled_answers = true;
    }

    /// The next agenda entry's time.
    #[inline]
    pub fn next_due(&self) -> Option<SimTime> {
        self.agenda.peek_time()
    }

    /// Takes the next agenda entry.
    #[inline]
    pub fn pop(&mut self) -> Option<(SimTime, Wake)> {
        self.agenda.pop()
    }

    /// Entries the agenda delivered so far.
    pub fn delivered(&self) -> u64 {
        self.agenda.delivered()
    }

    /// No more arrivals will come (the workload ended or the driver stopped it).
    pub fn arrivals_done(&self) -> bool {
        self.arrivals_done
    }

    /// Stops arrivals (a driver's stop request); an arrival already on the agenda is ignored.
    pub fn stop_arrivals(&mut self) {
        self.arrivals_done = true;
    }

    /// Requests anywhere between arrival and answer.
    #[inline]
    pub fn busy(&self) -> bool {
        self.queued + self.in_service + self.flights.len() + self.in_transit.len() > 0
    }

    /// The servers' batchers (for drivers that inspect timers or drain them).
    pub fn servers(&self) -> &[Server] {
        &self.servers
    }

    /// The meter's reading: `energy_j` IT joules drawn in the interval ending at `at`, `power_w`
    /// its mean power (what the controller reads next).
    pub fn meter_reading(&mut self, at: SimTime, energy_j: f64, power_w: f64) {
        self.metered_power_w = power_w;
        self.metrics.series_mut().lump(energy_j);
        self.advance(at);
    }

    /// Integrates the time series up to `now`.
    #[inline]
    pub fn advance(&mut self, now: SimTime) {
        let ctl = &self.controller;
        self.metrics.series.advance(now, &|t| ctl.tau(t));
    }

    /// The IT power a controller reads: the meter's, or the ledger's.
    #[inline]
    fn power_w(&self) -> f64 {
        match (self.metered, self.modelled_answers) {
            (true, false) => self.metered_power_w,
            (true, true) => self.ledger.power_w(),
            (false, _) => self.metrics.series.power_w(),
        }
    }

    /// Handles an agenda entry due at `due`, at `now` (≥ `due`; equal on a virtual clock).
    pub fn handle<B: Backends + ?Sized>(&mut self, due: SimTime, now: SimTime, wake: Wake, backends: &mut B) -> Flow {
        if matches!(wake, Wake::Tick) {
            if self.arrivals_done && !self.busy() && self.agenda.is_empty() {
                return Flow::Finished; // a trailing tick after the last answer
            }
        } else if matches!(wake, Wake::Arrival) && self.arrivals_done {
            return Flow::Continue; // arrivals were stopped after this one was scheduled
        } else {
            self.last_activity = now;
        }
        self.advance(now);
        match wake {
            Wake::Arrival => self.on_arrival(due, now, backends),
            Wake::Decide { slot } => {
                if let Some(f) = self.flights.take(slot) {
                    self.decide(f.r, now, None, backends);
                }
            }
            Wake::Timer { server } => {
                self.servers[server as usize].timer_pending = None;
                self.pump(server as usize, now, backends);
            }
            Wake::Complete { server, instance } => self.on_modelled_complete(server as usize, instance, now, backends),
            Wake::Tick => self.on_tick(now, backends),
            Wake::Respond { slot } => {
                if let Some(f) = self.in_transit.take(slot) {
                    self.respond(&f.r, f.by, now, None);
                }
            }
            Wake::Deliver { slot } => {
                if let Some(f) = self.flights.take(slot) {
                    self.enqueue(f.by.server as usize, f.r, now, backends);
                }
            }
            Wake::Ready { server, instance } => {
                self.ledger.accrue_standby(now);
                self.servers[server as usize].instance_ready(instance);
                self.ledger.update_standby(&self.servers);
                self.pump(server as usize, now, backends);
            }
        }
        Flow::Continue
    }

    /// From now on requests come only from [`Gateway::arrive`]: the workload's arrivals are
    /// ignored, and how each request ends is kept for [`Gateway::take_outcomes`]. The run goes
    /// on (controller ticks included) until [`Gateway::stop_arrivals`].
    pub fn open_to_clients(&mut self) {
        self.external = true;
    }

    /// A client's request, received at `at`, enters at `now` (≥ `at`); `sample` is the
    /// driver's ticket for its payload (what its backends read the inputs from). Its end comes
    /// back through [`Gateway::take_outcomes`].
    pub fn arrive<B: Backends + ?Sized>(&mut self, at: SimTime, now: SimTime, sample: u32, backends: &mut B) {
        self.last_activity = now;
        self.advance(now);
        self.enter(at, now, sample, backends);
    }

    /// The requests that ended since the last call (clients' requests only).
    pub fn take_outcomes(&mut self) -> std::vec::Drain<'_, Ended> {
        self.ended.drain(..)
    }

    /// The levels a live driver shows.
    pub fn live_levels(&self) -> LiveLevels {
        LiveLevels {
            queue_len: self.views.iter().map(|v| v.queue_len).collect(),
            in_service: self.views.iter().map(|v| v.in_service).collect(),
            tau: self.controller.tau(self.metrics.series.last_time()),
            carbon_g_per_kwh: self.metrics.series.intensity(),
            co2_g: self.metrics.series.co2_total_g(),
        }
    }

    /// Keeps how a client's request ended (a no-op for the workload's requests).
    #[inline]
    fn tell(&mut self, r: &QueuedRequest, outcome: impl FnOnce() -> ClientOutcome) {
        if self.external {
            self.ended.push(Ended { sample: r.sample, outcome: outcome() });
        }
    }

    fn on_arrival<B: Backends + ?Sized>(&mut self, at: SimTime, now: SimTime, backends: &mut B) {
        if self.external {
            return;
        }
        self.schedule_next_arrival();
        let sample = match self.spec.quality.as_ref().map(|q| q.samples()) {
            Some(Some(n)) => self.quality_rng.random_range(0..n as u32),
            Some(None) => self.quality_rng.random::<u32>(),
            None => 0,
        };
        self.enter(at, now, sample, backends);
    }

    /// A request enters the gateway: the early-exit model, or the controller's decision.
    #[inline]
    fn enter<B: Backends + ?Sized>(&mut self, at: SimTime, now: SimTime, sample: u32, backends: &mut B) {
        self.metrics.arrival();
        self.router.observe_arrival(at);
        let id = self.next_id;
        self.next_id += 1;
        let mut r = QueuedRequest { id, arrival: at, enqueued: at, sample, pre_energy_j: 0.0 };
        let Some(ee) = &self.spec.early_exit else {
            return self.decide(r, now, None, backends);
        };
        if backends.runs_early_exit() {
            let slot = self.flights.insert(Flight { r, by: ServedBy::pending(0, 0, now) });
            if let Err(e) = backends.run_early_exit(slot, &r) {
                self.flights.take(slot);
                self.fail(&r, now, None, &e);
            }
            return;
        }
        let (latency, energy) = ee.dist.draw(&mut self.early_exit_rng);
        let e = energy.0 + ee.overhead_energy_j;
        self.ledger.early_exit_j += e;
        self.metrics.series_mut().lump(e);
        r.pre_energy_j = e;
        if latency.0 == 0 {
            self.decide(r, now, None, backends);
        } else {
            let slot = self.flights.insert(Flight { r, by: ServedBy::pending(0, 0, now) });
            self.agenda.schedule_at(now + latency, Wake::Decide { slot });
        }
    }

    /// The real early-exit model answered the request in `slot`.
    pub fn early_exit_done<B: Backends + ?Sized>(
        &mut self,
        slot: u32,
        now: SimTime,
        answer: Result<EarlyExitAnswer, FailReason>,
        backends: &mut B,
    ) {
        self.last_activity = now;
        self.advance(now);
        let Some(f) = self.flights.take(slot) else { return };
        match answer {
            Ok(a) => self.decide(f.r, now, (!self.modelled_answers).then_some(a), backends),
            Err(e) => self.fail(&f.r, now, Some(self.early_exit_path), &e),
        }
    }

    /// The early-exit answer is ready (`real`), or modelled from the quality table (`None`).
    // always inlined: passed through memory, the request just built by `enter` is reloaded
    // wider than it was stored, and the load stalls on store forwarding (`perf record`: half of
    // this function's samples)
    #[inline(always)]
    fn decide<B: Backends + ?Sized>(&mut self, mut r: QueuedRequest, now: SimTime, real: Option<EarlyExitAnswer>, backends: &mut B) {
        let uncertainty = match real {
            Some(a) => Some(1.0 - a.confidence),
            None => match (&self.spec.early_exit, &self.spec.quality) {
                (Some(e), Some(q)) => e.quality_index.and_then(|qi| q.confidence(qi, r.sample)).map(|c| 1.0 - c),
                _ => None,
            },
        };
        let req = RequestView { id: r.id, arrival: r.arrival, uncertainty };
        let power_w = self.power_w();
        let decision = self.controller.decide(&req, &view(now, &self.views, &self.metrics, power_w, self.spec.slo));
        self.ledger.attributed_j += r.pre_energy_j;
        let target = match decision {
            Decision::Skip if self.spec.early_exit.is_some() => {
                let correct = match real {
                    Some(a) => {
                        self.scored_requests += a.correct.is_some() as u64;
                        a.correct
                    }
                    None => self.modelled_correct(self.spec.early_exit.as_ref().and_then(|e| e.quality_index), r.sample),
                };
                self.metrics.skip(&r, now, self.early_exit_path, self.early_exit_model, correct);
                return self.tell(&r, || ClientOutcome::Skipped);
            }
            Decision::Skip => return self.reject(&r, None, RejectReason::SkipWithoutEarlyExit),
            Decision::Reject => return self.reject(&r, None, RejectReason::Controller),
            Decision::Admit => self.router.route(now, &self.views),
            Decision::AdmitTo(s) if s < self.servers.len() => s,
            Decision::AdmitTo(_) => return self.reject(&r, None, RejectReason::NoSuchServer),
        };
        if self.remote[target].is_some() {
            r.enqueued = now;
            return self.send_remote(target, r, now, backends);
        }
        self.seen_sent(target);
        if let Some(t) = &self.servers[target].spec.observed_transport {
            // observed from the arrival: the real gateway's time before sending is in it
            let reaches_queue = r.arrival + t.of(r.id).to_server;
            if reaches_queue > now {
                let slot = self.flights.insert(Flight { r, by: ServedBy::pending(target, 0, now) });
                self.agenda.schedule_at(reaches_queue, Wake::Deliver { slot });
                return;
            }
        }
        self.enqueue(target, r, now, backends);
    }

    /// `r` enters local server `target`'s queue now.
    // always inlined, as `decide` (whose request it takes on) is
    #[inline(always)]
    fn enqueue<B: Backends + ?Sized>(&mut self, target: usize, mut r: QueuedRequest, now: SimTime, backends: &mut B) {
        r.enqueued = now;
        match self.servers[target].enqueue(r) {
            Ok(()) => {
                self.metrics.admitted();
                self.queued += 1;
                self.metrics.series_mut().set_queue_len(self.queued);
                self.pump(target, now, backends);
            }
            Err(_) => {
                self.seen_answered(target);
                self.reject(&r, Some(target as u16), RejectReason::QueueFull)
            }
        }
    }

    /// A request sent to local server `s` (counted when a real gateway would see it as remote).
    #[inline]
    fn seen_sent(&mut self, s: usize) {
        if let Some(seen) = &mut self.seen_as_remote[s] {
            seen.outstanding += 1;
        }
    }

    #[inline]
    fn seen_answered(&mut self, s: usize) {
        if let Some(seen) = &mut self.seen_as_remote[s] {
            seen.outstanding = seen.outstanding.saturating_sub(1);
        }
    }

    fn reject(&mut self, r: &QueuedRequest, path: Option<u16>, reason: RejectReason) {
        self.metrics.reject(r, path, reason);
        self.tell(r, || ClientOutcome::Rejected(reason));
    }

    fn fail(&mut self, r: &QueuedRequest, now: SimTime, path: Option<u16>, reason: &FailReason) {
        if let Some(s) = path.map(usize::from).filter(|&s| s < self.servers.len()) {
            self.seen_answered(s);
        }
        self.metrics.fail(r, now, path, reason);
        self.tell(r, || ClientOutcome::Failed(reason.clone()));
    }

    fn modelled_correct(&self, quality_index: Option<usize>, sample: u32) -> Option<bool> {
        match (&self.spec.quality, quality_index) {
            (Some(q), Some(qi)) => Some(q.correct(qi, sample)),
            _ => None,
        }
    }

    fn send_remote<B: Backends + ?Sized>(&mut self, s: usize, r: QueuedRequest, now: SimTime, backends: &mut B) {
        let srv = &mut self.servers[s];
        if srv.spec.max_queue_size.is_some_and(|m| self.views[s].queue_len >= m) {
            return self.reject(&r, Some(s as u16), RejectReason::QueueFull);
        }
        self.metrics.admitted();
        srv.note_arrival(now);
        let variant = srv.variant();
        let slot = self.flights.insert(Flight { r, by: ServedBy::pending(s, variant, now) });
        if let Some(remote) = &mut self.remote[s] {
            remote.outstanding += 1;
        }
        if let Err(e) = backends.send_remote(s, slot, variant, &r) {
            self.flights.take(slot);
            self.remote_answered(s);
            return self.fail(&r, now, Some(s as u16), &e);
        }
        self.in_service += 1;
        self.refresh_remote(s);
        self.metrics.series_mut().set_in_service(self.in_service);
    }

    fn remote_answered(&mut self, s: usize) {
        if let Some(remote) = &mut self.remote[s] {
            remote.outstanding = remote.outstanding.saturating_sub(1);
        }
        self.refresh_remote(s);
    }

    /// The gateway's estimate of a remote server's state: of the requests sent and not
    /// answered, the first instances × max_batch_size are counted as in service, the rest as
    /// queued.
    fn refresh_remote(&mut self, s: usize) {
        let Some(remote) = self.remote[s].or(self.seen_as_remote[s]) else { return };
        let srv = &self.servers[s];
        let cap = (srv.instances() * srv.max_batch_size()) as u64;
        let in_service = remote.outstanding.min(cap);
        let v = &mut self.views[s];
        v.queue_len = remote.outstanding.saturating_sub(cap) as usize;
        v.in_service = in_service as u32;
        v.busy_instances = (in_service.div_ceil(srv.max_batch_size() as u64) as u32).min(srv.instances());
    }

    /// A remote server answered the request in `slot` (`correct`: its prediction against the
    /// label, when scored).
    pub fn remote_done(&mut self, slot: u32, now: SimTime, answer: Result<Option<bool>, FailReason>) {
        self.last_activity = now;
        self.advance(now);
        let Some(f) = self.flights.take(slot) else { return };
        let s = f.by.server as usize;
        self.in_service -= 1;
        self.metrics.series_mut().set_in_service(self.in_service);
        let share = self.remote_energy_estimate(s, f.by.variant as usize, now);
        self.remote_answered(s);
        match answer {
            Ok(correct) => {
                self.respond(&f.r, ServedBy { size: 1, share, ..f.by }, now, (!self.modelled_answers).then_some(correct));
            }
            Err(e) => self.fail(&f.r, now, Some(s as u16), &e),
        }
    }

    /// What a gateway can estimate of one answer's energy from a remote server: the cost table's
    /// mean batch energy at the batch size its view suggests, per request, scaled by the load
    /// profile's energy factor at the current rate.
    fn remote_energy_estimate(&mut self, s: usize, variant: usize, now: SimTime) -> f64 {
        let batch_estimate = self.views[s].in_service.clamp(1, self.views[s].max_batch_size.max(1));
        let factor = self.servers[s].load_at(now).map_or(1.0, |l| l.energy_factor);
        let costs = &self.spec.servers[s].variants[variant].costs;
        factor * costs[batch_estimate as usize - 1].mean_energy().0 / batch_estimate as f64
    }

    /// Starts every batch the server's rule allows now, and arms its delay timer.
    fn pump<B: Backends + ?Sized>(&mut self, s: usize, now: SimTime, backends: &mut B) {
        if self.remote[s].is_some() {
            return;
        }
        let mut started = false;
        if self.ledger.has_standby() {
            self.ledger.accrue_standby(now);
        }
        while let Some(d) = self.servers[s].try_dispatch(now) {
            started = true;
            let device = self.servers[s].spec.device;
            if let Some(lump) = self.ledger.batch_started(device, now, &d) {
                self.metrics.series_mut().lump(lump);
            }
            self.queued -= d.size as u64;
            self.in_service += d.size as u64;
            let variant = self.servers[s].variant();
            let execution = backends.start_batch(s, d.instance, variant, self.servers[s].batch(d.instance));
            match execution {
                Execution::Modelled => {
                    self.metrics.batch(d.size);
                    self.metrics.batch_record(s as u16, d.instance, now, now + d.service, d.size, d.energy.0);
                    self.agenda.schedule_at(now + d.service, Wake::Complete { server: s as u32, instance: d.instance });
                }
                // recorded when it ends (its real end is not known yet)
                Execution::Pending => self.metrics.batch(d.size),
            }
        }
        if started {
            self.ledger.update_standby(&self.servers);
            self.metrics.series_mut().set_queue_len(self.queued);
            self.metrics.series_mut().set_in_service(self.in_service);
            self.set_modelled_power();
        }
        let srv = &mut self.servers[s];
        if srv.timer_pending.is_none()
            && let Some(at) = srv.timer_deadline(now)
        {
            srv.timer_pending = Some(at);
            self.agenda.schedule_at(at, Wake::Timer { server: s as u32 });
        }
        self.refresh_view(s);
    }

    #[inline]
    fn set_modelled_power(&mut self) {
        if !self.metered {
            let p = self.ledger.power_w();
            self.metrics.series_mut().set_power_w(p);
        }
    }

    #[inline(always)]
    fn refresh_view(&mut self, s: usize) {
        let srv = &self.servers[s];
        let v = &mut self.views[s];
        v.queue_len = srv.queue_len();
        v.in_service = srv.in_service();
        v.busy_instances = srv.busy_instances();
        if v.instances != srv.instances() || v.variant != srv.variant() || v.max_batch_size != srv.max_batch_size() {
            *v = srv.view();
        }
        if self.seen_as_remote[s].is_some() {
            self.refresh_remote(s);
        }
    }

    /// Finishes the batch on `instance` of local server `s` in the batcher and the ledger;
    /// returns its requests (in the reused scratch vector: hand it to [`Gateway::after_batch`]),
    /// what each of their answers reports and the batch's IT energy.
    fn finish_batch(&mut self, s: usize, instance: u32, now: SimTime) -> (Vec<QueuedRequest>, ServedBy, f64) {
        if self.ledger.has_standby() {
            self.ledger.accrue_standby(now);
        }
        let done = self.servers[s].complete(instance);
        self.ledger.update_standby(&self.servers);
        self.ledger.batch_finished(self.servers[s].spec.device, now, done.start, done.energy.0);
        let mut finished = std::mem::take(&mut self.finished_scratch);
        finished.clear();
        finished.extend_from_slice(self.servers[s].batch(instance));
        let size = finished.len() as u32;
        let by = ServedBy { server: s as u32, variant: done.variant as u32, start: done.start, size, share: done.energy.0 / size as f64 };
        (finished, by, done.energy.0)
    }

    /// After a batch's answers: the levels, the power, and the server's next batches.
    fn after_batch<B: Backends + ?Sized>(&mut self, s: usize, finished: Vec<QueuedRequest>, now: SimTime, backends: &mut B) {
        self.in_service -= finished.len() as u64;
        self.finished_scratch = finished;
        self.metrics.series_mut().set_in_service(self.in_service);
        self.set_modelled_power();
        self.pump(s, now, backends);
    }

    fn on_modelled_complete<B: Backends + ?Sized>(&mut self, s: usize, instance: u32, now: SimTime, backends: &mut B) {
        let (finished, by, _) = self.finish_batch(s, instance, now);
        let modelled = self.servers[s].overhead(now);
        let observed = self.servers[s].spec.observed_transport.clone();
        for r in &finished {
            let r = *r;
            let overhead = observed.as_ref().map_or(modelled, |t| t.of(r.id).from_server);
            if overhead.0 == 0 {
                self.respond(&r, by, now, None);
            } else {
                let slot = self.in_transit.insert(Flight { r, by });
                self.agenda.schedule_at(now + overhead, Wake::Respond { slot });
            }
        }
        self.after_batch(s, finished, now, backends);
    }

    /// A real backend finished the batch on `instance` of local server `s`: per request (in
    /// batch order) whether its prediction was right, or why the batch failed.
    pub fn batch_done<B: Backends + ?Sized>(
        &mut self,
        s: usize,
        instance: u32,
        now: SimTime,
        answer: Result<&[Option<bool>], FailReason>,
        backends: &mut B,
    ) {
        self.last_activity = now;
        self.advance(now);
        let (finished, by, energy_j) = self.finish_batch(s, instance, now);
        self.metrics.batch_record(s as u16, instance, by.start, now, by.size, energy_j);
        for (i, r) in finished.iter().enumerate() {
            match &answer {
                Ok(correct) => {
                    let c = correct.get(i).copied().flatten();
                    self.respond(r, by, now, (!self.modelled_answers).then_some(c));
                }
                Err(e) => self.fail(r, now, Some(s as u16), e),
            }
        }
        self.after_batch(s, finished, now, backends);
    }

    /// The gateway receives the answer to a served request: metrics, the record, and the
    /// controller's observation. `real`: the real model's correctness (`Some(None)`: unscored);
    /// `None`: modelled from the quality table.
    fn respond(&mut self, r: &QueuedRequest, by: ServedBy, now: SimTime, real: Option<Option<bool>>) {
        let s = by.server as usize;
        let variant = by.variant as usize;
        let correct = match real {
            Some(c) => {
                self.scored_requests += c.is_some() as u64;
                c
            }
            None => self.modelled_correct(self.servers[s].spec.variants[variant].quality_index, r.sample),
        };
        self.ledger.attributed_j += by.share;
        let batch_size = self.remote[s].is_none().then_some(by.size);
        let served = Served { path: s as u16, model: self.variant_models[s][variant], batch_size, start: by.start };
        self.metrics.complete(r, now, served, by.share, correct);
        self.tell(r, || ClientOutcome::Served { server: s as u16 });
        // a real gateway does not see a remote server's batches: its estimate, as in a replay
        let seen_remote = self.seen_as_remote[s].is_some();
        let seen_j = self.observes_completions.then(|| if seen_remote { self.remote_energy_estimate(s, variant, now) } else { by.share });
        if seen_remote {
            self.seen_answered(s);
            self.refresh_remote(s);
        }
        if let Some(energy_j) = seen_j {
            let cv = CompletionView { server: s, arrival: r.arrival, completion: now, batch_size: by.size, energy_j };
            let power_w = self.power_w();
            self.controller.on_completion(&cv, &view(now, &self.views, &self.metrics, power_w, self.spec.slo));
        }
    }

    fn on_tick<B: Backends + ?Sized>(&mut self, now: SimTime, backends: &mut B) {
        if self.ledger.has_standby() {
            self.ledger.accrue_standby(now);
        }
        let mut out = std::mem::take(&mut self.reconfigs);
        out.clear();
        let power_w = self.power_w();
        self.controller.on_tick(&view(now, &self.views, &self.metrics, power_w, self.spec.slo), &mut out);
        for rc in out.drain(..) {
            self.reconfigure(rc, now);
        }
        self.reconfigs = out;
        self.ledger.update_standby(&self.servers);
        self.set_modelled_power();
        for s in 0..self.servers.len() {
            if self.remote[s].is_some() {
                self.refresh_remote(s);
                let v = self.servers[s].view();
                self.views[s].variant = v.variant;
                self.views[s].batch_service_s = v.batch_service_s;
            } else {
                self.pump(s, now, backends);
            }
        }
        if let Some(iv) = self.controller.tick_interval()
            && (!self.arrivals_done || self.busy() || !self.agenda.is_empty())
        {
            self.agenda.schedule_at(now + iv, Wake::Tick);
        }
    }

    fn reconfigure(&mut self, rc: Reconfig, now: SimTime) {
        let server = match rc {
            Reconfig::SetVariant { server, .. } | Reconfig::SetMaxBatchSize { server, .. } | Reconfig::SetInstances { server, .. } => {
                server
            }
        };
        let remote = self.remote.get(server).is_some_and(Option::is_some);
        let Some(s) = self.servers.get_mut(server) else { return };
        match rc {
            Reconfig::SetVariant { variant, .. } => s.set_variant(variant),
            // Triton's batching configuration is fixed when it starts
            Reconfig::SetMaxBatchSize { .. } | Reconfig::SetInstances { .. } if remote => self.ignored_reconfigs += 1,
            Reconfig::SetMaxBatchSize { max_batch_size, .. } => s.set_max_batch_size(max_batch_size),
            Reconfig::SetInstances { instances, .. } => {
                let warmup = s.spec.warmup;
                let warm_j = s.spec.warmup_energy.0;
                for i in s.set_instances(instances) {
                    if self.metered {
                        // real workers warm up by opening their backend on first use
                        s.instance_ready(i);
                        continue;
                    }
                    if warm_j > 0.0 {
                        self.ledger.reconfig_j += warm_j;
                        self.metrics.series.lump(warm_j);
                    }
                    if warmup.0 == 0 {
                        s.instance_ready(i);
                    } else {
                        self.agenda.schedule_at(now + warmup, Wake::Ready { server: server as u32, instance: i });
                    }
                }
            }
        }
    }

    /// Fails every request still in flight, queued or in service (a driver's drain deadline).
    pub fn fail_all(&mut self, now: SimTime, reason: &FailReason) {
        for f in self.flights.drain() {
            self.fail(&f.r, now, None, reason);
        }
        for f in self.in_transit.drain() {
            self.fail(&f.r, now, Some(f.by.server as u16), reason);
        }
        for s in 0..self.servers.len() {
            let srv = &mut self.servers[s];
            let mut stuck = Vec::new();
            for i in 0..srv.instance_slots() as u32 {
                if srv.is_busy(i) {
                    stuck.extend_from_slice(srv.batch(i));
                    srv.complete(i);
                }
            }
            stuck.extend(srv.drain_queue());
            for r in &stuck {
                self.fail(r, now, Some(s as u16), reason);
            }
            if let Some(remote) = &mut self.remote[s] {
                remote.outstanding = 0;
            }
        }
        self.queued = 0;
        self.in_service = 0;
    }

    /// Batches a remote server formed by itself, from its statistics (size of each).
    pub fn remote_batches(&mut self, sizes: impl IntoIterator<Item = u32>) {
        for size in sizes {
            self.metrics.batch(size);
        }
    }

    /// When the run ended: its last arrival or answer, or the workload's end.
    pub fn last_activity(&self) -> SimTime {
        self.last_activity
    }

    /// Closes the run at `end`. `metered_it_j`: the meter's IT joules over the run (metered
    /// gateways); `mode` names the driver in the summary.
    pub fn finish(mut self, end: SimTime, mode: &str, metered_it_j: Option<f64>, meter_estimated: bool) -> GatewayTotals {
        let pue = self.spec.pue;
        let energy = match metered_it_j {
            Some(j) => RunEnergy {
                it_total_j: j,
                breakdown: crate::metrics::EnergyBreakdown { active_j: j * pue, pue, estimated: meter_estimated, ..Default::default() },
                integrated_check_j: None,
            },
            None => {
                let idle_j = self.ledger.close(end);
                RunEnergy {
                    it_total_j: self.ledger.total_it_j(idle_j),
                    breakdown: self.ledger.breakdown(idle_j, pue, self.spec.energy_estimated),
                    integrated_check_j: Some(self.ledger.active_j + idle_j),
                }
            }
        };
        let ctl = &self.controller;
        let events = self.agenda.delivered();
        let f = self.metrics.summarize(self.spec, mode, end, energy, &|t| ctl.tau(t));
        GatewayTotals {
            output: RunOutput { summary: f.summary, timeseries: f.timeseries, requests: f.requests, batches: f.batches, events },
            failed_reasons: f.failed_reasons,
            ignored_reconfigs: self.ignored_reconfigs,
            scored_requests: self.scored_requests,
        }
    }
}
