//! Routing of admitted requests among servers (`[routing]` in an experiment file).
//!
//! The router sees what the gateway sees: the servers' queue states ([`ServerView`]), the
//! clock, the arrivals it has observed so far and the operator's cost tables
//! ([`ControllerContext`]). Kinds:
//!
//! | `kind` | keys | rule |
//! |---|---|---|
//! | `first` | | always server 0 |
//! | `round_robin` | | servers in turn |
//! | `shortest_queue` | | fewest requests waiting or in service per instance (ties: first) |
//! | `load_boundary` | `lambda_star_rps`, `halflife_s` (10), `below`, `above` | `below` while the EWMA arrival rate is < λ*, else `above` |
//! | `cost` | `latency_weight` (1), `energy_weight` (0) | minimum `latency_weight·L̂ + energy_weight·Ê` (ties: first) |
//!
//! **Load boundary.** Path A (an unbatched local server) answers fastest at low load, Path B (a
//! dynamically batched server) is cheaper per request at high load; `below` / `above` name the
//! server (by `name` or index) used below and above the boundary `λ*`. The arrival rate is an
//! exponentially decaying count ([`ArrivalRateEwma`]): each observed arrival adds `ln 2 / h`
//! and the sum halves every `h = halflife_s` seconds, so for a Poisson stream of rate λ its
//! time average is λ. Read just after an arrival (as routing does) it is biased up by about
//! `ln 2 / (2h)` rps, negligible when `λ·h ≫ 1`; it starts at 0, so the first ~`h` seconds
//! under-estimate the rate. The simulator calls [`Router::observe_arrival`] on every arrival
//! (skipped and rejected requests included: they are load the gateway sees).
//!
//! **Cost.** For server `i` with current variant `v`, queue length `q`, maximum batch size `B`,
//! `n` instances and full-batch service time `T_B` ([`ServerView::batch_service_s`]), a new
//! request would be the `(q+1)`-th in line, in a batch of at least `b = (q mod B) + 1`:
//!
//! ```text
//! L̂ = ⌊q / B⌋ / n · T_B            full batches ahead of its own, shared by n instances
//!   + [busy_instances ≥ n] · T_B/2  mean residual of the batches in service when no instance is free
//!   + latency_s[b − 1]              its own batch's service time (cost table)
//! Ê = energy_j[b − 1] / b           its share of its batch's energy (cost table)
//! ```
//!
//! `L̂` is in seconds and `Ê` in joules, so `latency_weight` is a cost per second and
//! `energy_weight` a cost per joule (e.g. `latency_weight = 1000, energy_weight = 1` values
//! 1 ms like 1 J). The estimator ignores the batcher's queue delay, future arrivals that would
//! grow the batch, and idle power (it is the marginal cost of one request). A server whose
//! cost table lacks the batch size uses `T_B` for the service and 0 J.

use serde::{Deserialize, Serialize};

use super::controller::{ControllerContext, ServerView};
use crate::core::SimTime;

/// A server named by its `name` or its index in the experiment's `[[server]]` list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ServerRef {
    Index(usize),
    Name(String),
}

impl ServerRef {
    /// The server's index, if it exists.
    pub fn resolve<S: AsRef<str>>(&self, names: &[S]) -> Option<usize> {
        match self {
            ServerRef::Index(i) => (*i < names.len()).then_some(*i),
            ServerRef::Name(n) => names.iter().position(|s| s.as_ref() == n),
        }
    }
}

fn default_halflife_s() -> f64 {
    10.0
}
fn default_latency_weight() -> f64 {
    1.0
}

/// How an admitted request picks its server.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RoutingConfig {
    /// Always the first server.
    #[default]
    First,
    /// Servers in turn.
    RoundRobin,
    /// The server with the fewest requests waiting or in service per instance (ties: first).
    ShortestQueue,
    /// `below` while the EWMA arrival rate is under `lambda_star_rps`, else `above`.
    LoadBoundary {
        lambda_star_rps: f64,
        #[serde(default = "default_halflife_s")]
        halflife_s: f64,
        below: ServerRef,
        above: ServerRef,
    },
    /// The server with the least `latency_weight·L̂ + energy_weight·Ê` (ties: first).
    Cost {
        #[serde(default = "default_latency_weight")]
        latency_weight: f64,
        #[serde(default)]
        energy_weight: f64,
    },
}

impl RoutingConfig {
    pub const KINDS: &'static [&'static str] = &["first", "round_robin", "shortest_queue", "load_boundary", "cost"];

    pub fn kind(&self) -> &'static str {
        match self {
            RoutingConfig::First => "first",
            RoutingConfig::RoundRobin => "round_robin",
            RoutingConfig::ShortestQueue => "shortest_queue",
            RoutingConfig::LoadBoundary { .. } => "load_boundary",
            RoutingConfig::Cost { .. } => "cost",
        }
    }

    /// Checks parameters against the experiment's server names; the message names the key.
    pub fn validate<S: AsRef<str>>(&self, server_names: &[S]) -> Result<(), String> {
        match self {
            RoutingConfig::LoadBoundary { lambda_star_rps, halflife_s, below, above } => {
                if !(lambda_star_rps.is_finite() && *lambda_star_rps >= 0.0) {
                    return Err(format!("routing.lambda_star_rps must be a finite number ≥ 0 (got {lambda_star_rps})"));
                }
                if !(halflife_s.is_finite() && *halflife_s > 0.0) {
                    return Err(format!("routing.halflife_s must be a finite number > 0 (got {halflife_s})"));
                }
                for (key, r) in [("below", below), ("above", above)] {
                    if r.resolve(server_names).is_none() {
                        let known: Vec<&str> = server_names.iter().map(AsRef::as_ref).collect();
                        return Err(format!("routing.{key}: no server {r:?} (servers: {})", known.join(", ")));
                    }
                }
                Ok(())
            }
            RoutingConfig::Cost { latency_weight, energy_weight } => {
                for (key, w) in [("latency_weight", latency_weight), ("energy_weight", energy_weight)] {
                    if !(w.is_finite() && *w >= 0.0) {
                        return Err(format!("routing.{key} must be a finite number ≥ 0 (got {w})"));
                    }
                }
                if *latency_weight == 0.0 && *energy_weight == 0.0 {
                    return Err("routing.latency_weight and routing.energy_weight cannot both be 0".into());
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// An exponentially decaying arrival count: a rate estimate in requests per second.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ArrivalRateEwma {
    halflife_s: f64,
    rate_rps: f64,
    last: SimTime,
}

impl ArrivalRateEwma {
    pub fn new(halflife_s: f64) -> Self {
        ArrivalRateEwma { halflife_s, rate_rps: 0.0, last: SimTime::ZERO }
    }

    /// Counts an arrival at `now` (arrivals come in time order).
    pub fn observe(&mut self, now: SimTime) {
        self.rate_rps = self.rate_at(now) + std::f64::consts::LN_2 / self.halflife_s;
        self.last = now;
    }

    /// The estimate at `now` (≥ the last arrival).
    pub fn rate_at(&self, now: SimTime) -> f64 {
        let dt = now.since(self.last).as_secs_f64();
        self.rate_rps * (-dt / self.halflife_s).exp2()
    }
}

/// A server variant's cost table, as routing needs it.
#[derive(Clone, Debug)]
struct VariantCost {
    latency_s: Vec<f64>,
    energy_j: Vec<f64>,
}

/// Routing state for one run.
#[derive(Clone, Debug)]
pub struct Router {
    config: RoutingConfig,
    next: usize,
    below: usize,
    above: usize,
    rate: ArrivalRateEwma,
    /// `costs[server][variant]`.
    costs: Vec<Vec<VariantCost>>,
}

impl Router {
    /// Validates `config` against the deployment and resolves server names.
    pub fn new(config: RoutingConfig, ctx: &ControllerContext) -> Result<Self, String> {
        let names: Vec<&str> = ctx.servers.iter().map(|s| s.name.as_str()).collect();
        config.validate(&names)?;
        let (mut below, mut above, mut halflife_s) = (0, 0, default_halflife_s());
        if let RoutingConfig::LoadBoundary { below: b, above: a, halflife_s: h, .. } = &config {
            below = b.resolve(&names).unwrap_or(0);
            above = a.resolve(&names).unwrap_or(0);
            halflife_s = *h;
        }
        let costs = ctx
            .servers
            .iter()
            .map(|s| s.variants.iter().map(|v| VariantCost { latency_s: v.latency_s.clone(), energy_j: v.energy_j.clone() }).collect())
            .collect();
        Ok(Router { config, next: 0, below, above, rate: ArrivalRateEwma::new(halflife_s), costs })
    }

    /// Observes an arrival at the gateway (every arrival, in time order).
    #[inline]
    pub fn observe_arrival(&mut self, now: SimTime) {
        if matches!(self.config, RoutingConfig::LoadBoundary { .. }) {
            self.rate.observe(now);
        }
    }

    /// The arrival-rate estimate at `now` (`load_boundary` only).
    pub fn arrival_rate_rps(&self, now: SimTime) -> Option<f64> {
        matches!(self.config, RoutingConfig::LoadBoundary { .. }).then(|| self.rate.rate_at(now))
    }

    /// `(L̂ seconds, Ê joules)` of one more request on server `i` in state `v` (module docs).
    pub fn expected_cost(&self, i: usize, v: &ServerView) -> (f64, f64) {
        let b_max = v.max_batch_size.max(1) as usize;
        let n = v.instances.max(1) as f64;
        let q = v.queue_len;
        let t_full = v.batch_service_s;
        let b = q % b_max + 1;
        let mut wait = (q / b_max) as f64 / n * t_full;
        if v.busy_instances >= v.instances.max(1) {
            wait += t_full / 2.0;
        }
        let cost = self.costs.get(i).and_then(|s| s.get(v.variant));
        let service = cost.and_then(|c| c.latency_s.get(b - 1)).copied().unwrap_or(t_full);
        let energy = cost.and_then(|c| c.energy_j.get(b - 1)).map_or(0.0, |e| e / b as f64);
        (wait + service, energy)
    }

    /// The server for an admitted request at `now`.
    #[inline]
    pub fn route(&mut self, now: SimTime, servers: &[ServerView]) -> usize {
        match self.config {
            RoutingConfig::First => 0,
            RoutingConfig::RoundRobin => {
                let s = self.next % servers.len();
                self.next = self.next.wrapping_add(1);
                s
            }
            RoutingConfig::ShortestQueue => {
                let load = |s: &ServerView| (s.queue_len as f64 + s.in_service as f64) / s.instances.max(1) as f64;
                argmin(servers.iter().map(load))
            }
            RoutingConfig::LoadBoundary { lambda_star_rps, .. } => {
                if self.rate.rate_at(now) < lambda_star_rps {
                    self.below
                } else {
                    self.above
                }
            }
            RoutingConfig::Cost { latency_weight, energy_weight } => argmin(servers.iter().enumerate().map(|(i, v)| {
                let (l, e) = self.expected_cost(i, v);
                latency_weight * l + energy_weight * e
            })),
        }
    }
}

/// Index of the first minimum (0 for an empty iterator).
fn argmin(values: impl Iterator<Item = f64>) -> usize {
    let mut best = (0, f64::INFINITY);
    for (i, x) in values.enumerate() {
        if x < best.1 {
            best = (i, x);
        }
    }
    best.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::SimDuration;
    use crate::model::controller::{ServerProfile, VariantProfile};

    const EPS: f64 = 1e-12;

    fn profile(name: &str, b: u32, latency_s: Vec<f64>, energy_j: Vec<f64>) -> ServerProfile {
        ServerProfile {
            instance_standby_power_w: 0.0,
            name: name.into(),
            variants: vec![VariantProfile { model: "m".into(), accuracy: None, latency_s, energy_j }],
            initial_variant: 0,
            instances: 1,
            max_batch_size: b,
            idle_power_w: 50.0,
            warmup_s: 0.0,
            warmup_energy_j: 0.0,
        }
    }

    /// Path A: local, unbatched, 10 ms / 2 J. Path B: batched up to 4, 10/12/14/16 ms and
    /// 2.0/2.4/2.8/3.2 J per batch.
    fn ctx() -> ControllerContext {
        ControllerContext {
            servers: vec![
                profile("local", 1, vec![0.010], vec![2.0]),
                profile("batched", 4, vec![0.010, 0.012, 0.014, 0.016], vec![2.0, 2.4, 2.8, 3.2]),
            ],
            early_exit: None,
            slo: SimDuration::from_millis_f64(100.0),
        }
    }

    fn view(name: &str, queue_len: usize, busy: u32, instances: u32, b: u32, batch_service_s: f64) -> ServerView {
        ServerView {
            name: name.into(),
            queue_len,
            in_service: busy * b,
            busy_instances: busy,
            instances,
            max_batch_size: b,
            variant: 0,
            batch_service_s,
        }
    }

    fn a(q: usize, busy: u32) -> ServerView {
        view("local", q, busy, 1, 1, 0.010)
    }
    fn b(q: usize, busy: u32) -> ServerView {
        view("batched", q, busy, 1, 4, 0.016)
    }

    fn router(cfg: RoutingConfig) -> Router {
        Router::new(cfg, &ctx()).unwrap()
    }

    #[test]
    fn first_round_robin_shortest_queue() {
        let t = SimTime::ZERO;
        let s = [a(3, 1), b(0, 0), b(2, 0)];
        assert_eq!(router(RoutingConfig::First).route(t, &s), 0);
        let mut rr = router(RoutingConfig::RoundRobin);
        let picks: Vec<usize> = (0..5).map(|_| rr.route(t, &s)).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1]);
        // Loads per instance: (3 + 1)/1 = 4, 0, 2 → server 1.
        assert_eq!(router(RoutingConfig::ShortestQueue).route(t, &s), 1);
        // Ties go to the first.
        assert_eq!(router(RoutingConfig::ShortestQueue).route(t, &[b(1, 0), b(1, 0)]), 0);
    }

    #[test]
    fn arrival_rate_ewma_hand_worked() {
        // h = 1 s, arrivals at 0, 1, 2 s: ln2, ln2/2 + ln2, (ln2/2 + ln2)/2 + ln2.
        let ln2 = std::f64::consts::LN_2;
        let mut r = ArrivalRateEwma::new(1.0);
        assert_eq!(r.rate_at(SimTime::from_secs(5)), 0.0);
        r.observe(SimTime::ZERO);
        assert!((r.rate_at(SimTime::ZERO) - ln2).abs() < EPS);
        r.observe(SimTime::from_secs(1));
        assert!((r.rate_at(SimTime::from_secs(1)) - 1.5 * ln2).abs() < EPS);
        r.observe(SimTime::from_secs(2));
        assert!((r.rate_at(SimTime::from_secs(2)) - 1.75 * ln2).abs() < EPS);
        assert!((r.rate_at(SimTime::from_secs(3)) - 0.875 * ln2).abs() < EPS);
        // A steady 100 rps stream settles at (ln2/h) / (1 − 2^(−0.01/h)) ≈ 100 + ln2/2.
        let mut s = ArrivalRateEwma::new(1.0);
        for i in 0..5000 {
            s.observe(SimTime::from_secs_f64(i as f64 * 0.01));
        }
        let limit = ln2 / (1.0 - (-0.01f64).exp2());
        assert!((s.rate_at(SimTime::from_secs_f64(49.99)) - limit).abs() < 1e-9);
        assert!((limit - 100.0 - ln2 / 2.0).abs() < 1e-3);
    }

    #[test]
    fn load_boundary_switches_paths_at_lambda_star() {
        // λ* = 1.2 rps, h = 1 s; rates after arrivals at 0, 1, 2 s: 0.693, 1.040, 1.213.
        let cfg = RoutingConfig::LoadBoundary {
            lambda_star_rps: 1.2,
            halflife_s: 1.0,
            below: ServerRef::Name("local".into()),
            above: ServerRef::Index(1),
        };
        let mut r = router(cfg);
        let s = [a(0, 0), b(0, 0)];
        let mut picks = Vec::new();
        for t in [0, 1, 2] {
            let now = SimTime::from_secs(t);
            r.observe_arrival(now);
            picks.push(r.route(now, &s));
        }
        assert_eq!(picks, [0, 0, 1]);
        // At 3 s without an arrival the estimate has halved to 0.607: back below.
        assert!((r.arrival_rate_rps(SimTime::from_secs(3)).unwrap() - 0.875 * std::f64::consts::LN_2).abs() < EPS);
        assert_eq!(r.route(SimTime::from_secs(3), &s), 0);
        // Other kinds ignore arrivals.
        let mut f = router(RoutingConfig::First);
        f.observe_arrival(SimTime::ZERO);
        assert_eq!(f.arrival_rate_rps(SimTime::ZERO), None);
    }

    #[test]
    fn cost_estimates_hand_worked() {
        let r = router(RoutingConfig::Cost { latency_weight: 1.0, energy_weight: 0.0 });
        // Idle, empty: own batch of 1.
        assert_eq!(r.expected_cost(0, &a(0, 0)), (0.010, 2.0));
        assert_eq!(r.expected_cost(1, &b(0, 0)), (0.010, 2.0));
        // A with 2 queued, busy: 2 batches ahead (20 ms) + residual 5 ms + own 10 ms.
        let (l, e) = r.expected_cost(0, &a(2, 1));
        assert!((l - 0.035).abs() < EPS && e == 2.0);
        // B with 2 queued, busy: joins a batch of 3: residual 8 ms + 14 ms; 2.8 J / 3.
        let (l, e) = r.expected_cost(1, &b(2, 1));
        assert!((l - 0.022).abs() < EPS && (e - 2.8 / 3.0).abs() < EPS);
        // B with 9 queued on 2 busy instances: ⌊9/4⌋ = 2 batches over 2 instances (16 ms)
        // + residual 8 ms + own batch of 9 mod 4 + 1 = 2 (12 ms); 2.4 J / 2.
        let (l, e) = r.expected_cost(1, &view("batched", 9, 2, 2, 4, 0.016));
        assert!((l - 0.036).abs() < EPS && (e - 1.2).abs() < EPS);
    }

    #[test]
    fn cost_routing_trades_latency_for_energy() {
        // Both idle and empty: equal cost, the first wins.
        let mut lat = router(RoutingConfig::Cost { latency_weight: 1.0, energy_weight: 0.0 });
        assert_eq!(lat.route(SimTime::ZERO, &[a(0, 0), b(0, 0)]), 0);
        // Both busy with 2 queued: B is 22 ms vs A's 35 ms.
        assert_eq!(lat.route(SimTime::ZERO, &[a(2, 1), b(2, 1)]), 1);
        // A idle (10 ms, 2 J) vs B filling a batch of 3 (14 ms, 0.933 J).
        let s = [a(0, 0), b(2, 0)];
        assert_eq!(lat.route(SimTime::ZERO, &s), 0);
        // 100/s + 1/J: A = 1 + 2 = 3, B = 1.4 + 0.933 = 2.333 → B.
        let mut mixed = router(RoutingConfig::Cost { latency_weight: 100.0, energy_weight: 1.0 });
        assert_eq!(mixed.route(SimTime::ZERO, &s), 1);
        // 1000/s + 1/J: A = 10 + 2 = 12, B = 14 + 0.933 = 14.93 → A.
        let mut strict = router(RoutingConfig::Cost { latency_weight: 1000.0, energy_weight: 1.0 });
        assert_eq!(strict.route(SimTime::ZERO, &s), 0);
    }

    #[test]
    fn parses_and_validates() {
        let lb: RoutingConfig = toml::from_str("kind = \"load_boundary\"\nlambda_star_rps = 50\nbelow = \"local\"\nabove = 1").unwrap();
        assert_eq!(
            lb,
            RoutingConfig::LoadBoundary {
                lambda_star_rps: 50.0,
                halflife_s: 10.0,
                below: ServerRef::Name("local".into()),
                above: ServerRef::Index(1),
            }
        );
        assert_eq!(lb.kind(), "load_boundary");
        assert!(Router::new(lb, &ctx()).is_ok());
        let c: RoutingConfig = toml::from_str("kind = \"cost\"\nenergy_weight = 2.5").unwrap();
        assert_eq!(c, RoutingConfig::Cost { latency_weight: 1.0, energy_weight: 2.5 });
        let sq: RoutingConfig = toml::from_str("kind = \"shortest_queue\"").unwrap();
        assert_eq!(sq, RoutingConfig::ShortestQueue);
        assert!(toml::from_str::<RoutingConfig>("kind = \"cost\"\nlatency = 1").is_err());
        assert!(toml::from_str::<RoutingConfig>("kind = \"load_boundary\"\nbelow = 0\nabove = 1").is_err());

        let bad = |cfg: RoutingConfig| Router::new(cfg, &ctx()).unwrap_err();
        let lb = |below: ServerRef, lambda: f64, h: f64| RoutingConfig::LoadBoundary {
            lambda_star_rps: lambda,
            halflife_s: h,
            below,
            above: ServerRef::Index(0),
        };
        assert!(bad(lb(ServerRef::Name("gpu".into()), 1.0, 1.0)).starts_with("routing.below: no server"));
        assert!(bad(lb(ServerRef::Index(2), 1.0, 1.0)).starts_with("routing.below"));
        assert!(bad(lb(ServerRef::Index(0), -1.0, 1.0)).starts_with("routing.lambda_star_rps"));
        assert!(bad(lb(ServerRef::Index(0), 1.0, 0.0)).starts_with("routing.halflife_s"));
        assert!(bad(RoutingConfig::Cost { latency_weight: -1.0, energy_weight: 0.0 }).starts_with("routing.latency_weight"));
        assert!(bad(RoutingConfig::Cost { latency_weight: 0.0, energy_weight: 0.0 }).contains("cannot both be 0"));
    }
}
