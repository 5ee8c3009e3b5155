//! `kind = "ipa"`: IPA-style joint adaptation of model variant, batch size and instance count.
//!
//! After IPA (Ghafouri et al., "IPA: Inference Pipeline Adaptation to Achieve High Accuracy and
//! Cost-Efficiency", 2023), with energy in place of CPU cores. Every `interval_s` the
//! controller predicts the load λ of each server it controls and solves, by exhaustive search
//! over the discrete space (variant v, instances n, batch size b),
//!
//! ```text
//! maximise    a·A(v) − b_w·E(v, n, b)/E_ref − c·b/B_ref
//! subject to  λ ≤ n_eff(n)·b/L(v, b)                  (throughput)
//!             L(v, b) + (b − 1)/λ ≤ SLO               (latency: service + batch fill time)
//! ```
//!
//! where (`b_w` is the key `b`):
//! - `A(v)` is the variant's offline accuracy from the quality table (0 when there is none);
//! - `L(v, b)` = `latency_s[b − 1]`, the mean service time of a batch of b (cost table);
//! - `E(v, n, b)` is the energy per request in joules:
//!   `energy_j[b − 1]/b + n·P_inst/λ + max(0, n − n_now)·E_warm/(λ·T)`: the batch's energy
//!   shared by its requests, the static power `P_inst` (`instance_static_power_w`) of the n
//!   instances spread over the λ requests per second they serve, and the warm-up energy of the
//!   instances to be added, spread over the requests of one interval `T` (`interval_s`);
//! - `n_eff(n)` = n when n ≤ n_now, else `n_now + (n − n_now)·max(0, 1 − w/T)`: a new
//!   instance serves only after its warm-up time `w`, i.e. for the rest of the interval;
//! - normalisations: `E_ref` is the energy per request of the most accurate variant at batch
//!   size 1 with one instance's static power at 1 request/s, `energy_j[0] + P_inst`
//!   (override: `energy_ref_j`), and `B_ref` the largest allowed batch size, so with
//!   accuracy in [0, 1] all three terms are of order one;
//! - `λ` = max(prediction × `headroom` + backlog, `min_load_rps`) (the floor keeps the energy
//!   and batch fill terms finite when there is no traffic); the backlog term, off by default
//!   and not part of IPA, is the server's queue length / `drain_backlog_s`.
//!
//! Ties are broken towards the first variant (in configuration order), then fewer instances,
//! then smaller batches. When nothing is feasible the controller takes the configuration with
//! the most capacity among those meeting the latency constraint (or, if none does, the one with
//! the lowest latency) — the best-effort fallback an operator would want.
//!
//! **Load prediction** uses only arrivals the gateway has seen ([`Controller::decide`] counts
//! them in fixed `bucket_s` buckets: no allocation per request). `predictor = "max"` takes the
//! largest bucket rate over the last `window_s` (IPA's reactive variant; IPA's own predictor is
//! an LSTM forecasting the maximum of the next window); `"ewma"` smooths the mean rate of each
//! interval with weight `ewma_alpha`. With several servers in the deployment the prediction
//! is split evenly over all of them (the router is assumed to balance them).
//!
//! The search space can be restricted (`fix_variant`, `fix_instances`, `fix_batch_size`); the
//! baselines of IPA's study ([`super::baselines`]) are such restrictions.

use serde::{Deserialize, Serialize};

use super::{Controller, ControllerContext, Decision, GatewayView, Reconfig, RequestView, VariantProfile};
use crate::core::{SimDuration, SimTime};

/// The load predictor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PredictorKind {
    /// Largest per-bucket rate over the last `window_s`.
    #[default]
    Max,
    /// Exponentially weighted moving average of each interval's mean rate.
    Ewma,
}

/// `[controller] kind = "ipa"`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpaConfig {
    /// Seconds between adaptations.
    #[serde(default = "super::defaults::interval_s")]
    pub interval_s: f64,
    /// Weight of accuracy.
    #[serde(default = "super::defaults::a")]
    pub a: f64,
    /// Weight of normalised energy per request.
    #[serde(default = "super::defaults::b")]
    pub b: f64,
    /// Weight of normalised batch size.
    #[serde(default = "super::defaults::c")]
    pub c: f64,
    #[serde(default)]
    pub predictor: PredictorKind,
    /// Look-back of the `max` predictor.
    #[serde(default = "super::defaults::window_s")]
    pub window_s: f64,
    /// Width of the arrival-count buckets.
    #[serde(default = "super::defaults::bucket_s")]
    pub bucket_s: f64,
    /// Weight of the newest interval in the `ewma` predictor.
    #[serde(default = "super::defaults::ewma_alpha")]
    pub ewma_alpha: f64,
    /// Multiplies the prediction (over-provisioning margin).
    #[serde(default = "super::defaults::headroom")]
    pub headroom: f64,
    /// Floor of the predicted load.
    #[serde(default = "super::defaults::min_load_rps")]
    pub min_load_rps: f64,
    /// When > 0, a server's queued requests are added to its predicted load as a rate that
    /// drains them in this many seconds (not in IPA; 0: off).
    #[serde(default)]
    pub drain_backlog_s: f64,
    /// Batch sizes to consider (empty: 1 ..= the cost table's largest batch size).
    #[serde(default)]
    pub batch_sizes: Vec<u32>,
    #[serde(default = "super::defaults::max_instances")]
    pub max_instances: u32,
    /// Static power of one instance while it exists (default: the server's
    /// `instance_standby_power_w`).
    #[serde(default)]
    pub instance_static_power_w: Option<f64>,
    /// Warm-up time of a new instance (default: the server's `warmup`).
    #[serde(default)]
    pub warmup_s: Option<f64>,
    /// Warm-up energy of a new instance (default: the server's).
    #[serde(default)]
    pub warmup_energy_j: Option<f64>,
    /// Energy normalisation (default: see the module docs).
    #[serde(default)]
    pub energy_ref_j: Option<f64>,
    /// Names of the servers to control (empty: all).
    #[serde(default)]
    pub servers: Vec<String>,
    /// Only this variant: `"smallest"` (lowest accuracy, then lowest batch-1 energy),
    /// `"largest"` (highest accuracy, then highest energy) or a model name.
    #[serde(default)]
    pub fix_variant: Option<String>,
    /// Only this many instances.
    #[serde(default)]
    pub fix_instances: Option<u32>,
    /// Only this batch size.
    #[serde(default)]
    pub fix_batch_size: Option<u32>,
}

impl Default for IpaConfig {
    fn default() -> Self {
        IpaConfig {
            interval_s: super::defaults::interval_s(),
            a: super::defaults::a(),
            b: super::defaults::b(),
            c: super::defaults::c(),
            predictor: PredictorKind::Max,
            window_s: super::defaults::window_s(),
            bucket_s: super::defaults::bucket_s(),
            ewma_alpha: super::defaults::ewma_alpha(),
            headroom: super::defaults::headroom(),
            min_load_rps: super::defaults::min_load_rps(),
            drain_backlog_s: 0.0,
            batch_sizes: Vec::new(),
            max_instances: super::defaults::max_instances(),
            instance_static_power_w: None,
            warmup_s: None,
            warmup_energy_j: None,
            energy_ref_j: None,
            servers: Vec::new(),
            fix_variant: None,
            fix_instances: None,
            fix_batch_size: None,
        }
    }
}

pub(crate) fn check(ok: bool, key: &str, rule: &str, got: impl std::fmt::Display) -> Result<(), String> {
    if ok { Ok(()) } else { Err(format!("controller.{key} must be {rule} (got {got})")) }
}

pub(crate) fn positive(key: &str, x: f64) -> Result<(), String> {
    check(x.is_finite() && x > 0.0, key, "a finite number > 0", x)
}
pub(crate) fn non_negative(key: &str, x: f64) -> Result<(), String> {
    check(x.is_finite() && x >= 0.0, key, "a finite number >= 0", x)
}

impl IpaConfig {
    /// Checks parameter ranges; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        positive("interval_s", self.interval_s)?;
        non_negative("a", self.a)?;
        non_negative("b", self.b)?;
        non_negative("c", self.c)?;
        positive("window_s", self.window_s)?;
        positive("bucket_s", self.bucket_s)?;
        check(self.bucket_s <= self.window_s, "bucket_s", "<= window_s", self.bucket_s)?;
        check(self.ewma_alpha > 0.0 && self.ewma_alpha <= 1.0, "ewma_alpha", "in (0, 1]", self.ewma_alpha)?;
        positive("headroom", self.headroom)?;
        positive("min_load_rps", self.min_load_rps)?;
        non_negative("drain_backlog_s", self.drain_backlog_s)?;
        check(self.batch_sizes.iter().all(|&b| b >= 1), "batch_sizes", "a list of sizes >= 1", format!("{:?}", self.batch_sizes))?;
        check(self.max_instances >= 1, "max_instances", ">= 1", self.max_instances)?;
        if let Some(p) = self.instance_static_power_w {
            non_negative("instance_static_power_w", p)?;
        }
        if let Some(w) = self.warmup_s {
            non_negative("warmup_s", w)?;
        }
        if let Some(e) = self.warmup_energy_j {
            non_negative("warmup_energy_j", e)?;
        }
        if let Some(e) = self.energy_ref_j {
            positive("energy_ref_j", e)?;
        }
        if let Some(n) = self.fix_instances {
            check((1..=self.max_instances).contains(&n), "fix_instances", "in 1 ..= max_instances", n)?;
        }
        if let Some(b) = self.fix_batch_size {
            check(b >= 1, "fix_batch_size", ">= 1", b)?;
        }
        Ok(())
    }

    /// Checks the names this config refers to against the deployment (server names,
    /// `fix_variant`, batch sizes within the cost table). [`IpaConfig::build`] ignores what
    /// does not resolve, so the config layer should call this first.
    pub fn check_context(&self, ctx: &ControllerContext) -> Result<(), String> {
        resolve_servers(&self.servers, ctx)?;
        for s in &ctx.servers {
            if let Some(pick) = &self.fix_variant
                && resolve_variant(pick, &s.variants).is_none()
            {
                return Err(format!("controller.fix_variant: no model {pick:?} on server {:?}", s.name));
            }
            let table = table_len(&s.variants);
            if let Some(b) = self.fix_batch_size.into_iter().chain(self.batch_sizes.iter().copied()).find(|&b| b as usize > table) {
                return Err(format!("controller.batch_sizes: {b} exceeds the cost table of server {:?} (up to {table})", s.name));
            }
        }
        Ok(())
    }

    /// The optimisation problem of server `s` (load 0, current instances from the profile).
    pub fn problem(&self, ctx: &ControllerContext, s: usize) -> Problem {
        let sp = &ctx.servers[s];
        let table = table_len(&sp.variants) as u32;
        let mut batch_sizes: Vec<u32> = match self.fix_batch_size {
            Some(b) => vec![b],
            None if self.batch_sizes.is_empty() => (1..=table).collect(),
            None => self.batch_sizes.clone(),
        };
        batch_sizes.retain(|&b| b >= 1 && b <= table);
        batch_sizes.sort_unstable();
        batch_sizes.dedup();
        if batch_sizes.is_empty() {
            batch_sizes.push(1);
        }
        let allowed_variants = match self.fix_variant.as_deref().and_then(|p| resolve_variant(p, &sp.variants)) {
            Some(v) => vec![v],
            None => (0..sp.variants.len()).collect(),
        };
        let (min_instances, max_instances) = match self.fix_instances {
            Some(n) => (n, n),
            None => (1, self.max_instances),
        };
        let best = rank_variants(&sp.variants).last().copied().unwrap_or(0);
        let p_inst = self.instance_static_power_w.unwrap_or(sp.instance_standby_power_w);
        let energy_ref_j = self.energy_ref_j.unwrap_or_else(|| {
            let e = sp.variants.get(best).and_then(|v| v.energy_j.first().copied()).unwrap_or(0.0) + p_inst;
            if e > 0.0 { e } else { 1.0 }
        });
        Problem {
            variants: sp.variants.clone(),
            allowed_variants,
            batch_sizes,
            min_instances,
            max_instances,
            load_rps: self.min_load_rps,
            slo_s: ctx.slo.as_secs_f64(),
            a: self.a,
            b: self.b,
            c: self.c,
            energy_ref_j,
            batch_ref: 0,
            instance_static_power_w: p_inst,
            current_instances: sp.instances,
            interval_s: self.interval_s,
            warmup_s: self.warmup_s.unwrap_or(sp.warmup_s),
            warmup_energy_j: self.warmup_energy_j.unwrap_or(sp.warmup_energy_j),
        }
        .with_batch_ref()
    }

    pub(crate) fn planner(&self, ctx: &ControllerContext) -> Planner {
        let servers = resolve_servers(&self.servers, ctx).unwrap_or_default();
        Planner {
            problems: servers.iter().map(|&s| (s, self.problem(ctx, s))).collect(),
            predictor: LoadPredictor::new(self.predictor, self.window_s, self.bucket_s, self.ewma_alpha),
            share: 1.0 / ctx.servers.len().max(1) as f64,
            headroom: self.headroom,
            min_load_rps: self.min_load_rps,
            drain_backlog_s: self.drain_backlog_s,
            interval: SimDuration::from_secs_f64(self.interval_s),
        }
    }

    /// A fresh controller for one run.
    pub fn build(&self, ctx: &ControllerContext) -> Ipa {
        Ipa { planner: self.planner(ctx), last: Vec::new() }
    }
}

fn table_len(variants: &[VariantProfile]) -> usize {
    variants.iter().map(|v| v.latency_s.len().min(v.energy_j.len())).min().unwrap_or(0)
}

/// Variant indices sorted from "smallest" to "largest": by accuracy, then batch-1 energy, then
/// index.
pub fn rank_variants(variants: &[VariantProfile]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..variants.len()).collect();
    let key = |i: usize| (variants[i].accuracy.unwrap_or(0.0), variants[i].energy_j.first().copied().unwrap_or(0.0));
    idx.sort_by(|&x, &y| key(x).partial_cmp(&key(y)).unwrap_or(std::cmp::Ordering::Equal).then(x.cmp(&y)));
    idx
}

/// `"smallest"`, `"largest"` or a model name → a variant index.
pub fn resolve_variant(pick: &str, variants: &[VariantProfile]) -> Option<usize> {
    match pick {
        "smallest" => rank_variants(variants).first().copied(),
        "largest" => rank_variants(variants).last().copied(),
        name => variants.iter().position(|v| v.model == name),
    }
}

/// Server names → indices (empty: every server).
pub fn resolve_servers(names: &[String], ctx: &ControllerContext) -> Result<Vec<usize>, String> {
    if names.is_empty() {
        return Ok((0..ctx.servers.len()).collect());
    }
    names
        .iter()
        .map(|n| ctx.servers.iter().position(|s| s.name == *n).ok_or_else(|| format!("controller.servers: no server named {n:?}")))
        .collect()
}

/// One server's adaptation problem at one moment (see the module docs for the formulas).
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    pub variants: Vec<VariantProfile>,
    /// Indices into `variants` the search may use.
    pub allowed_variants: Vec<usize>,
    /// Sorted ascending, each within every variant's cost table.
    pub batch_sizes: Vec<u32>,
    pub min_instances: u32,
    pub max_instances: u32,
    /// λ, already floored and with headroom applied.
    pub load_rps: f64,
    pub slo_s: f64,
    pub a: f64,
    pub b: f64,
    pub c: f64,
    pub energy_ref_j: f64,
    /// Batch-size normalisation (the largest of `batch_sizes`).
    pub batch_ref: u32,
    pub instance_static_power_w: f64,
    /// Instances that exist now (reconfiguration costs apply to more than these).
    pub current_instances: u32,
    pub interval_s: f64,
    pub warmup_s: f64,
    pub warmup_energy_j: f64,
}

impl Problem {
    /// Sets `batch_ref` to the largest batch size.
    pub fn with_batch_ref(mut self) -> Self {
        self.batch_ref = self.batch_sizes.iter().copied().max().unwrap_or(1);
        self
    }

    /// Energy per request `E(v, n, b)` in joules.
    pub fn energy_per_request_j(&self, v: usize, n: u32, b: u32) -> f64 {
        let lam = self.load_rps;
        let added = n.saturating_sub(self.current_instances) as f64;
        self.variants[v].energy_j[b as usize - 1] / b as f64
            + n as f64 * self.instance_static_power_w / lam
            + added * self.warmup_energy_j / (lam * self.interval_s)
    }

    /// Instances serving over the next interval, counting a new one for the part of the
    /// interval after its warm-up.
    pub fn effective_instances(&self, n: u32) -> f64 {
        if n <= self.current_instances {
            n as f64
        } else {
            let avail = (1.0 - self.warmup_s / self.interval_s).max(0.0);
            self.current_instances as f64 + (n - self.current_instances) as f64 * avail
        }
    }

    /// Whether (v, n, b) meets both constraints.
    pub fn feasible(&self, v: usize, n: u32, b: u32) -> bool {
        let Some(&lat) = self.variants[v].latency_s.get(b as usize - 1) else { return false };
        let lam = self.load_rps;
        lam <= self.effective_instances(n) * b as f64 / lat && lat + (b as f64 - 1.0) / lam <= self.slo_s
    }

    /// The objective of (v, n, b), whether or not it is feasible.
    pub fn objective(&self, v: usize, n: u32, b: u32) -> f64 {
        let acc = self.variants[v].accuracy.unwrap_or(0.0);
        self.a * acc - self.b * self.energy_per_request_j(v, n, b) / self.energy_ref_j - self.c * b as f64 / self.batch_ref as f64
    }

    /// The objective of (v, n, b) when it is feasible.
    pub fn evaluate(&self, v: usize, n: u32, b: u32) -> Option<f64> {
        let table = self.variants[v].latency_s.len().min(self.variants[v].energy_j.len());
        (b >= 1 && (b as usize) <= table && self.feasible(v, n, b)).then(|| self.objective(v, n, b))
    }

    /// Every point of the search space, in tie-breaking order.
    pub fn space(&self) -> impl Iterator<Item = (usize, u32, u32)> + '_ {
        self.allowed_variants.iter().flat_map(move |&v| {
            (self.min_instances..=self.max_instances).flat_map(move |n| self.batch_sizes.iter().map(move |&b| (v, n, b)))
        })
    }
}

/// A configuration of one server.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Choice {
    pub variant: usize,
    pub instances: u32,
    pub batch_size: u32,
    /// The objective (for a fallback choice: of the infeasible configuration).
    pub objective: f64,
    pub feasible: bool,
}

/// The best feasible configuration, by exhaustive search (`None`: nothing is feasible).
pub fn optimize(p: &Problem) -> Option<Choice> {
    let mut best: Option<Choice> = None;
    for (v, n, b) in p.space() {
        if let Some(f) = p.evaluate(v, n, b)
            && best.is_none_or(|c| f > c.objective)
        {
            best = Some(Choice { variant: v, instances: n, batch_size: b, objective: f, feasible: true });
        }
    }
    best
}

/// What to run when nothing is feasible: the most capacity among configurations meeting the
/// latency constraint, or else the lowest latency (ties: the search order).
pub fn fallback(p: &Problem) -> Option<Choice> {
    let lam = p.load_rps;
    // (meets the latency constraint, capacity or −latency) ranks the candidates
    let mut best: Option<(bool, f64, Choice)> = None;
    for (v, n, b) in p.space() {
        let Some(&lat) = p.variants[v].latency_s.get(b as usize - 1) else { continue };
        let delay = lat + (b as f64 - 1.0) / lam;
        let key = if delay <= p.slo_s { (true, p.effective_instances(n) * b as f64 / lat) } else { (false, -delay) };
        if best.is_none_or(|(ok, x, _)| key > (ok, x)) {
            best =
                Some((key.0, key.1, Choice { variant: v, instances: n, batch_size: b, objective: p.objective(v, n, b), feasible: false }));
        }
    }
    best.map(|(.., c)| c)
}

/// Arrival-rate predictor fed by the arrivals the gateway sees.
#[derive(Clone, Debug)]
pub struct LoadPredictor {
    kind: PredictorKind,
    bucket_ns: u64,
    /// Ring of per-bucket counts: the `len - 1` newest complete buckets and the current one.
    counts: Vec<u32>,
    /// Absolute index of the newest bucket in the ring.
    head: u64,
    since_tick: u64,
    last_tick: SimTime,
    ewma: Option<f64>,
    alpha: f64,
}

impl LoadPredictor {
    pub fn new(kind: PredictorKind, window_s: f64, bucket_s: f64, alpha: f64) -> Self {
        let bucket_ns = SimDuration::from_secs_f64(bucket_s).0.max(1);
        let len = ((window_s / bucket_s).round() as usize).max(1) + 1;
        LoadPredictor { kind, bucket_ns, counts: vec![0; len], head: 0, since_tick: 0, last_tick: SimTime::ZERO, ewma: None, alpha }
    }

    fn roll(&mut self, idx: u64) {
        if idx > self.head {
            let len = self.counts.len() as u64;
            for i in (self.head + 1)..=idx.min(self.head + len) {
                self.counts[(i % len) as usize] = 0;
            }
            self.head = idx;
        }
    }

    /// Counts one arrival (O(1), no allocation).
    #[inline]
    pub fn observe(&mut self, t: SimTime) {
        let idx = t.0 / self.bucket_ns;
        self.roll(idx);
        let len = self.counts.len() as u64;
        if self.head - idx < len {
            self.counts[(idx % len) as usize] += 1;
        }
        self.since_tick += 1;
    }

    /// Predicted arrival rate at `now`; call once per tick (it closes the EWMA's interval).
    pub fn predict(&mut self, now: SimTime) -> f64 {
        let span = now.since(self.last_tick).as_secs_f64();
        let mean = if span > 0.0 { self.since_tick as f64 / span } else { 0.0 };
        self.since_tick = 0;
        self.last_tick = now;
        let e = match self.ewma {
            Some(e) => self.alpha * mean + (1.0 - self.alpha) * e,
            None => mean,
        };
        self.ewma = Some(e);
        match self.kind {
            PredictorKind::Ewma => e,
            PredictorKind::Max => {
                let cur = now.0 / self.bucket_ns;
                self.roll(cur);
                let len = self.counts.len() as u64;
                let bucket_s = self.bucket_ns as f64 / 1e9;
                let max = (cur.saturating_sub(len - 1)..cur).map(|i| self.counts[(i % len) as usize]).max().unwrap_or(0);
                max as f64 / bucket_s
            }
        }
    }
}

/// The parts IPA and Q-learning share: one problem per controlled server and the predictor.
#[derive(Clone, Debug)]
pub(crate) struct Planner {
    pub problems: Vec<(usize, Problem)>,
    pub predictor: LoadPredictor,
    pub share: f64,
    pub headroom: f64,
    pub min_load_rps: f64,
    pub drain_backlog_s: f64,
    pub interval: SimDuration,
}

impl Planner {
    /// Predicts the load and refreshes every problem's load and current instance count.
    pub fn update(&mut self, view: &GatewayView<'_>) {
        let lam = self.predictor.predict(view.now) * self.share * self.headroom;
        for (s, p) in &mut self.problems {
            let sv = view.servers.get(*s);
            let backlog = match sv {
                Some(v) if self.drain_backlog_s > 0.0 => v.queue_len as f64 / self.drain_backlog_s,
                _ => 0.0,
            };
            p.load_rps = (lam + backlog).max(self.min_load_rps);
            if let Some(v) = sv {
                p.current_instances = v.instances;
            }
        }
    }
}

/// Emits the actions that move server `s` from its viewed state to `c`.
pub(crate) fn reconfigure(s: usize, c: &Choice, view: &GatewayView<'_>, out: &mut Vec<Reconfig>) {
    let cur = view.servers.get(s);
    if cur.is_none_or(|v| v.variant != c.variant) {
        out.push(Reconfig::SetVariant { server: s, variant: c.variant });
    }
    if cur.is_none_or(|v| v.max_batch_size != c.batch_size) {
        out.push(Reconfig::SetMaxBatchSize { server: s, max_batch_size: c.batch_size });
    }
    if cur.is_none_or(|v| v.instances != c.instances) {
        out.push(Reconfig::SetInstances { server: s, instances: c.instances });
    }
}

/// The IPA controller: admits everything, re-plans every interval.
#[derive(Clone, Debug)]
pub struct Ipa {
    planner: Planner,
    last: Vec<(usize, Choice)>,
}

impl Ipa {
    /// The configurations chosen at the last tick (server index, choice).
    pub fn last_choices(&self) -> &[(usize, Choice)] {
        &self.last
    }
}

impl Controller for Ipa {
    #[inline]
    fn decide(&mut self, req: &RequestView, _view: &GatewayView<'_>) -> Decision {
        self.planner.predictor.observe(req.arrival);
        Decision::Admit
    }

    fn tick_interval(&self) -> Option<SimDuration> {
        Some(self.planner.interval)
    }

    fn on_tick(&mut self, view: &GatewayView<'_>, out: &mut Vec<Reconfig>) {
        self.planner.update(view);
        self.last.clear();
        for (s, p) in &self.planner.problems {
            if let Some(c) = optimize(p).or_else(|| fallback(p)) {
                reconfigure(*s, &c, view, out);
                self.last.push((*s, c));
            }
        }
    }
}

impl super::PolicyConfig for IpaConfig {
    fn validate(&self) -> Result<(), String> {
        IpaConfig::validate(self)
    }
    fn check_context(&self, ctx: &ControllerContext) -> Result<(), String> {
        IpaConfig::check_context(self, ctx)
    }
    fn build_controller(&self, ctx: &ControllerContext, _: &crate::core::RngStreams) -> Box<dyn super::Controller> {
        Box::new(self.build(ctx))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::core::RngStreams;
    use crate::model::controller::{ServerProfile, ServerView};
    use rand::RngExt;

    /// A random small problem: 1–4 variants, batch tables up to 6, loads that make some
    /// configurations infeasible.
    pub(crate) fn random_problem(rng: &mut crate::core::StreamRng) -> Problem {
        let nv = rng.random_range(1..=4);
        let table = rng.random_range(1..=6usize);
        let variants = (0..nv)
            .map(|i| {
                let base: f64 = rng.random_range(0.002..0.05);
                let marginal: f64 = rng.random_range(0.1..1.0);
                let e1: f64 = rng.random_range(0.1..5.0);
                VariantProfile {
                    model: format!("m{i}"),
                    accuracy: Some(rng.random_range(0.5..0.95)),
                    latency_s: (1..=table).map(|b| base * (1.0 + marginal * (b as f64 - 1.0))).collect(),
                    energy_j: (1..=table).map(|b| e1 * (1.0 + 0.6 * (b as f64 - 1.0))).collect(),
                }
            })
            .collect::<Vec<_>>();
        let mut batch_sizes: Vec<u32> = (1..=table as u32).filter(|_| rng.random_bool(0.7)).collect();
        if batch_sizes.is_empty() {
            batch_sizes.push(1);
        }
        let max_instances = rng.random_range(1..=4);
        Problem {
            allowed_variants: (0..nv).collect(),
            variants,
            batch_sizes,
            min_instances: 1,
            max_instances,
            load_rps: rng.random_range(1.0..400.0),
            slo_s: rng.random_range(0.01..0.2),
            a: rng.random_range(0.0..2.0),
            b: rng.random_range(0.0..1.0),
            c: rng.random_range(0.0..0.1),
            energy_ref_j: rng.random_range(0.5..5.0),
            batch_ref: 0,
            instance_static_power_w: rng.random_range(0.0..50.0),
            current_instances: rng.random_range(1..=max_instances),
            interval_s: 10.0,
            warmup_s: rng.random_range(0.0..12.0),
            warmup_energy_j: rng.random_range(0.0..100.0),
        }
        .with_batch_ref()
    }

    /// The objective written out independently of [`Problem`]'s methods.
    fn brute_force(p: &Problem) -> Option<(f64, usize, u32, u32)> {
        let mut best: Option<(f64, usize, u32, u32)> = None;
        for &v in &p.allowed_variants {
            let var = &p.variants[v];
            for n in p.min_instances..=p.max_instances {
                for &b in &p.batch_sizes {
                    let lat = var.latency_s[b as usize - 1];
                    let lam = p.load_rps;
                    let new = if n > p.current_instances { (n - p.current_instances) as f64 } else { 0.0 };
                    let n_eff = n as f64 - new + new * (1.0 - p.warmup_s / p.interval_s).max(0.0);
                    if lam > n_eff * b as f64 / lat || lat + (b - 1) as f64 / lam > p.slo_s {
                        continue;
                    }
                    let e = var.energy_j[b as usize - 1] / b as f64
                        + n as f64 * p.instance_static_power_w / lam
                        + new * p.warmup_energy_j / (lam * p.interval_s);
                    let f = p.a * var.accuracy.unwrap() - p.b * e / p.energy_ref_j - p.c * b as f64 / p.batch_ref as f64;
                    if best.is_none_or(|(g, ..)| f > g) {
                        best = Some((f, v, n, b));
                    }
                }
            }
        }
        best
    }

    #[test]
    fn optimizer_equals_brute_force_on_random_problems() {
        let mut rng = RngStreams::new(11).stream("ipa-test");
        let (mut feasible, mut infeasible) = (0, 0);
        for _ in 0..3000 {
            let p = random_problem(&mut rng);
            let got = optimize(&p);
            match (got, brute_force(&p)) {
                (None, None) => infeasible += 1,
                (Some(c), Some((f, v, n, b))) => {
                    feasible += 1;
                    assert!((c.objective - f).abs() <= 1e-12 * f.abs().max(1.0), "{c:?} vs {f}");
                    assert_eq!((c.variant, c.instances, c.batch_size), (v, n, b), "{p:?}");
                }
                (g, w) => panic!("optimizer {g:?} vs brute force {w:?} on {p:?}"),
            }
        }
        assert!(feasible > 500 && infeasible > 100, "{feasible} feasible, {infeasible} infeasible: widen the generator");
    }

    fn two_variant_ctx() -> ControllerContext {
        let v = |m: &str, acc, lat: f64, e: f64| VariantProfile {
            model: m.into(),
            accuracy: Some(acc),
            latency_s: (1..=4).map(|b| lat * (1.0 + 0.5 * (b as f64 - 1.0))).collect(),
            energy_j: (1..=4).map(|b| e * (1.0 + 0.5 * (b as f64 - 1.0))).collect(),
        };
        ControllerContext {
            servers: vec![ServerProfile {
                instance_standby_power_w: 0.0,
                name: "s".into(),
                variants: vec![v("big", 0.9, 0.02, 2.0), v("small", 0.7, 0.005, 0.4)],
                initial_variant: 0,
                instances: 1,
                max_batch_size: 1,
                idle_power_w: 50.0,
                warmup_s: 0.0,
                warmup_energy_j: 0.0,
            }],
            early_exit: None,
            slo: SimDuration::from_millis_f64(100.0),
        }
    }

    #[test]
    fn infeasible_when_slo_below_every_latency_and_fallback_is_fastest() {
        let ctx = two_variant_ctx();
        let mut p = IpaConfig::default().problem(&ctx, 0);
        p.slo_s = 0.001;
        p.load_rps = 10.0;
        assert_eq!(optimize(&p), None);
        let f = fallback(&p).unwrap();
        assert!(!f.feasible);
        assert_eq!((f.variant, f.batch_size), (1, 1), "lowest latency: small model at batch 1");
        // load beyond every configuration's capacity, latency fine: most capacity wins
        p.slo_s = 10.0;
        p.load_rps = 1e6;
        assert_eq!(optimize(&p), None);
        let f = fallback(&p).unwrap();
        assert_eq!((f.variant, f.instances, f.batch_size), (1, p.max_instances, 4));
    }

    #[test]
    fn restricted_search_spaces() {
        let ctx = two_variant_ctx();
        let low = IpaConfig { fix_variant: Some("smallest".into()), ..Default::default() }.problem(&ctx, 0);
        assert_eq!(low.allowed_variants, vec![1]);
        let high = IpaConfig { fix_variant: Some("largest".into()), ..Default::default() }.problem(&ctx, 0);
        assert_eq!(high.allowed_variants, vec![0]);
        let pinned = IpaConfig { fix_instances: Some(3), fix_batch_size: Some(2), ..Default::default() }.problem(&ctx, 0);
        assert_eq!((pinned.min_instances, pinned.max_instances, pinned.batch_sizes.clone()), (3, 3, vec![2]));
        assert!(pinned.space().all(|(_, n, b)| n == 3 && b == 2));
        let cfg = IpaConfig { fix_variant: Some("nope".into()), ..Default::default() };
        assert!(cfg.check_context(&ctx).unwrap_err().contains("fix_variant"));
        let cfg = IpaConfig { servers: vec!["x".into()], ..Default::default() };
        assert!(cfg.check_context(&ctx).unwrap_err().contains("controller.servers"));
    }

    #[test]
    fn warmup_limits_new_capacity() {
        let ctx = two_variant_ctx();
        let mut p = IpaConfig { fix_variant: Some("big".into()), fix_batch_size: Some(1), ..Default::default() }.problem(&ctx, 0);
        // one instance of "big" at batch 1 serves 50 rps; ask for 90
        p.load_rps = 90.0;
        p.current_instances = 1;
        assert_eq!(optimize(&p).map(|c| c.instances), Some(2));
        p.warmup_s = 5.0; // a second instance serves half the interval: 75 rps in all
        assert_eq!(optimize(&p).map(|c| c.instances), Some(3));
        p.warmup_s = 10.0;
        assert_eq!(optimize(&p), None);
    }

    fn view(servers: &[ServerView], now: SimTime) -> GatewayView<'_> {
        GatewayView { now, servers, carbon_g_per_kwh: 0.0, power_w: 0.0, slo: SimDuration::from_millis_f64(100.0) }
    }

    #[test]
    fn predictor_max_and_ewma() {
        let mut m = LoadPredictor::new(PredictorKind::Max, 3.0, 1.0, 0.5);
        let mut e = LoadPredictor::new(PredictorKind::Ewma, 3.0, 1.0, 0.5);
        // 5 arrivals in second 0, 20 in second 1, 2 in seconds 2..=5
        let mut ts = Vec::new();
        ts.extend((0..5).map(|i| 0.1 * i as f64));
        ts.extend((0..20).map(|i| 1.0 + 0.04 * i as f64));
        for s in 2..6 {
            ts.extend((0..2).map(|i| s as f64 + 0.3 * i as f64));
        }
        for &t in &ts {
            e.observe(SimTime::from_secs_f64(t));
        }
        for &t in ts.iter().filter(|&&t| t < 4.0) {
            m.observe(SimTime::from_secs_f64(t));
        }
        // at t = 4 s the complete buckets of the last 3 s are seconds 1, 2, 3
        assert_eq!(m.predict(SimTime::from_secs(4)), 20.0);
        for &t in ts.iter().filter(|&&t| t >= 4.0) {
            m.observe(SimTime::from_secs_f64(t));
        }
        // at t = 6 s they are 3, 4, 5
        assert_eq!(m.predict(SimTime::from_secs(6)), 2.0);
        assert_eq!(e.predict(SimTime::from_secs(6)), ts.len() as f64 / 6.0);
        e.observe(SimTime::from_secs_f64(6.5));
        let want = 0.5 * (1.0 / 6.0) + 0.5 * ts.len() as f64 / 6.0;
        assert!((e.predict(SimTime::from_secs(12)) - want).abs() < 1e-12);
    }

    #[test]
    fn controller_scales_up_under_load_and_emits_only_changes() {
        let ctx = two_variant_ctx();
        let cfg = IpaConfig {
            interval_s: 2.0,
            window_s: 2.0,
            fix_variant: Some("big".into()),
            fix_batch_size: Some(1),
            instance_static_power_w: Some(1.0),
            ..Default::default()
        };
        cfg.validate().unwrap();
        let mut c = cfg.build(&ctx);
        assert_eq!(c.tick_interval(), Some(SimDuration::from_secs(2)));
        let sv = ServerView {
            name: "s".into(),
            queue_len: 0,
            in_service: 0,
            busy_instances: 0,
            instances: 1,
            max_batch_size: 1,
            variant: 0,
            batch_service_s: 0.02,
        };
        let servers = vec![sv.clone()];
        // 120 rps for two seconds: "big" serves 50 rps per instance -> 3 instances
        for i in 0..240 {
            let r = RequestView { id: i, arrival: SimTime::from_secs_f64(i as f64 / 120.0), uncertainty: None };
            assert_eq!(c.decide(&r, &view(&servers, r.arrival)), Decision::Admit);
        }
        let mut out = Vec::new();
        c.on_tick(&view(&servers, SimTime::from_secs(2)), &mut out);
        assert_eq!(out, vec![Reconfig::SetInstances { server: 0, instances: 3 }]);
        // no traffic: back to one instance (static power makes more cost energy)
        let servers = vec![ServerView { instances: 3, ..sv }];
        out.clear();
        c.on_tick(&view(&servers, SimTime::from_secs(4)), &mut out);
        assert_eq!(out, vec![Reconfig::SetInstances { server: 0, instances: 1 }]);
    }

    #[test]
    fn config_keys_parse_and_validate() {
        let cfg: IpaConfig =
            toml::from_str("interval_s = 5\na = 2\npredictor = \"ewma\"\nbatch_sizes = [1, 4]\nfix_instances = 2").unwrap();
        assert_eq!((cfg.interval_s, cfg.a, cfg.predictor, cfg.fix_instances), (5.0, 2.0, PredictorKind::Ewma, Some(2)));
        cfg.validate().unwrap();
        assert!(toml::from_str::<IpaConfig>("intervl_s = 5").is_err());
        let bad = IpaConfig { fix_instances: Some(9), ..Default::default() };
        assert!(bad.validate().unwrap_err().contains("controller.fix_instances"));
        assert!(IpaConfig { window_s: 0.0, ..Default::default() }.validate().unwrap_err().contains("window_s"));
    }
}
