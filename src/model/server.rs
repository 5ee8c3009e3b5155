//! Servers: local workers (Path A) and the Triton-style dynamic batcher (Path B).
//!
//! Both kinds share one state machine. A server has a FIFO queue and a set of instances
//! (workers); each instance serves one batch at a time.
//!
//! **Dispatch rule** (docs/src/experiment-file.md "Semantics", Triton's dynamic batcher): a batch is dispatched to a free
//! instance as soon as the queue holds the *trigger size* — the largest preferred batch size
//! not above `max_batch_size`, or `max_batch_size` when no preferred sizes are given — or the
//! oldest queued request has waited `max_queue_delay`. It takes the oldest
//! `min(queue, max_batch_size)` requests; when preferred sizes are given and the delay has not
//! expired, it takes the largest preferred size that fits. An arrival that finds
//! `max_queue_size` requests waiting is rejected.
//!
//! A **local** server is the same machine with `max_queue_delay = 0`: a free worker takes up to
//! `batch_size` (default 1) waiting requests at once.
//!
//! The server is pure: it never schedules events itself. The simulator (or the replay driver)
//! asks it what to do ([`Server::try_dispatch`], [`Server::timer_deadline`]) and schedules the
//! completions and timers it returns.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::controller::ServerView;
use super::cost::ServiceDist;
use super::load::{LoadProfile, RateWindow};
use super::request::QueuedRequest;
use crate::core::{Joules, SimDuration, SimTime, StreamRng};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerKind {
    /// Path A: local serving, small fixed batches, no batching delay.
    Local,
    /// Path B: Triton-style dynamic batcher.
    Batched,
}

/// One model variant a server can run, with its service distribution per batch size.
#[derive(Clone, Debug)]
pub struct Variant {
    pub model: String,
    /// `costs[b - 1]` is the distribution for a batch of `b`.
    pub costs: Vec<ServiceDist>,
    /// Index of this model in the quality table, if it has one.
    pub quality_index: Option<usize>,
}

/// Static description of a server (validated by the config layer).
#[derive(Clone, Debug)]
pub struct ServerSpec {
    pub name: String,
    pub kind: ServerKind,
    pub backend: String,
    pub device: usize,
    pub variants: Vec<Variant>,
    pub initial_variant: usize,
    pub instances: u32,
    pub max_batch_size: u32,
    /// Sorted ascending, each ≤ `max_batch_size`.
    pub preferred_batch_sizes: Vec<u32>,
    pub max_queue_delay: SimDuration,
    pub max_queue_size: Option<usize>,
    /// Time a newly added instance takes before it can serve.
    pub warmup: SimDuration,
    /// Energy a newly added instance draws while warming up.
    pub warmup_energy: Joules,
    /// Power each live instance draws while it is not serving a batch (idle or warming up),
    /// on top of the device's idle power: a loaded model holding memory and clocks.
    pub instance_standby_power_w: f64,
    /// Per-request transport time outside the server's queue and instances (e.g. a KServe
    /// HTTP round trip's client, network and (de)serialisation share): added to each admitted
    /// request's latency on the way back; it occupies no instance.
    pub request_overhead: SimDuration,
    /// Service factor and transport overhead as functions of the server's arrival rate (see
    /// [`crate::model::load`]); when set, its overhead replaces `request_overhead`.
    pub load: Option<LoadProfile>,
    /// Execution times observed in a real run, in execution order (validation level 2): the
    /// server's batches take these instead of drawing from the cost table (neither the load
    /// profile nor the stream applies to them); once they run out, the table again.
    pub observed_service: Option<std::sync::Arc<[SimDuration]>>,
    /// Transport observed per request in a real run (validation levels 1–2): each request
    /// reaches the queue `to_server` after its arrival (or at once, if the gateway's modelled
    /// time before sending was longer) and its answer the gateway `from_server` after its
    /// batch; replaces `request_overhead` and the load profile's overhead.
    pub observed_transport: Option<std::sync::Arc<crate::model::transport::ObservedTransport>>,
    /// Per-execution overhead outside the model observed in a real run (validation levels 1–2):
    /// added to each batch's service time, by the batch's start.
    pub observed_overhead: Option<std::sync::Arc<crate::model::transport::ObservedOverhead>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum InstanceState {
    Idle,
    Busy,
    WarmingUp,
    Removed,
}

#[derive(Clone, Debug)]
struct Instance {
    state: InstanceState,
    /// Leave once the current batch completes.
    retiring: bool,
    batch: Vec<QueuedRequest>,
    started: SimTime,
    energy: Joules,
    variant: usize,
}

/// A batch that has just started service.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dispatch {
    pub instance: u32,
    pub size: u32,
    pub start: SimTime,
    pub service: SimDuration,
    pub energy: Joules,
}

/// A batch that has just finished (its requests: [`Server::batch`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Completed {
    pub instance: u32,
    pub start: SimTime,
    pub energy: Joules,
    /// The variant that served the batch.
    pub variant: usize,
}

/// Why an arrival was not queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueFull;

/// The run-time state of one server.
#[derive(Clone, Debug)]
pub struct Server {
    pub spec: ServerSpec,
    variant: usize,
    max_batch: u32,
    /// Queued requests that start a batch at once: the largest preferred size within
    /// `max_batch`, else `max_batch` (kept with it: the rule is checked after every arrival).
    trigger: usize,
    queue: VecDeque<QueuedRequest>,
    instances: Vec<Instance>,
    idle: u32,
    in_service: u32,
    busy: u32,
    /// Instances that exist and are not leaving.
    active: u32,
    /// Instances warming up.
    warming: u32,
    /// A timer event is pending for this server at this time.
    pub timer_pending: Option<SimTime>,
    rng: StreamRng,
    /// Recent arrivals (only with a load profile).
    rate: RateWindow,
    /// Batches that took an observed execution time so far.
    observed_used: usize,
}

impl Server {
    pub fn new(spec: ServerSpec, rng: StreamRng) -> Self {
        let instances = (0..spec.instances)
            .map(|_| Instance {
                state: InstanceState::Idle,
                retiring: false,
                batch: Vec::new(),
                started: SimTime::ZERO,
                energy: Joules(0.0),
                variant: 0,
            })
            .collect();
        Server {
            variant: spec.initial_variant,
            max_batch: spec.max_batch_size,
            trigger: largest_preferred_within(&spec.preferred_batch_sizes, spec.max_batch_size),
            idle: spec.instances,
            active: spec.instances,
            warming: 0,
            instances,
            spec,
            queue: VecDeque::new(),
            in_service: 0,
            busy: 0,
            timer_pending: None,
            rng,
            rate: RateWindow::default(),
            observed_used: 0,
        }
    }

    pub fn queue_len(&self) -> usize {
        self.queue.len()
    }
    /// Requests being served right now.
    pub fn in_service(&self) -> u32 {
        self.in_service
    }
    pub fn busy_instances(&self) -> u32 {
        self.busy
    }
    pub fn idle_instances(&self) -> u32 {
        self.idle
    }
    /// Live instances not serving a batch (idle or warming up): they draw standby power.
    pub fn standby_instances(&self) -> u32 {
        self.idle + self.warming
    }
    /// Instances that exist and are not leaving (serving, idle or warming up).
    pub fn instances(&self) -> u32 {
        self.active
    }
    pub fn variant(&self) -> usize {
        self.variant
    }
    pub fn model(&self) -> &str {
        &self.spec.variants[self.variant].model
    }
    pub fn max_batch_size(&self) -> u32 {
        self.max_batch
    }
    pub fn oldest_enqueued(&self) -> Option<SimTime> {
        self.queue.front().map(|r| r.enqueued)
    }

    /// What a gateway can observe of this server (for controllers and routing).
    pub fn view(&self) -> ServerView {
        let b = self.max_batch as usize;
        ServerView {
            name: self.spec.name.clone(),
            queue_len: self.queue_len(),
            in_service: self.in_service(),
            busy_instances: self.busy_instances(),
            instances: self.instances(),
            max_batch_size: self.max_batch,
            variant: self.variant,
            batch_service_s: self.spec.variants[self.variant].costs[b - 1].mean_s(),
        }
    }

    fn expired(&self, now: SimTime) -> bool {
        self.queue.front().is_some_and(|r| now >= r.enqueued + self.spec.max_queue_delay)
    }

    /// Adds a request to the queue, or refuses it when the queue is full.
    #[inline]
    pub fn enqueue(&mut self, r: QueuedRequest) -> Result<(), QueueFull> {
        self.note_arrival(r.enqueued);
        if self.spec.max_queue_size.is_some_and(|m| self.queue.len() >= m) {
            return Err(QueueFull);
        }
        self.queue.push_back(r);
        Ok(())
    }

    /// Whether a batch should start now.
    #[inline]
    pub fn ready(&self, now: SimTime) -> bool {
        self.could_start() && self.rule_met(now)
    }

    /// An instance is idle and a request waits: a batch can start once the rule allows.
    #[inline(always)]
    fn could_start(&self) -> bool {
        self.idle > 0 && !self.queue.is_empty()
    }

    /// The dispatch rule: enough requests for a batch, or the oldest one's delay is up.
    #[inline]
    fn rule_met(&self, now: SimTime) -> bool {
        self.queue.len() >= self.trigger || self.expired(now)
    }

    /// Starts one batch if the dispatch rule says so. Call repeatedly until `None`.
    #[inline(always)]
    pub fn try_dispatch(&mut self, now: SimTime) -> Option<Dispatch> {
        // the gateway asks after every arrival and answer; most often no instance is free, or
        // the batch is still filling
        if !self.ready(now) {
            return None;
        }
        self.dispatch(now)
    }

    /// [`Server::try_dispatch`] with an idle instance and the rule met.
    #[inline(never)]
    fn dispatch(&mut self, now: SimTime) -> Option<Dispatch> {
        let n = self.queue.len().min(self.max_batch as usize);
        // a batch its delay releases takes everything up to the maximum
        let size = if self.expired(now) { n } else { largest_preferred_within(&self.spec.preferred_batch_sizes, n as u32) };
        let idx = self.instances.iter().position(|i| i.state == InstanceState::Idle)?;
        let observed = self.spec.observed_service.as_ref().and_then(|o| o.get(self.observed_used).copied());
        let (service, energy) = match observed {
            Some(d) => {
                self.observed_used += 1;
                (d, self.spec.variants[self.variant].costs[size - 1].energy_for(d))
            }
            None => {
                let (mut service, mut energy) = self.spec.variants[self.variant].costs[size - 1].draw(&mut self.rng);
                if let Some(at) = self.load_at(now) {
                    service = SimDuration((service.0 as f64 * at.service_factor).round() as u64);
                    energy = Joules(energy.0 * at.energy_factor);
                }
                (service, energy)
            }
        };
        let (service, energy) = match &self.spec.observed_overhead {
            Some(o) => {
                let extra = o.at(now);
                (service + extra, energy + self.spec.variants[self.variant].costs[size - 1].energy_for(extra))
            }
            None => (service, energy),
        };
        let inst = &mut self.instances[idx];
        inst.batch.clear();
        // copied slice by slice: extending from `drain` moves the requests one at a time
        let (front, back) = self.queue.as_slices();
        let from_front = size.min(front.len());
        inst.batch.extend_from_slice(&front[..from_front]);
        inst.batch.extend_from_slice(&back[..size - from_front]);
        self.queue.drain(..size);
        inst.state = InstanceState::Busy;
        inst.started = now;
        inst.energy = energy;
        inst.variant = self.variant;
        self.idle -= 1;
        self.busy += 1;
        self.in_service += size as u32;
        Some(Dispatch { instance: idx as u32, size: size as u32, start: now, service, energy })
    }

    /// Counts an arrival for the load profile's rate window ([`Server::enqueue`] does it; a
    /// replay calls it for requests a remote server queues itself).
    #[inline]
    pub fn note_arrival(&mut self, now: SimTime) {
        if let Some(l) = &self.spec.load {
            self.rate.arrival(now, l.window);
        }
    }

    /// The load profile's values at the current arrival rate (`None` without a profile).
    #[inline]
    pub fn load_at(&mut self, now: SimTime) -> Option<crate::model::load::LoadAt> {
        let l = self.spec.load.as_ref()?;
        Some(l.at(self.rate.rate(now, l.window)))
    }

    /// The transport overhead of a request answered at `now`: the load profile's at the
    /// current arrival rate, or the fixed `request_overhead`.
    #[inline]
    pub fn overhead(&mut self, now: SimTime) -> SimDuration {
        self.load_at(now).map_or(self.spec.request_overhead, |at| SimDuration::from_millis_f64(at.overhead_ms))
    }

    /// When a timer should fire to dispatch the oldest request on its delay, if a batch is not
    /// ready now but could become ready by waiting.
    #[inline]
    pub fn timer_deadline(&self, now: SimTime) -> Option<SimTime> {
        if !self.could_start() || self.rule_met(now) {
            return None;
        }
        self.queue.front().map(|r| r.enqueued + self.spec.max_queue_delay)
    }

    /// The requests of the batch on `instance` (the last one it served, once complete).
    pub fn batch(&self, instance: u32) -> &[QueuedRequest] {
        &self.instances[instance as usize].batch
    }

    /// Finishes the batch on `instance`; its requests stay readable through [`Server::batch`]
    /// until the instance's next dispatch.
    pub fn complete(&mut self, instance: u32) -> Completed {
        let inst = &mut self.instances[instance as usize];
        debug_assert_eq!(inst.state, InstanceState::Busy);
        self.busy -= 1;
        self.in_service -= inst.batch.len() as u32;
        if inst.retiring {
            inst.state = InstanceState::Removed;
            inst.retiring = false;
        } else {
            inst.state = InstanceState::Idle;
            self.idle += 1;
        }
        Completed { instance, start: inst.started, energy: inst.energy, variant: inst.variant }
    }

    /// Changes the number of instances. New instances start warming up (the caller schedules
    /// [`Server::instance_ready`] after `spec.warmup`, or calls it at once when that is zero)
    /// and their indices are returned. Fewer instances: idle ones leave at once, busy ones
    /// after their current batch.
    pub fn set_instances(&mut self, target: u32) -> Vec<u32> {
        let target = target.max(1);
        let current = self.active;
        self.active = target;
        let mut added = Vec::new();
        if target > current {
            for _ in current..target {
                // Reuse a removed slot when there is one, so indices stay small.
                let slot = self.instances.iter().position(|i| i.state == InstanceState::Removed);
                let fresh = Instance {
                    state: InstanceState::WarmingUp,
                    retiring: false,
                    batch: Vec::new(),
                    started: SimTime::ZERO,
                    energy: Joules(0.0),
                    variant: 0,
                };
                let idx = match slot {
                    Some(i) => {
                        self.instances[i] = fresh;
                        i
                    }
                    None => {
                        self.instances.push(fresh);
                        self.instances.len() - 1
                    }
                };
                self.warming += 1;
                added.push(idx as u32);
            }
        } else {
            let mut excess = current - target;
            // idle and warming-up instances leave first, then busy ones after their batch
            for want in [InstanceState::WarmingUp, InstanceState::Idle, InstanceState::Busy] {
                for inst in self.instances.iter_mut().rev() {
                    if excess == 0 {
                        break;
                    }
                    if inst.state == want && !inst.retiring {
                        match want {
                            InstanceState::Idle => {
                                inst.state = InstanceState::Removed;
                                self.idle -= 1;
                            }
                            InstanceState::WarmingUp => {
                                inst.state = InstanceState::Removed;
                                self.warming -= 1;
                            }
                            _ => inst.retiring = true,
                        }
                        excess -= 1;
                    }
                }
            }
        }
        added
    }

    /// A warming-up instance becomes available (ignored if it was removed meanwhile).
    pub fn instance_ready(&mut self, instance: u32) {
        let inst = &mut self.instances[instance as usize];
        if inst.state == InstanceState::WarmingUp {
            inst.state = InstanceState::Idle;
            self.warming -= 1;
            self.idle += 1;
        }
    }

    /// Instance slots (including removed ones); indices are `0..instance_slots()`.
    pub fn instance_slots(&self) -> usize {
        self.instances.len()
    }

    /// Whether `instance` is serving a batch.
    pub fn is_busy(&self, instance: u32) -> bool {
        self.instances.get(instance as usize).is_some_and(|i| i.state == InstanceState::Busy)
    }

    /// Removes and returns every queued request (the replay fails them when it gives up).
    pub fn drain_queue(&mut self) -> Vec<QueuedRequest> {
        self.queue.drain(..).collect()
    }

    /// Switches the model variant used by the next batches.
    pub fn set_variant(&mut self, variant: usize) {
        if variant < self.spec.variants.len() {
            self.variant = variant;
        }
    }

    /// Changes the maximum batch size (bounded by the sizes the cost table covers).
    pub fn set_max_batch_size(&mut self, b: u32) {
        let limit = self.spec.variants.iter().map(|v| v.costs.len() as u32).min().unwrap_or(1);
        self.max_batch = b.clamp(1, limit);
        self.trigger = largest_preferred_within(&self.spec.preferred_batch_sizes, self.max_batch);
    }
}

/// The largest preferred batch size within `limit`, else `limit` (no preferred sizes, or none
/// that small): the queue length that starts a batch under `max_batch`, and the size of a batch
/// formed from `limit` queued requests.
fn largest_preferred_within(preferred: &[u32], limit: u32) -> usize {
    preferred.iter().rev().find(|&&p| p <= limit).copied().unwrap_or(limit) as usize
}
