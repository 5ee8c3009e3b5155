//! The simulation: one run of an experiment, from arrivals to the metrics schema.
//!
//! [`SimSpec`] is a fully resolved, validated experiment (the config layer builds it from a TOML
//! file and the input files); [`run`] executes it for one seed and returns a
//! [`RunOutput`]. Nothing here performs I/O or reads the wall clock: the same spec and seed
//! give bit-identical outputs on any machine and thread.
//!
//! A request's path:
//! 1. it arrives (arrival stream) and draws a quality sample (quality stream);
//! 2. with a cascade, the early-exit model answers it first (its latency and energy are paid by
//!    every request), and the controller decides when that answer is ready; otherwise the
//!    controller decides on arrival;
//! 3. `Skip` answers it with the early-exit result, `Reject` drops it, `Admit` routes it to a
//!    server queue (rejected there if the queue is full);
//! 4. the server's batcher starts batches on free instances; a batch's service time and energy
//!    come from the cost table; when it completes, every request in it is answered.
//!
//! Energy (SPEC.md): Σ batch energy + Σ over devices of idle power × time the device runs no
//! batch + early-exit and warm-up energy, all × PUE. Carbon integrates power × intensity.

use crate::core::{Engine, Joules, RngStreams, SimDuration, SimTime, StreamRng};
use crate::metrics::{
    BatchRecords, CarbonSignal, EnergyBreakdown, RequestRecords, RequestRow, RunOutput, SeriesAccumulator, SummaryCollector,
};
use crate::model::DeviceSpec;
use crate::model::arrivals::{ArrivalGen, ArrivalSpec};
use crate::model::controller::{
    CompletionView, Controller, ControllerConfig, ControllerContext, Decision, GatewayView, Reconfig, RequestView, ServerProfile,
    ServerView, VariantProfile,
};
use crate::model::cost::ServiceDist;
use crate::model::quality::Quality;
use crate::model::request::{Outcome, QueuedRequest};
use crate::model::routing::{Router, RoutingConfig};
use crate::model::server::{Server, ServerSpec};

use rand::RngExt;

/// The cascade's early-exit model: runs beside the gateway for every request, without queueing.
#[derive(Clone, Debug)]
pub struct EarlyExitSpec {
    pub model: String,
    pub dist: ServiceDist,
    pub quality_index: Option<usize>,
    /// Energy per request besides the model's own execution (the gateway's and the serving
    /// driver's work per arrival), added to the early-exit energy of every request.
    pub overhead_energy_j: f64,
}

/// A resolved experiment.
#[derive(Clone, Debug)]
pub struct SimSpec {
    pub name: String,
    pub arrivals: ArrivalSpec,
    pub max_requests: Option<u64>,
    pub devices: Vec<DeviceSpec>,
    pub servers: Vec<ServerSpec>,
    pub early_exit: Option<EarlyExitSpec>,
    pub quality: Option<Quality>,
    pub controller: ControllerConfig,
    pub routing: RoutingConfig,
    pub slo: SimDuration,
    pub pue: f64,
    pub carbon: CarbonSignal,
    pub interval: SimDuration,
    pub record_requests: bool,
    pub record_batches: bool,
    /// Some cost-table energy was estimated rather than measured.
    pub energy_estimated: bool,
}

/// What a controller sees at `now` (a free function: the controller is borrowed mutably while
/// the view borrows the servers' views and the series).
fn gateway_view<'a>(now: SimTime, views: &'a [ServerView], series: &SeriesAccumulator, slo: SimDuration) -> GatewayView<'a> {
    GatewayView { now, servers: views, carbon_g_per_kwh: series.intensity(), power_w: series.power_w(), slo }
}

impl SimSpec {
    /// The deployment as an operator knows it before the run (given to the controller).
    pub fn controller_context(&self) -> ControllerContext {
        let profile = |model: &str, qi: Option<usize>, costs: &[ServiceDist]| VariantProfile {
            model: model.to_string(),
            accuracy: qi.and_then(|i| self.quality.as_ref().map(|q| q.accuracy(i))),
            latency_s: costs.iter().map(|c| c.mean_s()).collect(),
            energy_j: costs.iter().map(|c| c.mean_energy().0).collect(),
        };
        ControllerContext {
            servers: self.servers.iter().map(|s| ServerProfile {
                name: s.name.clone(),
                variants: s.variants.iter().map(|v| profile(&v.model, v.quality_index, &v.costs)).collect(),
                initial_variant: s.initial_variant,
                instances: s.instances,
                max_batch_size: s.max_batch_size,
                idle_power_w: self.devices[s.device].idle_power_w,
                instance_standby_power_w: s.instance_standby_power_w,
                warmup_s: s.warmup.as_secs_f64(),
                warmup_energy_j: s.warmup_energy.0,
            }).collect(),
            early_exit: self.early_exit.as_ref().map(|e| profile(&e.model, e.quality_index, std::slice::from_ref(&e.dist))),
            slo: self.slo,
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Ev {
    Arrival,
    /// The early-exit answer of the request in `pending[slot]` is ready.
    Decide(u32),
    Timer(u32),
    Complete(u32, u32),
    Tick,
    Ready(u32, u32),
    /// The answer of `in_transit[slot]` reaches the gateway.
    Respond(u32),
}

/// A request whose batch has finished, on its way back to the gateway.
#[derive(Clone, Copy, Debug)]
struct Finished {
    r: QueuedRequest,
    server: u32,
    size: u32,
    start: SimTime,
    share: f64,
    variant: u32,
}

struct DeviceState {
    idle_w: f64,
    busy: u32,
    active_w: f64,
    idle_since: SimTime,
    idle_ns: u64,
}

/// Runs `spec` once with `seed`.
pub fn run(spec: &SimSpec, seed: u64) -> RunOutput {
    let mut out = Sim::new(spec, seed).run();
    out.summary.seed = seed;
    out
}

struct Sim<'a> {
    spec: &'a SimSpec,
    engine: Engine<Ev>,
    arrivals: ArrivalGen<'a>,
    arrivals_done: bool,
    servers: Vec<Server>,
    views: Vec<ServerView>,
    devices: Vec<DeviceState>,
    controller: Box<dyn Controller>,
    router: Router,
    series: SeriesAccumulator,
    summary: SummaryCollector,
    quality_rng: StreamRng,
    ee_rng: StreamRng,
    requests: Option<RequestRecords>,
    batches: Option<BatchRecords>,
    next_id: u64,
    queued: u64,
    in_service: u64,
    active_j: f64,
    ee_j: f64,
    reconfig_j: f64,
    attributed_j: f64,
    reconfigs: Vec<Reconfig>,
    ee_path: u16,
    /// Requests inside the early-exit model (kept out of the event queue so events stay small).
    pending: Vec<QueuedRequest>,
    free_slots: Vec<u32>,
    last_activity: SimTime,
    finished_scratch: Vec<Finished>,
    in_transit: Vec<Finished>,
    free_finished: Vec<u32>,
    /// Instance standby power now, its energy so far, and since when it is accrued.
    has_standby: bool,
    standby_w: f64,
    standby_j: f64,
    standby_since: SimTime,
}

impl<'a> Sim<'a> {
    fn new(spec: &'a SimSpec, seed: u64) -> Self {
        let streams = RngStreams::new(seed);
        let servers: Vec<Server> = spec.servers.iter().enumerate()
            .map(|(i, s)| Server::new(s.clone(), streams.stream_indexed("service", i as u64)))
            .collect();
        let views = servers.iter().map(Server::view).collect();
        let devices = spec.devices.iter()
            .map(|d| DeviceState { idle_w: d.idle_power_w, busy: 0, active_w: 0.0, idle_since: SimTime::ZERO, idle_ns: 0 })
            .collect();
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
        let mut series = SeriesAccumulator::new(spec.interval.0, spec.pue, spec.carbon.clone());
        let idle: f64 = spec.devices.iter().map(|d| d.idle_power_w).sum::<f64>()
            + spec.servers.iter().map(|s| s.instance_standby_power_w * s.instances as f64).sum::<f64>();
        series.set_power_w(idle);
        Sim {
            engine: Engine::new(),
            arrivals: ArrivalGen::new(&spec.arrivals, streams.stream("arrivals"), spec.max_requests),
            arrivals_done: false,
            servers,
            views,
            devices,
            controller: spec.controller.build(&ctx),
            router: Router::new(spec.routing.clone(), &ctx).expect("routing validated when the spec was built"),
            series,
            summary: SummaryCollector::new(spec.slo),
            quality_rng: streams.stream("quality"),
            ee_rng: streams.stream("early_exit"),
            requests: spec.record_requests.then(|| RequestRecords { path_names, model_names, ..Default::default() }),
            batches: spec.record_batches.then(|| BatchRecords { server_names: spec.servers.iter().map(|s| s.name.clone()).collect(), ..Default::default() }),
            next_id: 0,
            queued: 0,
            in_service: 0,
            active_j: 0.0,
            ee_j: 0.0,
            reconfig_j: 0.0,
            attributed_j: 0.0,
            reconfigs: Vec::new(),
            ee_path,
            pending: Vec::new(),
            free_slots: Vec::new(),
            last_activity: SimTime::ZERO,
            finished_scratch: Vec::new(),
            in_transit: Vec::new(),
            free_finished: Vec::new(),
            has_standby: spec.servers.iter().any(|s| s.instance_standby_power_w > 0.0),
            standby_w: spec.servers.iter().map(|s| s.instance_standby_power_w * s.instances as f64).sum(),
            standby_j: 0.0,
            standby_since: SimTime::ZERO,
            spec,
        }
    }

    fn model_index(&self, name: &str) -> Option<u16> {
        self.requests.as_ref().and_then(|r| r.model_names.iter().position(|m| m == name).map(|i| i as u16))
    }

    fn run(mut self) -> RunOutput {
        match self.arrivals.next_arrival() {
            Some(t) => self.engine.schedule_at(t, Ev::Arrival),
            None => self.arrivals_done = true,
        }
        if let Some(iv) = self.controller.tick_interval() {
            self.engine.schedule_at(SimTime::ZERO + iv, Ev::Tick);
        }
        while let Some((now, ev)) = self.engine.pop() {
            if matches!(ev, Ev::Tick) {
                if self.arrivals_done && self.queued + self.in_service == 0 && self.engine.is_empty() {
                    break; // a trailing tick after the last answer: the run is over
                }
            } else {
                self.last_activity = now;
            }
            let ctl = &self.controller;
            self.series.advance(now, &|t| ctl.tau(t));
            match ev {
                Ev::Arrival => self.on_arrival(now),
                Ev::Decide(slot) => {
                    let r = self.pending[slot as usize];
                    self.free_slots.push(slot);
                    self.decide(r, now);
                }
                Ev::Timer(s) => {
                    self.servers[s as usize].timer_pending = None;
                    self.pump(s as usize, now);
                }
                Ev::Complete(s, i) => self.on_complete(s as usize, i, now),
                Ev::Tick => self.on_tick(now),
                Ev::Respond(slot) => {
                    let f = self.in_transit[slot as usize];
                    self.free_finished.push(slot);
                    self.respond(&f, now);
                }
                Ev::Ready(s, i) => {
                    self.accrue_standby(now);
                    self.servers[s as usize].instance_ready(i);
                    self.update_standby();
                    self.pump(s as usize, now);
                }
            }
        }
        self.finish()
    }

    fn on_arrival(&mut self, now: SimTime) {
        match self.arrivals.next_arrival() {
            Some(t) => self.engine.schedule_at(t, Ev::Arrival),
            None => self.arrivals_done = true,
        }
        self.series.arrival();
        self.router.observe_arrival(now);
        self.summary.requests += 1;
        let id = self.next_id;
        self.next_id += 1;
        let sample = match self.spec.quality.as_ref().map(|q| q.samples()) {
            Some(Some(n)) => self.quality_rng.random_range(0..n as u32),
            Some(None) => self.quality_rng.random::<u32>(),
            None => 0,
        };
        let mut r = QueuedRequest { id, arrival: now, enqueued: now, sample, pre_energy_j: 0.0 };
        match &self.spec.early_exit {
            Some(ee) => {
                let (lat, e) = ee.dist.draw(&mut self.ee_rng);
                let e = Joules(e.0 + ee.overhead_energy_j);
                self.ee_j += e.0;
                self.series.lump(e.0);
                r.pre_energy_j = e.0;
                if lat.0 == 0 {
                    self.decide(r, now);
                } else {
                    let slot = match self.free_slots.pop() {
                        Some(s) => { self.pending[s as usize] = r; s }
                        None => { self.pending.push(r); (self.pending.len() - 1) as u32 }
                    };
                    self.engine.schedule_at(now + lat, Ev::Decide(slot));
                }
            }
            None => self.decide(r, now),
        }
    }

    fn record(&mut self, r: &QueuedRequest, decision: Outcome, now: SimTime, path: Option<u16>, model: Option<u16>, correct: Option<bool>, reason: Option<&str>) {
        if let Some(rec) = &mut self.requests {
            let answered = matches!(decision, Outcome::Skipped);
            rec.push(RequestRow {
                id: r.id,
                arrival_s: r.arrival.as_secs_f64(),
                decision,
                path,
                model,
                batch_size: None,
                start_s: answered.then(|| r.arrival.as_secs_f64()),
                end_s: answered.then(|| now.as_secs_f64()),
                latency_ms: answered.then(|| now.since(r.arrival).as_millis_f64()),
                energy_j: Some(r.pre_energy_j * self.spec.pue),
                correct,
                reason: reason.map(str::to_string),
            });
        }
    }

    fn decide(&mut self, mut r: QueuedRequest, now: SimTime) {
        let uncertainty = match (&self.spec.early_exit, &self.spec.quality) {
            (Some(EarlyExitSpec { quality_index: Some(qi), .. }), Some(q)) => q.confidence(*qi, r.sample).map(|c| 1.0 - c),
            _ => None,
        };
        let req = RequestView { id: r.id, arrival: r.arrival, uncertainty };
        let view = gateway_view(now, &self.views, &self.series, self.spec.slo);
        let decision = self.controller.decide(&req, &view);
        self.attributed_j += r.pre_energy_j;
        let target = match decision {
            Decision::Skip if self.spec.early_exit.is_some() => {
                let ee = self.spec.early_exit.as_ref().expect("checked");
                let correct = match (&self.spec.quality, ee.quality_index) {
                    (Some(q), Some(qi)) => Some(q.correct(qi, r.sample)),
                    _ => None,
                };
                self.summary.skipped += 1;
                self.summary.answered(correct);
                self.series.skipped();
                let m = self.model_index(&ee.model);
                self.record(&r, Outcome::Skipped, now, Some(self.ee_path), m, correct, None);
                return;
            }
            Decision::Skip | Decision::Reject => {
                let why = if decision == Decision::Skip { "skip without an early-exit model" } else { "controller" };
                self.summary.rejected += 1;
                self.series.rejected();
                self.record(&r, Outcome::Rejected, now, None, None, None, Some(why));
                return;
            }
            Decision::Admit => self.router.route(now, &self.views),
            Decision::AdmitTo(s) => s.min(self.servers.len() - 1),
        };
        r.enqueued = now;
        match self.servers[target].enqueue(r) {
            Ok(()) => {
                self.summary.admitted += 1;
                self.series.admitted();
                self.queued += 1;
                self.series.set_queue_len(self.queued);
                self.pump(target, now);
            }
            Err(_) => {
                self.summary.rejected += 1;
                self.summary.rejected_queue_full += 1;
                self.series.rejected();
                self.record(&r, Outcome::Rejected, now, Some(target as u16), None, None, Some("queue_full"));
            }
        }
    }

    fn total_power(&self) -> f64 {
        let devices: f64 = self.devices.iter().map(|d| if d.busy == 0 { d.idle_w } else { d.active_w }).sum();
        devices + self.standby_w
    }

    /// Accrues instance standby energy up to `now`; call before instance states change, then
    /// [`Sim::update_standby`] after.
    #[inline]
    fn accrue_standby(&mut self, now: SimTime) {
        if self.standby_w > 0.0 {
            self.standby_j += self.standby_w * now.since(self.standby_since).as_secs_f64();
        }
        self.standby_since = now;
    }

    #[inline]
    fn update_standby(&mut self) {
        if self.has_standby {
            self.standby_w = self.servers.iter().map(|s| s.spec.instance_standby_power_w * s.standby_instances() as f64).sum();
        }
    }

    /// Starts every batch the server's rule allows now, and arms its delay timer.
    fn pump(&mut self, s: usize, now: SimTime) {
        let mut started = false;
        if self.has_standby {
            self.accrue_standby(now);
        }
        while let Some(d) = self.servers[s].try_dispatch(now) {
            started = true;
            let dev = &mut self.devices[self.servers[s].spec.device];
            if dev.busy == 0 {
                dev.idle_ns += now.since(dev.idle_since).0;
            }
            dev.busy += 1;
            if d.service.0 > 0 {
                dev.active_w += d.energy.0 / d.service.as_secs_f64();
            } else {
                self.series.lump(d.energy.0);
            }
            self.active_j += d.energy.0;
            self.queued -= d.size as u64;
            self.in_service += d.size as u64;
            self.summary.batch(d.size);
            if let Some(b) = &mut self.batches {
                b.push(s as u16, d.instance, now.as_secs_f64(), (now + d.service).as_secs_f64(), d.size, d.energy.0 * self.spec.pue);
            }
            self.engine.schedule_at(now + d.service, Ev::Complete(s as u32, d.instance));
        }
        if started {
            self.update_standby();
            self.series.set_queue_len(self.queued);
            self.series.set_in_service(self.in_service);
            let p = self.total_power();
            self.series.set_power_w(p);
        }
        let srv = &mut self.servers[s];
        if srv.timer_pending.is_none()
            && let Some(at) = srv.timer_deadline(now)
        {
            srv.timer_pending = Some(at);
            self.engine.schedule_at(at, Ev::Timer(s as u32));
        }
        self.refresh_view(s);
    }

    #[inline]
    fn refresh_view(&mut self, s: usize) {
        let srv = &self.servers[s];
        let v = &mut self.views[s];
        v.queue_len = srv.queue_len();
        v.in_service = srv.in_service();
        v.busy_instances = srv.busy_instances();
        if v.instances != srv.instances() || v.variant != srv.variant() || v.max_batch_size != srv.max_batch_size() {
            *v = srv.view();
        }
    }

    fn on_complete(&mut self, s: usize, instance: u32, now: SimTime) {
        if self.has_standby {
            self.accrue_standby(now);
        }
        let done = self.servers[s].complete(instance);
        let overhead = self.servers[s].overhead(now);
        self.update_standby();
        let srv = &self.servers[s];
        let device = srv.spec.device;
        let batch = srv.batch(instance);
        let size = batch.len() as u32;
        let service = now.since(done.start);
        let dev = &mut self.devices[device];
        dev.busy -= 1;
        if dev.busy == 0 {
            dev.active_w = 0.0;
            dev.idle_since = now;
        } else if service.0 > 0 {
            dev.active_w -= done.energy.0 / service.as_secs_f64();
        }
        let share = done.energy.0 / size as f64;
        let mut finished = std::mem::take(&mut self.finished_scratch);
        finished.clear();
        finished.extend(batch.iter().map(|r| Finished { r: *r, server: s as u32, size, start: done.start, share, variant: done.variant as u32 }));
        for f in finished.drain(..) {
            if overhead.0 == 0 {
                self.respond(&f, now);
            } else {
                let slot = match self.free_finished.pop() {
                    Some(i) => { self.in_transit[i as usize] = f; i }
                    None => { self.in_transit.push(f); (self.in_transit.len() - 1) as u32 }
                };
                self.engine.schedule_at(now + overhead, Ev::Respond(slot));
            }
        }
        self.finished_scratch = finished;
        self.in_service -= size as u64;
        self.series.set_in_service(self.in_service);
        let p = self.total_power();
        self.series.set_power_w(p);
        self.pump(s, now);
    }

    /// The gateway receives the answer to a request served by a server (after the server's
    /// transport overhead, if any): metrics, the record, and the controller's observation.
    fn respond(&mut self, f: &Finished, now: SimTime) {
        let s = f.server as usize;
        let r = &f.r;
        let variant = &self.servers[s].spec.variants[f.variant as usize];
        let model_idx = self.model_index(&variant.model);
        let latency = now.since(r.arrival);
        self.summary.completed(latency);
        let correct = match (&self.spec.quality, variant.quality_index) {
            (Some(q), Some(qi)) => Some(q.correct(qi, r.sample)),
            _ => None,
        };
        self.summary.answered(correct);
        self.attributed_j += f.share;
        self.series.completed(1);
        if let Some(rec) = &mut self.requests {
            rec.push(RequestRow {
                id: r.id,
                arrival_s: r.arrival.as_secs_f64(),
                decision: Outcome::Admitted,
                path: Some(s as u16),
                model: model_idx,
                batch_size: Some(f.size),
                start_s: Some(f.start.as_secs_f64()),
                end_s: Some(now.as_secs_f64()),
                latency_ms: Some(latency.as_millis_f64()),
                energy_j: Some((f.share + r.pre_energy_j) * self.spec.pue),
                correct,
                reason: None,
            });
        }
        let view = gateway_view(now, &self.views, &self.series, self.spec.slo);
        let cv = CompletionView { server: s, arrival: r.arrival, completion: now, batch_size: f.size, energy_j: f.share };
        self.controller.on_completion(&cv, &view);
    }

    fn on_tick(&mut self, now: SimTime) {
        if self.has_standby {
            self.accrue_standby(now);
        }
        let mut out = std::mem::take(&mut self.reconfigs);
        out.clear();
        {
            let view = gateway_view(now, &self.views, &self.series, self.spec.slo);
            self.controller.on_tick(&view, &mut out);
        }
        for rc in out.drain(..) {
            match rc {
                Reconfig::SetVariant { server, variant } => {
                    if let Some(s) = self.servers.get_mut(server) { s.set_variant(variant) }
                }
                Reconfig::SetMaxBatchSize { server, max_batch_size } => {
                    if let Some(s) = self.servers.get_mut(server) { s.set_max_batch_size(max_batch_size) }
                }
                Reconfig::SetInstances { server, instances } => {
                    let Some(s) = self.servers.get_mut(server) else { continue };
                    let warmup = s.spec.warmup;
                    let warm_j = s.spec.warmup_energy.0;
                    for i in s.set_instances(instances) {
                        if warm_j > 0.0 {
                            self.reconfig_j += warm_j;
                            self.series.lump(warm_j);
                        }
                        if warmup.0 == 0 {
                            s.instance_ready(i);
                        } else {
                            self.engine.schedule_at(now + warmup, Ev::Ready(server as u32, i));
                        }
                    }
                }
            }
        }
        self.reconfigs = out;
        self.update_standby();
        let p = self.total_power();
        self.series.set_power_w(p);
        for s in 0..self.servers.len() {
            self.pump(s, now);
        }
        let busy = self.queued + self.in_service > 0;
        if let Some(iv) = self.controller.tick_interval()
            && (!self.arrivals_done || busy || !self.engine.is_empty())
        {
            self.engine.schedule_at(now + iv, Ev::Tick);
        }
    }

    fn finish(mut self) -> RunOutput {
        // the run ends with its last arrival or answer (or the workload's end), not with a
        // controller tick that found nothing left to do
        let end = self.last_activity.max(self.spec.arrivals.end());
        self.accrue_standby(end);
        for d in &mut self.devices {
            if d.busy == 0 {
                d.idle_ns += end.since(d.idle_since).0;
            }
        }
        let ctl = &self.controller;
        let (timeseries, it_integrated_j, co2_g) = self.series.finish(end, &|t| ctl.tau(t));
        let idle_j: f64 = self.devices.iter().map(|d| d.idle_w * d.idle_ns as f64 / 1e9).sum();
        let pue = self.spec.pue;
        // instance standby power is idle-type energy: not attributed to requests
        let idle_j = idle_j + self.standby_j;
        let it_total = self.active_j + idle_j + self.ee_j + self.reconfig_j;
        debug_assert!(
            (it_integrated_j - (self.active_j + idle_j)).abs() <= 1e-9 * it_integrated_j.max(1.0),
            "energy integration disagrees: {it_integrated_j} vs {}", self.active_j + idle_j
        );
        let duration_s = end.as_secs_f64();
        let mut s = self.summary.summarize(duration_s);
        s.mode = "simulate".into();
        s.name = self.spec.name.clone();
        s.energy_j = it_total * pue;
        s.energy_kwh = s.energy_j / crate::core::units::JOULES_PER_KWH;
        s.energy_j_per_request = (s.requests > 0).then(|| s.energy_j / s.requests as f64);
        s.mean_power_w = if duration_s > 0.0 { s.energy_j / duration_s } else { 0.0 };
        s.co2_g = co2_g;
        s.co2_g_per_request = (s.requests > 0).then(|| co2_g / s.requests as f64);
        let n = timeseries.len().max(1) as f64;
        let w = |v: &[f64]| -> f64 {
            // interval-weighted mean (the last interval may be partial)
            let iv = self.spec.interval.as_secs_f64();
            let mut total = 0.0;
            let mut tw = 0.0;
            for (i, x) in v.iter().enumerate() {
                let len = if i + 1 == v.len() { duration_s - timeseries.t_s[i] } else { iv };
                total += x * len;
                tw += len;
            }
            if tw > 0.0 { total / tw } else { 0.0 }
        };
        let _ = n;
        s.mean_queue_len = w(&timeseries.queue_len);
        s.carbon_g_per_kwh_mean = w(&timeseries.carbon_g_per_kwh);
        s.energy = EnergyBreakdown {
            active_j: self.active_j * pue,
            idle_j: idle_j * pue,
            early_exit_j: self.ee_j * pue,
            reconfig_j: self.reconfig_j * pue,
            attributed_j: self.attributed_j * pue,
            pue,
            estimated: self.spec.energy_estimated,
        };
        let mut requests = self.requests;
        if let Some(r) = &mut requests {
            r.sort_by_id();
        }
        RunOutput { summary: s, timeseries, requests, batches: self.batches, events: self.engine.delivered() }
    }
}

// Keep `Joules` in the public API of this module's users' view.
#[allow(dead_code)]
fn _units(_: Joules) {}
