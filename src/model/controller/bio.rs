//! `kind = "bio_threshold"`: admission against a decaying threshold, after the bio-inspired
//! controller of Hamdi & Jabou, *Green MLOps* (the "decaying threshold" model).
//!
//! # The model
//!
//! Every request gets a score from three signals a gateway can observe:
//!
//! - **uncertainty** `U(x) ∈ [0, 1]`: `1 −` the cascade's early-exit model confidence on this
//!   request ([`RequestView::uncertainty`]). A request without one (no cascade, or a quality
//!   table without confidences) uses `U = 1`: it looks maximally in need of the full model, so
//!   the score reduces to `α − β·Ê − γ·Ĉ` and the controller acts as a pure energy / load shedder.
//! - **energy** `Ê = ē / energy_ref_j`: `ē` is an EWMA (weight `ewma_weight` per completion) of
//!   the energy share of the requests the full-model path completed (what a meter read around
//!   each batch gives, [`CompletionView::energy_j`]). It starts at the reference prior (below),
//!   so `Ê = 1` before the first completion with the default reference, and falls as batching
//!   amortises the batch energy over more requests.
//! - **congestion** `Ĉ = Σ queue_len / Σ (max_batch_size × instances) + p95_weight · p̂95 / SLO`,
//!   summed over **all** servers (the controller does not know which server the router will
//!   pick, so it uses the deployment's total queued work in units of one round of full
//!   batches; a server with no instance contributes no capacity, and a total capacity of 0 is
//!   treated as 1). `p̂95` is the nearest-rank 95th percentile of the last `p95_samples`
//!   completion latencies (0 before any completion); the term is off by default
//!   (`p95_weight = 0`).
//!
//! The score is `S(x) = α·U(x) − β·Ê − γ·Ĉ`, and the request is **admitted iff `S(x) ≥ τ(t)`**
//! (served by the full model on the server the router picks); otherwise it is **skipped**: the
//! early-exit model's answer is returned, which costs that model's latency and energy (already
//! paid by every request in a cascade) and is correct when that model is right on the
//! request's sample. A high threshold therefore skips more.
//!
//! The threshold relaxes exponentially:
//!
//! ```text
//! τ(t) = τ∞ + (τ_ref − τ∞) · e^(−k·(t − t_ref))        (τ(t) = τ_ref for t < t_ref)
//! ```
//!
//! - **open loop** (no `[controller.feedback]`): `τ_ref = τ0`, `t_ref = 0` forever: the
//!   paper's `τ(t) = τ∞ + (τ0 − τ∞)·e^(−k·t)` literally.
//! - **closed loop** (`[controller.feedback]` present): time is cut into windows of `window_s`
//!   (the controller ticks every `window_s`, so in the simulator a window ends exactly at each
//!   multiple of `window_s`). When a window closes (the first tick, completion or decision at or
//!   after its end, at time `t`), it is a *feedback event* if the share of its completions whose
//!   latency exceeded the SLO is **strictly above** `slo_violation_target`, or, with
//!   `power_budget_w`, if the mean meter power over the window (sample-and-hold of
//!   [`GatewayView::power_w`] between the controller's observations) is strictly above the
//!   budget. An event re-heats the threshold: `τ_ref = min(τ_max, τ(t) + reheat)`, `t_ref = t`.
//!   A window with no completion has a violation rate of 0. The next window runs from `t` to
//!   `t + window_s`.
//!
//! Everything the controller uses is in its view: the request's own uncertainty, the queue
//! states, the clock, the meter, and its own record of past completions. It never sees a
//! label or the future. The state is a handful of numbers plus a latency ring buffer sized at
//! build time: no allocation per request.
//!
//! # Mapping to the paper
//!
//! Hamdi & Jabou score a request by its utility/uncertainty `L(x)`, marginal energy `E(x)` and
//! congestion `C(x)` and compare the score with `τ(t) = τ∞ + (τ0 − τ∞)·e^(−k·t)`. The paper
//! states the comparison in both directions and gives no parameter values or normalisations.
//! basin fixes one coherent reading:
//!
//! | paper | basin |
//! |---|---|
//! | `L(x)` utility / uncertainty | `U(x) = 1 −` early-exit confidence (1 without a cascade) |
//! | `E(x)` marginal energy | `Ê`: EWMA of observed per-request energy / `energy_ref_j` |
//! | `C(x)` congestion | `Ĉ`: queued requests / batch capacity (+ optional p95 / SLO) |
//! | score (combination unspecified) | `S = α·U − β·Ê − γ·Ĉ` (energy and congestion count *against* serving) |
//! | admit vs. threshold (direction inconsistent) | admit iff `S ≥ τ(t)`, else skip to the early exit |
//! | `τ(t) = τ∞ + (τ0 − τ∞)e^(−kt)` | same in open loop; closed loop re-heats `τ` on SLO / power events |
//!
//! # Parameters (`[controller]`, `kind = "bio_threshold"`)
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `alpha` | 1.0 | weight of the uncertainty `U` (≥ 0) |
//! | `beta` | 0.1 | weight of the normalised energy `Ê` (≥ 0) |
//! | `gamma` | 0.1 | weight of the congestion `Ĉ` (≥ 0) |
//! | `tau0` | 0.5 | threshold at `t = 0` |
//! | `tau_inf` | 0.1 | asymptotic threshold |
//! | `k` | 0.01 | decay rate, per second (≥ 0; 0 keeps `τ = τ0`) |
//! | `ewma_weight` | 0.05 | weight of each completion in the energy EWMA, in (0, 1] |
//! | `energy_ref_j` | derived | energy normalisation; default: the largest batch-of-1 energy per request among the servers' initial variants (cost table); 1 J if that is 0 |
//! | `p95_weight` | 0.0 | weight of `p̂95 / SLO` inside `Ĉ` (≥ 0) |
//! | `p95_samples` | 256 | completions in the p95 window (≥ 1) |
//! | `feedback.window_s` | 10.0 | feedback window length, seconds (> 0) |
//! | `feedback.slo_violation_target` | 0.05 | violation rate in [0, 1] above which a window re-heats |
//! | `feedback.reheat` | 0.2 | `Δ` added to `τ` on an event (≥ 0) |
//! | `feedback.tau_max` | 1.0 | cap on a re-heated `τ` (≥ `tau0` and ≥ `tau_inf`) |
//! | `feedback.power_budget_w` | none | mean meter power above which a window re-heats (> 0) |
//!
//! The defaults are a starting point for sweeps, not calibrated values.

use serde::{Deserialize, Serialize};

use super::{CompletionView, Controller, ControllerContext, Decision, GatewayView, Reconfig, RequestView};
use crate::core::{SimDuration, SimTime};

/// `[controller]` with `kind = "bio_threshold"`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BioThresholdConfig {
    /// Weight of the uncertainty `U`.
    pub alpha: f64,
    /// Weight of the normalised energy `Ê`.
    pub beta: f64,
    /// Weight of the congestion `Ĉ`.
    pub gamma: f64,
    /// Threshold at `t = 0`.
    pub tau0: f64,
    /// Asymptotic threshold.
    pub tau_inf: f64,
    /// Decay rate of the threshold, per second.
    pub k: f64,
    /// Weight of one completion in the energy EWMA (`ē ← ē + w·(x − ē)`).
    pub ewma_weight: f64,
    /// Energy normalisation reference (`None`: derived from the cost table, see module docs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub energy_ref_j: Option<f64>,
    /// Weight of the recent p95 latency over the SLO inside the congestion term.
    pub p95_weight: f64,
    /// Number of recent completions the p95 is taken over.
    pub p95_samples: usize,
    /// `[controller.feedback]`: closed loop when present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feedback: Option<FeedbackConfig>,
}

impl Default for BioThresholdConfig {
    fn default() -> Self {
        BioThresholdConfig {
            alpha: 1.0,
            beta: 0.1,
            gamma: 0.1,
            tau0: 0.5,
            tau_inf: 0.1,
            k: 0.01,
            ewma_weight: 0.05,
            energy_ref_j: None,
            p95_weight: 0.0,
            p95_samples: 256,
            feedback: None,
        }
    }
}

/// `[controller.feedback]`: the closed loop's re-heating rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeedbackConfig {
    /// Window length, seconds.
    pub window_s: f64,
    /// A window whose SLO-violation rate is strictly above this re-heats the threshold.
    pub slo_violation_target: f64,
    /// `Δ` added to the current threshold on a feedback event.
    pub reheat: f64,
    /// Cap on a re-heated threshold.
    pub tau_max: f64,
    /// A window whose mean meter power is strictly above this re-heats the threshold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub power_budget_w: Option<f64>,
}

impl Default for FeedbackConfig {
    fn default() -> Self {
        FeedbackConfig { window_s: 10.0, slo_violation_target: 0.05, reheat: 0.2, tau_max: 1.0, power_budget_w: None }
    }
}

fn check(ok: bool, key: &str, rule: &str, v: f64) -> Result<(), String> {
    if ok { Ok(()) } else { Err(format!("controller.{key} must be {rule} (got {v})")) }
}

impl BioThresholdConfig {
    /// Checks parameter ranges; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        let nonneg = |v: f64| v.is_finite() && v >= 0.0;
        check(nonneg(self.alpha), "alpha", "a finite number ≥ 0", self.alpha)?;
        check(nonneg(self.beta), "beta", "a finite number ≥ 0", self.beta)?;
        check(nonneg(self.gamma), "gamma", "a finite number ≥ 0", self.gamma)?;
        check(self.tau0.is_finite(), "tau0", "finite", self.tau0)?;
        check(self.tau_inf.is_finite(), "tau_inf", "finite", self.tau_inf)?;
        check(nonneg(self.k), "k", "a finite number ≥ 0 (per second)", self.k)?;
        check(self.ewma_weight > 0.0 && self.ewma_weight <= 1.0, "ewma_weight", "in (0, 1]", self.ewma_weight)?;
        if let Some(e) = self.energy_ref_j {
            check(e.is_finite() && e > 0.0, "energy_ref_j", "a finite number > 0", e)?;
        }
        check(nonneg(self.p95_weight), "p95_weight", "a finite number ≥ 0", self.p95_weight)?;
        check(self.p95_samples >= 1, "p95_samples", "≥ 1", self.p95_samples as f64)?;
        if let Some(f) = &self.feedback {
            check(f.window_s.is_finite() && f.window_s > 0.0, "feedback.window_s", "a finite number > 0", f.window_s)?;
            check(
                (0.0..=1.0).contains(&f.slo_violation_target),
                "feedback.slo_violation_target",
                "a rate in [0, 1]",
                f.slo_violation_target,
            )?;
            check(nonneg(f.reheat), "feedback.reheat", "a finite number ≥ 0", f.reheat)?;
            check(
                f.tau_max.is_finite() && f.tau_max >= self.tau0 && f.tau_max >= self.tau_inf,
                "feedback.tau_max",
                "finite and ≥ controller.tau0 and ≥ controller.tau_inf",
                f.tau_max,
            )?;
            if let Some(p) = f.power_budget_w {
                check(p.is_finite() && p > 0.0, "feedback.power_budget_w", "a finite number > 0", p)?;
            }
        }
        Ok(())
    }

    /// The default energy reference: the largest batch-of-1 energy among the servers' initial
    /// variants (0 when the cost table has no energy).
    fn batch1_energy_j(ctx: &ControllerContext) -> f64 {
        ctx.servers
            .iter()
            .filter_map(|s| s.variants.get(s.initial_variant).and_then(|v| v.energy_j.first().copied()))
            .filter(|e| e.is_finite())
            .fold(0.0, f64::max)
    }

    /// A fresh controller for one run.
    pub fn build(&self, ctx: &ControllerContext) -> BioThreshold {
        let prior_j = Self::batch1_energy_j(ctx);
        let energy_ref_j = self.energy_ref_j.unwrap_or(if prior_j > 0.0 { prior_j } else { 1.0 });
        let feedback = self.feedback.as_ref().map(|f| Feedback {
            window: SimDuration::from_secs_f64(f.window_s).max(SimDuration(1)),
            target: f.slo_violation_target,
            reheat: f.reheat,
            tau_max: f.tau_max,
            power_budget_w: f.power_budget_w,
            window_end: SimTime::ZERO + SimDuration::from_secs_f64(f.window_s).max(SimDuration(1)),
            completions: 0,
            violations: 0,
            power_j: 0.0,
            power_span_s: 0.0,
            last_power_w: 0.0,
            last_obs: None,
        });
        let n = self.p95_samples.max(1);
        BioThreshold {
            alpha: self.alpha,
            beta: self.beta,
            gamma: self.gamma,
            tau_inf: self.tau_inf,
            k: self.k,
            tau_ref: self.tau0,
            t_ref: SimTime::ZERO,
            ewma_weight: self.ewma_weight,
            energy_ref_j,
            energy_ewma_j: prior_j,
            p95_weight: self.p95_weight,
            latencies_s: if self.p95_weight > 0.0 { Vec::with_capacity(n) } else { Vec::new() },
            scratch: if self.p95_weight > 0.0 { Vec::with_capacity(n) } else { Vec::new() },
            p95_cap: n,
            p95_next: 0,
            p95_s: 0.0,
            p95_dirty: false,
            feedback,
            reheats: 0,
        }
    }
}

#[derive(Clone, Debug)]
struct Feedback {
    window: SimDuration,
    target: f64,
    reheat: f64,
    tau_max: f64,
    power_budget_w: Option<f64>,
    window_end: SimTime,
    completions: u64,
    violations: u64,
    /// ∫ power dt over the observed part of the window (sample-and-hold), and that span.
    power_j: f64,
    power_span_s: f64,
    last_power_w: f64,
    last_obs: Option<SimTime>,
}

/// The running controller (see the module docs).
#[derive(Clone, Debug)]
pub struct BioThreshold {
    alpha: f64,
    beta: f64,
    gamma: f64,
    tau_inf: f64,
    k: f64,
    tau_ref: f64,
    t_ref: SimTime,
    ewma_weight: f64,
    energy_ref_j: f64,
    energy_ewma_j: f64,
    p95_weight: f64,
    latencies_s: Vec<f64>,
    scratch: Vec<f64>,
    p95_cap: usize,
    p95_next: usize,
    p95_s: f64,
    p95_dirty: bool,
    feedback: Option<Feedback>,
    reheats: u64,
}

impl BioThreshold {
    /// `τ(t)`.
    pub fn tau_at(&self, t: SimTime) -> f64 {
        if t <= self.t_ref {
            return self.tau_ref;
        }
        let dt = t.since(self.t_ref).as_secs_f64();
        self.tau_inf + (self.tau_ref - self.tau_inf) * (-self.k * dt).exp()
    }

    /// `(τ_ref, t_ref)`: the anchor of the current decay.
    pub fn anchor(&self) -> (f64, SimTime) {
        (self.tau_ref, self.t_ref)
    }

    /// Number of feedback events so far.
    pub fn reheats(&self) -> u64 {
        self.reheats
    }

    /// `Ê`: the energy EWMA over the reference.
    pub fn energy_hat(&self) -> f64 {
        self.energy_ewma_j / self.energy_ref_j
    }

    /// The energy normalisation reference in use.
    pub fn energy_ref_j(&self) -> f64 {
        self.energy_ref_j
    }

    /// `Ĉ` for this view (refreshes the p95 estimate when needed).
    pub fn congestion(&mut self, view: &GatewayView<'_>) -> f64 {
        let (mut queued, mut capacity) = (0u64, 0u64);
        for s in view.servers {
            queued += s.queue_len as u64;
            capacity += s.max_batch_size as u64 * s.instances as u64;
        }
        let mut c = queued as f64 / capacity.max(1) as f64;
        let slo_s = view.slo.as_secs_f64();
        if self.p95_weight > 0.0 && slo_s > 0.0 {
            c += self.p95_weight * self.p95() / slo_s;
        }
        c
    }

    /// `S(x)` for a request with uncertainty `u` (`None`: 1) under this view.
    pub fn score(&mut self, uncertainty: Option<f64>, view: &GatewayView<'_>) -> f64 {
        let u = uncertainty.unwrap_or(1.0);
        let c = self.congestion(view);
        self.alpha * u - self.beta * self.energy_hat() - self.gamma * c
    }

    /// Nearest-rank p95 of the latency ring (0 when empty); recomputed only after a completion.
    fn p95(&mut self) -> f64 {
        if self.p95_dirty {
            self.scratch.clear();
            self.scratch.extend_from_slice(&self.latencies_s);
            let n = self.scratch.len();
            let rank = ((0.95 * n as f64).ceil() as usize).clamp(1, n);
            let (_, v, _) = self.scratch.select_nth_unstable_by(rank - 1, f64::total_cmp);
            self.p95_s = *v;
            self.p95_dirty = false;
        }
        self.p95_s
    }

    /// Feeds the meter reading and closes the feedback window if `now` reached its end.
    fn observe(&mut self, view: &GatewayView<'_>) {
        let now = view.now;
        let Some(fb) = self.feedback.as_mut() else { return };
        if let Some(last) = fb.last_obs {
            let dt = now.since(last).as_secs_f64();
            fb.power_j += fb.last_power_w * dt;
            fb.power_span_s += dt;
        }
        fb.last_power_w = view.power_w;
        fb.last_obs = Some(now);
        if now < fb.window_end {
            return;
        }
        let rate = if fb.completions > 0 { fb.violations as f64 / fb.completions as f64 } else { 0.0 };
        let over_power = match fb.power_budget_w {
            Some(b) if fb.power_span_s > 0.0 => fb.power_j / fb.power_span_s > b,
            _ => false,
        };
        let event = rate > fb.target || over_power;
        let (reheat, tau_max) = (fb.reheat, fb.tau_max);
        fb.window_end = now + fb.window;
        fb.completions = 0;
        fb.violations = 0;
        fb.power_j = 0.0;
        fb.power_span_s = 0.0;
        if event {
            self.tau_ref = tau_max.min(self.tau_at(now) + reheat);
            self.t_ref = now;
            self.reheats += 1;
        }
    }
}

impl Controller for BioThreshold {
    fn decide(&mut self, req: &RequestView, view: &GatewayView<'_>) -> Decision {
        self.observe(view);
        if self.score(req.uncertainty, view) >= self.tau_at(view.now) { Decision::Admit } else { Decision::Skip }
    }

    fn observes_completions(&self) -> bool {
        true
    }

    fn on_completion(&mut self, done: &CompletionView, view: &GatewayView<'_>) {
        self.observe(view);
        self.energy_ewma_j += self.ewma_weight * (done.energy_j - self.energy_ewma_j);
        let latency = done.latency();
        if let Some(fb) = self.feedback.as_mut() {
            fb.completions += 1;
            fb.violations += u64::from(latency > view.slo);
        }
        if self.p95_weight > 0.0 {
            let l = latency.as_secs_f64();
            if self.latencies_s.len() < self.p95_cap {
                self.latencies_s.push(l);
            } else {
                self.latencies_s[self.p95_next] = l;
            }
            self.p95_next = (self.p95_next + 1) % self.p95_cap;
            self.p95_dirty = true;
        }
    }

    fn tick_interval(&self) -> Option<SimDuration> {
        self.feedback.as_ref().map(|f| f.window)
    }

    fn on_tick(&mut self, view: &GatewayView<'_>, _out: &mut Vec<Reconfig>) {
        self.observe(view);
    }

    fn tau(&self, now: SimTime) -> Option<f64> {
        Some(self.tau_at(now))
    }
}

impl super::PolicyConfig for BioThresholdConfig {
    fn validate(&self) -> Result<(), String> {
        BioThresholdConfig::validate(self)
    }
    fn build_controller(&self, ctx: &ControllerContext, _: &crate::core::RngStreams) -> Box<dyn super::Controller> {
        Box::new(self.build(ctx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::controller::{ControllerConfig, ServerProfile, ServerView, VariantProfile};

    const EPS: f64 = 1e-12;

    fn ctx(e1_j: f64) -> ControllerContext {
        ControllerContext {
            servers: vec![ServerProfile {
                instance_standby_power_w: 0.0,
                name: "b".into(),
                variants: vec![VariantProfile {
                    model: "m".into(),
                    accuracy: None,
                    latency_s: vec![0.01, 0.012],
                    energy_j: vec![e1_j, 1.2 * e1_j],
                }],
                initial_variant: 0,
                instances: 1,
                max_batch_size: 2,
                idle_power_w: 50.0,
                warmup_s: 0.0,
                warmup_energy_j: 0.0,
            }],
            early_exit: None,
            slo: SimDuration::from_millis_f64(100.0),
        }
    }

    fn server(queue_len: usize, instances: u32, max_batch_size: u32) -> ServerView {
        ServerView {
            name: "s".into(),
            queue_len,
            in_service: 0,
            busy_instances: 0,
            instances,
            max_batch_size,
            variant: 0,
            batch_service_s: 0.01,
        }
    }

    fn view(now_s: f64, servers: &[ServerView], power_w: f64) -> GatewayView<'_> {
        GatewayView {
            now: SimTime::from_secs_f64(now_s),
            servers,
            carbon_g_per_kwh: 300.0,
            power_w,
            slo: SimDuration::from_millis_f64(100.0),
        }
    }

    fn req(id: u64, u: Option<f64>) -> RequestView {
        RequestView { id, arrival: SimTime::ZERO, uncertainty: u }
    }

    fn done(at_s: f64, latency_s: f64, energy_j: f64) -> CompletionView {
        CompletionView {
            server: 0,
            arrival: SimTime::from_secs_f64(at_s - latency_s),
            completion: SimTime::from_secs_f64(at_s),
            batch_size: 1,
            energy_j,
        }
    }

    fn open(tau0: f64, tau_inf: f64, k: f64) -> BioThresholdConfig {
        BioThresholdConfig { tau0, tau_inf, k, ..Default::default() }
    }

    fn closed(window_s: f64, target: f64, reheat: f64, tau_max: f64) -> BioThresholdConfig {
        BioThresholdConfig {
            feedback: Some(FeedbackConfig { window_s, slo_violation_target: target, reheat, tau_max, power_budget_w: None }),
            ..open(0.8, 0.2, 0.1)
        }
    }

    #[test]
    fn open_loop_tau_follows_the_papers_formula() {
        let c = open(0.8, 0.2, 0.1).build(&ctx(2.0));
        let t = |s: f64| c.tau(SimTime::from_secs_f64(s)).unwrap();
        assert!((t(0.0) - 0.8).abs() < EPS);
        assert!((t(10.0) - (0.2 + 0.6 * (-1.0f64).exp())).abs() < EPS);
        assert!((t(5.0) - (0.2 + 0.6 * (-0.5f64).exp())).abs() < EPS);
        assert!((t(1e6) - 0.2).abs() < EPS);
        assert_eq!(c.tick_interval(), None);
        // k = 0 holds τ0.
        let c0 = open(0.8, 0.2, 0.0).build(&ctx(2.0));
        assert_eq!(c0.tau(SimTime::from_secs(1000)), Some(0.8));
    }

    #[test]
    fn energy_reference_defaults_to_batch_of_one_energy() {
        let c = BioThresholdConfig::default().build(&ctx(2.0));
        assert_eq!(c.energy_ref_j(), 2.0);
        assert_eq!(c.energy_hat(), 1.0);
        let c = BioThresholdConfig { energy_ref_j: Some(4.0), ..Default::default() }.build(&ctx(2.0));
        assert_eq!(c.energy_hat(), 0.5);
        // A latency-only cost table: reference 1 J, prior 0.
        let c = BioThresholdConfig::default().build(&ctx(0.0));
        assert_eq!((c.energy_ref_j(), c.energy_hat()), (1.0, 0.0));
    }

    #[test]
    fn admit_skip_for_given_u_e_c() {
        // α = 1, β = 0.5, γ = 0.25, τ ≡ 0.3 (k = 0), ewma_weight = 0.5, E_ref = 2 J.
        let cfg = BioThresholdConfig { alpha: 1.0, beta: 0.5, gamma: 0.25, ewma_weight: 0.5, ..open(0.3, 0.3, 0.0) };
        let mut c = cfg.build(&ctx(2.0));
        let idle = [server(0, 1, 4)];
        // Two completions of 1 J: ē = 2 → 1.5 → 1.25 J, Ê = 0.625.
        c.on_completion(&done(1.0, 0.01, 1.0), &view(1.0, &idle, 0.0));
        c.on_completion(&done(1.0, 0.01, 1.0), &view(1.0, &idle, 0.0));
        assert!((c.energy_hat() - 0.625).abs() < EPS);
        // Queues 3 + 1 over capacity 4·1 + 2·2 = 8: Ĉ = 0.5.
        let busy = [server(3, 1, 4), server(1, 2, 2)];
        let v = view(2.0, &busy, 0.0);
        assert!((c.congestion(&v) - 0.5).abs() < EPS);
        // S = U − 0.3125 − 0.125 = U − 0.4375; admit iff U ≥ 0.7375.
        assert!((c.score(Some(0.8), &v) - (0.8 - 0.4375)).abs() < EPS);
        assert_eq!(c.decide(&req(1, Some(0.74)), &v), Decision::Admit);
        assert_eq!(c.decide(&req(2, Some(0.73)), &v), Decision::Skip);
        // No uncertainty: U = 1 → S = 0.5625 ≥ 0.3.
        assert_eq!(c.decide(&req(3, None), &v), Decision::Admit);
        // Empty queues: Ĉ = 0, S = U − 0.3125; U = 0.62 admits, 0.61 skips.
        let v0 = view(2.0, &idle, 0.0);
        assert_eq!(c.decide(&req(4, Some(0.62)), &v0), Decision::Admit);
        assert_eq!(c.decide(&req(5, Some(0.61)), &v0), Decision::Skip);
        // A decaying threshold admits later what it skipped earlier: τ0 = 0.8 → τ∞ = 0.2, k = 0.1.
        let mut d = BioThresholdConfig { alpha: 1.0, beta: 0.0, gamma: 0.0, ..open(0.8, 0.2, 0.1) }.build(&ctx(2.0));
        // τ(10) = 0.2 + 0.6/e ≈ 0.4207.
        assert_eq!(d.decide(&req(6, Some(0.5)), &view(0.0, &idle, 0.0)), Decision::Skip);
        assert_eq!(d.decide(&req(7, Some(0.5)), &view(10.0, &idle, 0.0)), Decision::Admit);
        assert_eq!(d.decide(&req(8, Some(0.42)), &view(10.0, &idle, 0.0)), Decision::Skip);
    }

    #[test]
    fn p95_term_adds_recent_latency_over_slo() {
        let cfg = BioThresholdConfig { p95_weight: 2.0, p95_samples: 4, ..open(0.3, 0.3, 0.0) };
        let mut c = cfg.build(&ctx(2.0));
        let s = [server(0, 1, 4)];
        let v = view(1.0, &s, 0.0);
        assert_eq!(c.congestion(&v), 0.0);
        // Latencies 10, 20, 30, 40, 50 ms into a ring of 4: 20..50 remain; nearest-rank p95 of
        // 4 samples is the 4th = 50 ms; Ĉ = 2 · 50 / 100 = 1.
        for (i, ms) in [10.0, 20.0, 30.0, 40.0, 50.0].into_iter().enumerate() {
            c.on_completion(&done(1.0 + i as f64, ms / 1e3, 1.0), &v);
        }
        assert!((c.congestion(&v) - 1.0).abs() < 1e-9);
        // 5 ms replaces 20 ms: the max is still 50 ms.
        c.on_completion(&done(7.0, 0.005, 1.0), &v);
        assert!((c.congestion(&v) - 1.0).abs() < 1e-9);
        // 1 ms replaces 30 and 40: max is 50 still; then 50 itself is replaced by 2 ms.
        for (i, ms) in [1.0, 1.0, 2.0].into_iter().enumerate() {
            c.on_completion(&done(8.0 + i as f64, ms / 1e3, 1.0), &v);
        }
        // Ring now holds 5, 1, 1, 2 ms → p95 = 5 ms → Ĉ = 0.1.
        assert!((c.congestion(&v) - 0.1).abs() < 1e-9);
    }

    #[test]
    fn closed_loop_reheats_on_a_violating_window() {
        // τ0 = 0.8, τ∞ = 0.2, k = 0.1; window 10 s, target 0.25, Δ = 0.3, τ_max = 1.
        let mut c = closed(10.0, 0.25, 0.3, 1.0).build(&ctx(2.0));
        assert_eq!(c.tick_interval(), Some(SimDuration::from_secs(10)));
        let s = [server(0, 1, 4)];
        // Window [0, 10): 4 completions, 2 over the 100 ms SLO → rate 0.5 > 0.25.
        for (t, lat) in [(1.0, 0.05), (2.0, 0.2), (3.0, 0.15), (4.0, 0.1)] {
            c.on_completion(&done(t, lat, 1.0), &view(t, &s, 0.0));
        }
        assert_eq!(c.reheats(), 0);
        c.on_tick(&view(10.0, &s, 0.0), &mut Vec::new());
        assert_eq!(c.reheats(), 1);
        let before = 0.2 + 0.6 * (-1.0f64).exp(); // τ(10) ≈ 0.4207
        let (tau_ref, t_ref) = c.anchor();
        assert!((tau_ref - (before + 0.3)).abs() < EPS);
        assert_eq!(t_ref, SimTime::from_secs(10));
        let t = |c: &BioThreshold, s: f64| c.tau(SimTime::from_secs_f64(s)).unwrap();
        assert!((t(&c, 10.0) - (before + 0.3)).abs() < EPS);
        assert!((t(&c, 20.0) - (0.2 + (before + 0.3 - 0.2) * (-1.0f64).exp())).abs() < EPS);
        // Window [10, 20): 1 violation out of 4 = 0.25, not above the target: no re-heat.
        for (t, lat) in [(11.0, 0.2), (12.0, 0.05), (13.0, 0.05), (14.0, 0.1)] {
            c.on_completion(&done(t, lat, 1.0), &view(t, &s, 0.0));
        }
        c.on_tick(&view(20.0, &s, 0.0), &mut Vec::new());
        assert_eq!(c.reheats(), 1);
        assert_eq!(c.anchor().1, SimTime::from_secs(10));
        // Window [20, 30) is empty: rate 0, no re-heat.
        c.on_tick(&view(30.0, &s, 0.0), &mut Vec::new());
        assert_eq!(c.reheats(), 1);
    }

    #[test]
    fn reheat_is_capped_at_tau_max() {
        // τ(10) ≈ 0.4207; Δ = 0.5 would give 0.9207 but τ_max = 0.85.
        let mut c = closed(10.0, 0.0, 0.5, 0.85).build(&ctx(2.0));
        let s = [server(0, 1, 4)];
        c.on_completion(&done(5.0, 0.5, 1.0), &view(5.0, &s, 0.0));
        c.on_tick(&view(10.0, &s, 0.0), &mut Vec::new());
        assert_eq!(c.anchor(), (0.85, SimTime::from_secs(10)));
        assert_eq!(c.tau(SimTime::from_secs(10)), Some(0.85));
        // A second violating window re-heats from τ(20) = 0.2 + 0.65/e, capped again.
        c.on_completion(&done(15.0, 0.5, 1.0), &view(15.0, &s, 0.0));
        c.on_tick(&view(20.0, &s, 0.0), &mut Vec::new());
        assert_eq!(c.anchor(), (0.85, SimTime::from_secs(20)));
        assert_eq!(c.reheats(), 2);
    }

    #[test]
    fn window_closes_on_a_completion_without_ticks() {
        // Without ticks, the first observation at or after the window end closes it, at that
        // time; the violation observed at 12 s belongs to the next window.
        let mut c = closed(10.0, 0.25, 0.3, 1.0).build(&ctx(2.0));
        let s = [server(0, 1, 4)];
        c.on_completion(&done(3.0, 0.5, 1.0), &view(3.0, &s, 0.0));
        c.on_completion(&done(12.0, 0.5, 1.0), &view(12.0, &s, 0.0));
        assert_eq!(c.anchor().1, SimTime::from_secs(12));
        let tau12 = 0.2 + 0.6 * (-1.2f64).exp();
        assert!((c.anchor().0 - (tau12 + 0.3)).abs() < EPS);
        // Next window is [12, 22): its single completion violated → re-heat at 22.
        c.on_tick(&view(21.0, &s, 0.0), &mut Vec::new());
        assert_eq!(c.reheats(), 1);
        c.on_tick(&view(22.0, &s, 0.0), &mut Vec::new());
        assert_eq!(c.reheats(), 2);
        assert_eq!(c.anchor().1, SimTime::from_secs(22));
    }

    #[test]
    fn power_budget_triggers_a_reheat() {
        let mut cfg = closed(10.0, 1.0, 0.3, 1.0); // target 1: SLO violations never trigger
        cfg.feedback.as_mut().unwrap().power_budget_w = Some(200.0);
        let mut c = cfg.build(&ctx(2.0));
        let s = [server(0, 1, 4)];
        let mut out = Vec::new();
        // Meter reads 100 W over [0, 5), 250 W over [5, 10): mean 175 W ≤ 200 W.
        c.on_tick(&view(0.0, &s, 100.0), &mut out);
        c.decide(&req(0, Some(0.5)), &view(5.0, &s, 250.0));
        c.on_tick(&view(10.0, &s, 250.0), &mut out);
        assert_eq!(c.reheats(), 0);
        // 250 W over [10, 18), 150 W over [18, 20): mean 230 W > 200 W → re-heat at 20.
        c.on_completion(&done(18.0, 0.5, 1.0), &view(18.0, &s, 150.0));
        c.on_tick(&view(20.0, &s, 150.0), &mut out);
        assert_eq!(c.reheats(), 1);
        let tau20 = 0.2 + 0.6 * (-2.0f64).exp();
        assert!((c.anchor().0 - (tau20 + 0.3)).abs() < EPS);
        assert_eq!(c.anchor().1, SimTime::from_secs(20));
        assert!(out.is_empty());
    }

    #[test]
    fn decisions_depend_only_on_the_view_and_past_observations() {
        let cfg = closed(5.0, 0.1, 0.2, 1.0);
        let mut a = cfg.build(&ctx(2.0));
        let mut b = cfg.build(&ctx(2.0));
        let mut seq_a = Vec::new();
        let mut seq_b = Vec::new();
        for i in 0..200u64 {
            let t = i as f64 * 0.25;
            let s = [server((i % 7) as usize, 1, 4), server((i % 3) as usize, 2, 2)];
            let v = view(t, &s, 100.0 + (i % 5) as f64 * 40.0);
            let u = Some(((i * 37) % 100) as f64 / 100.0);
            // Same uncertainty and view, different id and arrival: same decision.
            seq_a.push(a.decide(&RequestView { id: i, arrival: SimTime::ZERO, uncertainty: u }, &v));
            seq_b.push(b.decide(&RequestView { id: 1_000_000 + i, arrival: v.now, uncertainty: u }, &v));
            if i % 2 == 0 {
                let d = done(t, 0.02 * (i % 9) as f64, 0.5 + (i % 4) as f64);
                a.on_completion(&d, &v);
                b.on_completion(&d, &v);
            }
            assert_eq!(a.tau(v.now), b.tau(v.now));
        }
        assert_eq!(seq_a, seq_b);
        assert!(seq_a.contains(&Decision::Admit) && seq_a.contains(&Decision::Skip));
        assert!(a.reheats() > 0);
    }

    #[test]
    fn validation_names_the_key() {
        assert!(BioThresholdConfig::default().validate().is_ok());
        assert!(closed(10.0, 0.05, 0.2, 1.0).validate().is_ok());
        let e = BioThresholdConfig { k: -0.1, ..Default::default() }.validate().unwrap_err();
        assert!(e.starts_with("controller.k must be"), "{e}");
        let e = BioThresholdConfig { alpha: f64::NAN, ..Default::default() }.validate().unwrap_err();
        assert!(e.contains("controller.alpha"), "{e}");
        let e = BioThresholdConfig { ewma_weight: 0.0, ..Default::default() }.validate().unwrap_err();
        assert!(e.contains("controller.ewma_weight"), "{e}");
        let e = BioThresholdConfig { energy_ref_j: Some(0.0), ..Default::default() }.validate().unwrap_err();
        assert!(e.contains("controller.energy_ref_j"), "{e}");
        let e = closed(10.0, 1.5, 0.2, 1.0).validate().unwrap_err();
        assert!(e.contains("controller.feedback.slo_violation_target"), "{e}");
        let e = closed(0.0, 0.1, 0.2, 1.0).validate().unwrap_err();
        assert!(e.contains("controller.feedback.window_s"), "{e}");
        let e = closed(10.0, 0.1, 0.2, 0.5).validate().unwrap_err();
        assert!(e.contains("controller.feedback.tau_max"), "{e}");
        let mut cfg = closed(10.0, 0.1, 0.2, 1.0);
        cfg.feedback.as_mut().unwrap().power_budget_w = Some(-1.0);
        assert!(cfg.validate().unwrap_err().contains("controller.feedback.power_budget_w"));
    }

    #[test]
    fn parses_from_toml_and_rejects_unknown_keys() {
        let cfg: ControllerConfig = toml::from_str(
            "kind = \"bio_threshold\"\nalpha = 1.0\nbeta = 0.2\ngamma = 0.3\ntau0 = 0.9\ntau_inf = 0.1\nk = 0.05\n\
             [feedback]\nwindow_s = 30\nslo_violation_target = 0.01\nreheat = 0.1\ntau_max = 0.95\n",
        )
        .unwrap();
        let ControllerConfig::BioThreshold(b) = &cfg else { panic!("wrong kind {cfg:?}") };
        assert_eq!((b.alpha, b.beta, b.gamma, b.tau0, b.tau_inf, b.k), (1.0, 0.2, 0.3, 0.9, 0.1, 0.05));
        assert_eq!(b.ewma_weight, 0.05);
        let f = b.feedback.as_ref().unwrap();
        assert_eq!((f.window_s, f.slo_violation_target, f.reheat, f.tau_max, f.power_budget_w), (30.0, 0.01, 0.1, 0.95, None));
        assert!(cfg.validate().is_ok());
        assert!(cfg.needs_early_exit());
        assert_eq!(cfg.kind(), "bio_threshold");
        assert!(ControllerConfig::KINDS.contains(&"bio_threshold"));
        let c = cfg.build(&ctx(2.0), &crate::core::RngStreams::new(1));
        assert_eq!(c.tau(SimTime::ZERO), Some(0.9));
        // Open loop: every key defaults.
        let open: ControllerConfig = toml::from_str("kind = \"bio_threshold\"").unwrap();
        assert_eq!(open, ControllerConfig::BioThreshold(BioThresholdConfig::default()));
        assert!(toml::from_str::<ControllerConfig>("kind = \"bio_threshold\"\ntau = 0.5").is_err());
        assert!(toml::from_str::<ControllerConfig>("kind = \"bio_threshold\"\n[feedback]\nwindow = 5").is_err());
    }
}
