//! The gateway thread of `basin serve`: it owns the [`Gateway`] (as the replay's driver does),
//! takes the clients' requests from the HTTP tasks' inbox, hands backend answers to the
//! gateway, and answers each client when the gateway says how its request ended.
//!
//! A request's tensor goes into [`Payloads`] under a ticket, and the ticket is the request's
//! `sample`: the replay's worker pools ([`Executors`]) read live inputs exactly as they read the
//! data set's rows. Outputs (class probabilities) are kept per ticket as the backends return
//! them; the gateway's [`ClientOutcome`] then picks which one the client gets.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::oneshot;

use super::payloads::Payloads;
use super::{Overhead, Shared};
use crate::core::{SimDuration, SimTime};
use crate::gateway::{ClientOutcome, Ended, FailReason, Flow, Gateway, GatewayTotals};
use crate::hw::backend::InputData;
use crate::replay::{self, Executors, MeterState, Msg, Tag};

/// A client's request, from an HTTP task.
pub struct Inbound {
    /// The model the client named (the metrics' label).
    pub model: String,
    pub inputs: InputData,
    pub received: Instant,
    pub reply: oneshot::Sender<Reply>,
}

/// What the gateway answers a client.
#[derive(Debug)]
pub enum Reply {
    Answer {
        probabilities: Vec<f32>,
        /// `admitted` or `skipped`.
        decision: &'static str,
        /// The model whose output it is.
        answered_by: String,
        backend_us: u64,
    },
    /// The controller or a full queue refused it, or the gateway is shutting down (503).
    Rejected(String),
    /// A backend failed (502).
    Failed(String),
}

struct Pending {
    model: String,
    received: Instant,
    reply: oneshot::Sender<Reply>,
    early_exit: Option<Vec<f32>>,
    output: Option<Vec<f32>>,
    backend_ms: f64,
}

/// How often queue lengths, τ and CO₂ are copied into the metrics.
const LEVELS_EVERY: SimDuration = SimDuration(50_000_000);
/// The longest single wait, so a stop request is seen promptly.
const MAX_WAIT: Duration = Duration::from_millis(50);

pub struct GatewayThread<'a, 'm> {
    pub gateway: Gateway<'a>,
    pub backends: Executors<'a>,
    pub meter: MeterState<'m>,
    pub answers: Receiver<Msg>,
    pub inbox: Receiver<Inbound>,
    pub payloads: Arc<Payloads>,
    pub shared: Arc<Shared>,
    pub t0: Instant,
    pub pue: f64,
    pub interval: SimDuration,
    pub meter_estimated: bool,
    /// The cascade's early-exit model (what a skipped request's answer comes from).
    pub early_exit_model: String,
}

/// What the loop leaves: the run in the simulation's schema, its energy, and the gateway's own
/// added latency.
pub struct Served {
    pub totals: GatewayTotals,
    pub energy_j: f64,
    pub overhead: Overhead,
}

impl GatewayThread<'_, '_> {
    fn now(&self) -> SimTime {
        SimTime(self.t0.elapsed().as_nanos() as u64)
    }

    /// Serves until `stop`, then drains in-flight requests for at most `drain` and closes the run.
    pub fn run(mut self, stop: &AtomicBool, drain: Duration) -> Served {
        let mut state =
            LoopState { pending: HashMap::new(), next_ticket: 0, overhead: Histogram::new(3).expect("3 significant figures is valid") };
        let mut drain_deadline: Option<SimTime> = None;
        let mut next_levels = SimTime::ZERO;
        loop {
            let now = self.now();
            if drain_deadline.is_none() && stop.load(Ordering::Relaxed) {
                self.gateway.stop_arrivals();
                drain_deadline = Some(now + SimDuration(drain.as_nanos() as u64));
            }
            while let Ok(a) = self.inbox.try_recv() {
                self.admit(&mut state, a, drain_deadline.is_some());
            }
            while let Ok(m) = self.answers.try_recv() {
                self.deliver(&mut state, m);
            }
            if now >= self.meter.next_sample {
                let at = self.meter.next_sample;
                self.meter.next_sample = at + self.interval;
                self.meter.sample(&mut self.gateway, at);
                self.shared.metrics.energy(self.meter.power_w, self.meter.total_j * self.pue);
                continue;
            }
            if let Some(due) = self.gateway.next_due()
                && due <= now
            {
                let Some((due, wake)) = self.gateway.pop() else { break };
                let flow = self.gateway.handle(due, now, wake, &mut self.backends);
                self.answer_ended(&mut state);
                if flow == Flow::Finished {
                    break;
                }
                continue;
            }
            if now >= next_levels {
                self.shared.metrics.levels(&self.gateway.live_levels());
                next_levels = now + LEVELS_EVERY;
            }
            if let Some(deadline) = drain_deadline {
                if !self.gateway.busy() && state.pending.is_empty() {
                    break;
                }
                if now >= deadline {
                    self.gateway.fail_all(now, &FailReason::DrainTimeout);
                    self.answer_ended(&mut state);
                    break;
                }
            }
            let mut next = self.meter.next_sample.min(next_levels);
            if let Some(t) = self.gateway.next_due() {
                next = next.min(t);
            }
            if let Some(d) = drain_deadline {
                next = next.min(d);
            }
            let wait = Duration::from_nanos(next.0.saturating_sub(self.now().0)).min(MAX_WAIT);
            if let Ok(m) = self.answers.recv_timeout(wait) {
                self.deliver(&mut state, m);
            }
        }
        // anything the gateway never ended (it always should) still gets an answer
        for (ticket, p) in state.pending.drain() {
            self.payloads.remove(ticket);
            let _ = p.reply.send(Reply::Failed(FailReason::DrainTimeout.to_string()));
        }
        let overhead = Overhead::of(&state.overhead);
        self.close(overhead)
    }

    fn close(self, overhead: Overhead) -> Served {
        let GatewayThread { mut gateway, backends, mut meter, shared, pue, meter_estimated, t0, .. } = self;
        // closing the job queues ends the worker threads
        drop(backends);
        meter.close(&mut gateway);
        let energy_j = meter.total_j * pue;
        shared.metrics.energy(meter.power_w, energy_j);
        shared.metrics.levels(&gateway.live_levels());
        let end = SimTime(t0.elapsed().as_nanos() as u64);
        let totals = gateway.finish(end, "serve", Some(meter.total_j), meter_estimated);
        Served { totals, energy_j, overhead }
    }

    fn admit(&mut self, state: &mut LoopState, a: Inbound, stopping: bool) {
        if stopping {
            let _ = a.reply.send(Reply::Rejected("the gateway is shutting down".into()));
            return;
        }
        let ticket = state.next_ticket;
        state.next_ticket = state.next_ticket.wrapping_add(1);
        self.payloads.insert(ticket, a.inputs);
        let at = SimTime(a.received.saturating_duration_since(self.t0).as_nanos() as u64);
        state.pending.insert(
            ticket,
            Pending { model: a.model, received: a.received, reply: a.reply, early_exit: None, output: None, backend_ms: 0.0 },
        );
        let now = self.now().max(at);
        self.gateway.arrive(at, now, ticket, &mut self.backends);
        self.answer_ended(state);
    }

    /// Keeps the outputs a backend returned, then hands its answer to the gateway.
    fn deliver(&mut self, state: &mut LoopState, m: Msg) {
        if let Ok(j) = &m.res {
            let early_exit = matches!(m.tag, Tag::EarlyExit { .. });
            for (i, ticket) in m.samples.iter().enumerate() {
                if let Some(p) = state.pending.get_mut(ticket) {
                    let row = j.output.row(i).to_vec();
                    if early_exit {
                        p.early_exit = Some(row)
                    } else {
                        p.output = Some(row)
                    }
                    p.backend_ms += j.output.elapsed_ms;
                }
            }
        }
        let now = self.now();
        replay::deliver(&mut self.gateway, &mut self.backends, None, now, m);
        self.answer_ended(state);
    }

    /// Answers every client whose request the gateway has ended.
    fn answer_ended(&mut self, state: &mut LoopState) {
        let ended: Vec<Ended> = self.gateway.take_outcomes().collect();
        for e in ended {
            let Some(p) = state.pending.remove(&e.sample) else { continue };
            self.payloads.remove(e.sample);
            let latency_s = p.received.elapsed().as_secs_f64();
            let backend_us = (p.backend_ms * 1e3) as u64;
            let (decision, reply) = match e.outcome {
                ClientOutcome::Served { server } => {
                    let srv = &self.gateway.servers()[server as usize];
                    let model = &srv.spec.variants[srv.variant()].model;
                    match p.output {
                        Some(probabilities) => {
                            ("admitted", Reply::Answer { probabilities, decision: "admitted", answered_by: model.clone(), backend_us })
                        }
                        None => ("failed", Reply::Failed(format!("server `{}` answered without an output", srv.spec.name))),
                    }
                }
                ClientOutcome::Skipped => match p.early_exit {
                    Some(probabilities) => {
                        let answered_by = self.early_exit_model.clone();
                        ("skipped", Reply::Answer { probabilities, decision: "skipped", answered_by, backend_us })
                    }
                    None => ("failed", Reply::Failed("skipped without an early-exit output".into())),
                },
                ClientOutcome::Rejected(reason) => ("rejected", Reply::Rejected(format!("rejected: {reason}"))),
                ClientOutcome::Failed(reason) => ("failed", Reply::Failed(reason.to_string())),
            };
            let overhead_s = matches!(reply, Reply::Answer { .. }).then(|| (latency_s - p.backend_ms / 1e3).max(0.0));
            if let Some(o) = overhead_s {
                // auto-resizing histogram: `record` grows the range instead of clamping
                let _ = state.overhead.record(((o * 1e9) as u64).max(1));
            }
            self.shared.metrics.answered(decision, &p.model, latency_s, overhead_s);
            // a client that went away no longer waits for its answer
            let _ = p.reply.send(reply);
        }
    }
}

struct LoopState {
    pending: HashMap<u32, Pending>,
    next_ticket: u32,
    /// The gateway's own latency per answered request (ns).
    overhead: Histogram<u64>,
}
