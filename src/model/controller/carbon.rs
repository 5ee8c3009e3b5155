//! `kind = "carbon"`: carbon-aware quality switching after Clover (Li, Samsi, Gadepally and
//! Tiwari, "Clover: Toward Sustainable AI with Carbon-Aware Machine Learning Inference
//! Service", SC'23).
//!
//! Clover trades accuracy for carbon with the objective
//!
//! ```text
//! maximise  f = λ·(C_base − C)/C_base − (1 − λ)·(A_base − A)/A_base   subject to the SLO
//! ```
//!
//! where C is the carbon per request, A the accuracy, and the base is the highest-quality
//! variant (highest accuracy). Here, for variant v at batch size b (the server's current
//! maximum batch size unless `batch_size` is given), in grams per request:
//!
//! ```text
//! C(v) = energy_j[b − 1]/b / 3.6e6 · I · PUE  +  latency_s[b − 1]/b · G/3600
//! ```
//!
//! the operational carbon of the request's share of its batch energy at grid intensity I
//! (g/kWh) — the signal the gateway reads, [`GatewayView::carbon_g_per_kwh`] — plus the
//! embodied carbon of the device time it occupies, the hardware's embodied emissions amortised
//! at `embodied_g_per_hour` (G). Clover accounts for both. The embodied term is what makes the
//! choice depend on the intensity: with operational carbon alone the ratio (C_base − C)/C_base
//! does not depend on I. As I rises, operational carbon dominates and variants that save
//! energy become worth their accuracy loss. A variant is eligible when it meets the SLO at the
//! predicted load λ_load: `λ_load ≤ instances·b/L` and `L + (b − 1)/λ_load ≤ SLO` (the IPA
//! checks, [`super::ipa`], with the same predictor keys). Without accuracies the accuracy term
//! is 0 and the choice minimises carbon.
//!
//! **What is implemented, and how it relates to Clover.** Clover serves a *mix* of variants at
//! once, co-located on GPU partitions (MIG), and searches mixes and partitionings with
//! simulated annealing. A basin server runs one variant at a time. The objective above is
//! linear in a mix's shares, so over mixes whose every member meets the SLO its optimum is a
//! single variant: this controller picks, for each server it controls, the best single
//! eligible variant (ties: the more accurate). A mix arises only across servers (each picks on
//! its own) or over time. What is lost is the mix Clover uses when only a blend of a fast and a
//! slow variant meets the SLO; when no variant is eligible alone the controller takes the one
//! with the most capacity.
//!
//! **When it re-optimises.** Every `interval_s` it reads the intensity. It re-optimises when
//! I·PUE has moved by more than `threshold` (relative) since the last optimisation, on the first
//! tick, and when the variant in use has stopped meeting the SLO at the predicted load. Between
//! re-optimisations it holds its choice (hysteresis: a crossing of the switching point by less
//! than the threshold is ignored).

use serde::{Deserialize, Serialize};

use super::ipa::{LoadPredictor, PredictorKind, check, non_negative, positive, rank_variants, resolve_servers};
use super::{Controller, ControllerContext, Decision, GatewayView, Reconfig, RequestView, VariantProfile};
use crate::core::SimDuration;

/// Joules per kWh.
const J_PER_KWH: f64 = 3.6e6;

fn default_embodied_g_per_hour() -> f64 {
    3.0
}
fn default_interval_s() -> f64 {
    60.0
}
fn default_lambda() -> f64 {
    0.5
}
fn default_threshold() -> f64 {
    0.05
}

/// `[controller] kind = "carbon"`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CarbonConfig {
    /// Seconds between reads of the carbon signal.
    #[serde(default = "default_interval_s")]
    pub interval_s: f64,
    /// Weight of carbon savings against accuracy loss (1: carbon only, 0: accuracy only).
    #[serde(default = "default_lambda")]
    pub lambda: f64,
    /// Relative move of I·PUE that triggers a re-optimisation.
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    /// Power usage effectiveness applied to the operational carbon (default 1).
    #[serde(default)]
    pub pue: Option<f64>,
    /// Embodied emissions of the device per hour of use (default 3 g/h, about 130 kg CO2e
    /// amortised over five years: an assumed order of magnitude, set it from an LCA).
    #[serde(default = "default_embodied_g_per_hour")]
    pub embodied_g_per_hour: f64,
    /// Batch size the profiles are read at (default: the server's current maximum).
    #[serde(default)]
    pub batch_size: Option<u32>,
    /// Names of the servers to control (empty: all).
    #[serde(default)]
    pub servers: Vec<String>,
    #[serde(default)]
    pub predictor: PredictorKind,
    #[serde(default = "super::defaults::window_s")]
    pub window_s: f64,
    #[serde(default = "super::defaults::bucket_s")]
    pub bucket_s: f64,
    #[serde(default = "super::defaults::ewma_alpha")]
    pub ewma_alpha: f64,
    #[serde(default = "super::defaults::headroom")]
    pub headroom: f64,
    #[serde(default = "super::defaults::min_load_rps")]
    pub min_load_rps: f64,
}

impl Default for CarbonConfig {
    fn default() -> Self {
        toml::from_str("").expect("every key has a default")
    }
}

impl CarbonConfig {
    /// Checks parameter ranges; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        positive("interval_s", self.interval_s)?;
        check((0.0..=1.0).contains(&self.lambda), "lambda", "in [0, 1]", self.lambda)?;
        non_negative("threshold", self.threshold)?;
        if let Some(p) = self.pue {
            check(p.is_finite() && p >= 1.0, "pue", "a finite number >= 1", p)?;
        }
        non_negative("embodied_g_per_hour", self.embodied_g_per_hour)?;
        if let Some(b) = self.batch_size {
            check(b >= 1, "batch_size", ">= 1", b)?;
        }
        positive("window_s", self.window_s)?;
        positive("bucket_s", self.bucket_s)?;
        check(self.bucket_s <= self.window_s, "bucket_s", "<= window_s", self.bucket_s)?;
        check(self.ewma_alpha > 0.0 && self.ewma_alpha <= 1.0, "ewma_alpha", "in (0, 1]", self.ewma_alpha)?;
        positive("headroom", self.headroom)?;
        positive("min_load_rps", self.min_load_rps)
    }

    /// Checks server names and `batch_size` against the deployment.
    pub fn check_context(&self, ctx: &ControllerContext) -> Result<(), String> {
        resolve_servers(&self.servers, ctx)?;
        if let Some(b) = self.batch_size {
            for s in &ctx.servers {
                if s.variants.iter().any(|v| v.latency_s.len().min(v.energy_j.len()) < b as usize) {
                    return Err(format!("controller.batch_size: {b} exceeds the cost table of server {:?}", s.name));
                }
            }
        }
        Ok(())
    }

    /// A fresh controller for one run (servers that do not resolve are ignored: see
    /// [`CarbonConfig::check_context`]).
    pub fn build(&self, ctx: &ControllerContext) -> Carbon {
        let servers = resolve_servers(&self.servers, ctx).unwrap_or_default();
        Carbon {
            servers: servers.iter().map(|&s| (s, ctx.servers[s].variants.clone())).collect(),
            share: 1.0 / ctx.servers.len().max(1) as f64,
            predictor: LoadPredictor::new(self.predictor, self.window_s, self.bucket_s, self.ewma_alpha),
            slo_s: ctx.slo.as_secs_f64(),
            last_signal: None,
            choices: Vec::new(),
            cfg: self.clone(),
        }
    }
}

/// One server's choice at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct CarbonProblem<'a> {
    pub variants: &'a [VariantProfile],
    pub batch_size: u32,
    pub instances: u32,
    pub load_rps: f64,
    pub slo_s: f64,
    /// Grid intensity × PUE, g/kWh.
    pub intensity: f64,
    pub embodied_g_per_hour: f64,
    pub lambda: f64,
}

impl CarbonProblem<'_> {
    fn at(&self, v: usize) -> Option<(f64, f64)> {
        let i = self.batch_size as usize - 1;
        let var = &self.variants[v];
        Some((*var.latency_s.get(i)?, *var.energy_j.get(i)?))
    }

    /// The base: the most accurate variant.
    pub fn base(&self) -> usize {
        rank_variants(self.variants).last().copied().unwrap_or(0)
    }

    /// C(v), grams per request.
    pub fn carbon_g(&self, v: usize) -> f64 {
        let b = self.batch_size as f64;
        self.at(v).map_or(f64::INFINITY, |(lat, e)| e / b / J_PER_KWH * self.intensity + lat / b * self.embodied_g_per_hour / 3600.0)
    }

    /// Clover's objective f(v).
    pub fn score(&self, v: usize) -> f64 {
        let base = self.base();
        let (cb, c) = (self.carbon_g(base), self.carbon_g(v));
        let saving = if cb > 0.0 { (cb - c) / cb } else { 0.0 };
        let ab = self.variants[base].accuracy.unwrap_or(0.0);
        let loss = if ab > 0.0 { (ab - self.variants[v].accuracy.unwrap_or(0.0)) / ab } else { 0.0 };
        self.lambda * saving - (1.0 - self.lambda) * loss
    }

    /// Whether v meets the SLO at the predicted load.
    pub fn eligible(&self, v: usize) -> bool {
        let b = self.batch_size as f64;
        self.at(v).is_some_and(|(lat, _)| self.load_rps <= self.instances as f64 * b / lat && lat + (b - 1.0) / self.load_rps <= self.slo_s)
    }

    /// The best eligible variant (ties: the more accurate); else the one with most capacity.
    pub fn best(&self) -> usize {
        let order: Vec<usize> = rank_variants(self.variants).into_iter().rev().collect();
        let pick = order.iter().copied().filter(|&v| self.eligible(v)).fold(None, |best: Option<(usize, f64)>, v| {
            let f = self.score(v);
            if best.is_none_or(|(_, g)| f > g) { Some((v, f)) } else { best }
        });
        pick.map(|(v, _)| v).unwrap_or_else(|| {
            let cap = |v: usize| self.at(v).map_or(0.0, |(lat, _)| self.batch_size as f64 / lat);
            order.iter().copied().fold(order[0], |best, v| if cap(v) > cap(best) { v } else { best })
        })
    }
}

/// The Clover-style controller.
#[derive(Clone, Debug)]
pub struct Carbon {
    cfg: CarbonConfig,
    servers: Vec<(usize, Vec<VariantProfile>)>,
    share: f64,
    predictor: LoadPredictor,
    slo_s: f64,
    /// I·PUE at the last optimisation.
    last_signal: Option<f64>,
    /// (server, variant) chosen at the last optimisation.
    choices: Vec<(usize, usize)>,
}

impl Carbon {
    /// I·PUE at the last optimisation.
    pub fn last_signal(&self) -> Option<f64> {
        self.last_signal
    }
    /// The variants chosen at the last optimisation (server index, variant).
    pub fn choices(&self) -> &[(usize, usize)] {
        &self.choices
    }
}

impl Carbon {
    fn problem<'a>(&self, variants: &'a [VariantProfile], s: usize, view: &GatewayView<'_>, signal: f64, load: f64) -> CarbonProblem<'a> {
        let sv = view.servers.get(s);
        let table = variants.iter().map(|v| v.latency_s.len().min(v.energy_j.len())).min().unwrap_or(1).max(1) as u32;
        let b = self.cfg.batch_size.or(sv.map(|v| v.max_batch_size)).unwrap_or(1).clamp(1, table);
        CarbonProblem {
            variants,
            batch_size: b,
            instances: sv.map_or(1, |v| v.instances.max(1)),
            load_rps: load,
            slo_s: self.slo_s,
            intensity: signal,
            embodied_g_per_hour: self.cfg.embodied_g_per_hour,
            lambda: self.cfg.lambda,
        }
    }
}

impl Controller for Carbon {
    #[inline]
    fn decide(&mut self, req: &RequestView, _view: &GatewayView<'_>) -> Decision {
        self.predictor.observe(req.arrival);
        Decision::Admit
    }

    fn tick_interval(&self) -> Option<SimDuration> {
        Some(SimDuration::from_secs_f64(self.cfg.interval_s))
    }

    fn on_tick(&mut self, view: &GatewayView<'_>, out: &mut Vec<Reconfig>) {
        let signal = view.carbon_g_per_kwh * self.cfg.pue.unwrap_or(1.0);
        let load = (self.predictor.predict(view.now) * self.share * self.cfg.headroom).max(self.cfg.min_load_rps);
        let moved = self.last_signal.is_none_or(|x| (signal - x).abs() > self.cfg.threshold * x);
        let violated =
            || self.choices.iter().zip(&self.servers).any(|(&(s, v), (_, vars))| !self.problem(vars, s, view, signal, load).eligible(v));
        if moved || violated() {
            self.last_signal = Some(signal);
            self.choices = self.servers.iter().map(|(s, vars)| (*s, self.problem(vars, *s, view, signal, load).best())).collect();
        }
        for &(server, variant) in &self.choices {
            if view.servers.get(server).is_none_or(|v| v.variant != variant) {
                out.push(Reconfig::SetVariant { server, variant });
            }
        }
    }
}

impl super::PolicyConfig for CarbonConfig {
    fn validate(&self) -> Result<(), String> {
        CarbonConfig::validate(self)
    }
    fn check_context(&self, ctx: &ControllerContext) -> Result<(), String> {
        CarbonConfig::check_context(self, ctx)
    }
    fn build_controller(&self, ctx: &ControllerContext, _: &crate::core::RngStreams) -> Box<dyn super::Controller> {
        Box::new(self.build(ctx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::SimTime;
    use crate::model::controller::{ServerProfile, ServerView};

    // Two variants at batch size 1 with the same latency; "eco" draws half the energy.
    const LAT: f64 = 0.01;
    const E_BIG: f64 = 2.0;
    const E_ECO: f64 = 1.0;
    const A_BIG: f64 = 0.80;
    const A_ECO: f64 = 0.78;
    const LAMBDA: f64 = 0.5;
    const G: f64 = 360.0; // embodied g/h: 0.1 g/s

    fn ctx() -> ControllerContext {
        let v = |m: &str, acc, e| VariantProfile { model: m.into(), accuracy: Some(acc), latency_s: vec![LAT], energy_j: vec![e] };
        ControllerContext {
            servers: vec![ServerProfile {
                instance_standby_power_w: 0.0,
                name: "s".into(),
                variants: vec![v("big", A_BIG, E_BIG), v("eco", A_ECO, E_ECO)],
                initial_variant: 0,
                instances: 1,
                max_batch_size: 1,
                idle_power_w: 0.0,
                warmup_s: 0.0,
                warmup_energy_j: 0.0,
            }],
            early_exit: None,
            slo: SimDuration::from_millis_f64(50.0),
        }
    }

    /// The switching intensity, by hand. With k = I·PUE/3.6e6 (g/J) and g = G/3600 (g/s),
    /// C_big = 2k + 0.01g, C_eco = k + 0.01g, so eco's saving is k/(2k + 0.01g) and its
    /// accuracy loss 0.02/0.8 = 0.025. f(eco) = f(big) = 0 when
    /// λ·k/(2k + 0.01g) = (1 − λ)·0.025, i.e. with λ = 0.5: k = 0.025·(2k + 0.01g),
    /// k·(1 − 0.05) = 0.00025·g, k = 0.00025·0.1/0.95, I = 3.6e6·k ≈ 94.74 g/kWh.
    fn switching_point(pue: f64) -> f64 {
        let g = G / 3600.0;
        let loss = (A_BIG - A_ECO) / A_BIG;
        let t = (1.0 - LAMBDA) / LAMBDA * loss;
        let k = t * LAT * g / ((E_BIG - E_ECO) - t * E_BIG);
        k * 3.6e6 / pue
    }

    fn cfg(pue: f64) -> CarbonConfig {
        CarbonConfig { interval_s: 1.0, lambda: LAMBDA, pue: Some(pue), embodied_g_per_hour: G, ..Default::default() }
    }

    fn tick(c: &mut Carbon, sv: &mut ServerView, t: u64, intensity: f64) -> bool {
        let view = GatewayView {
            now: SimTime::from_secs(t),
            servers: std::slice::from_ref(sv),
            carbon_g_per_kwh: intensity,
            power_w: 0.0,
            slo: SimDuration::from_millis_f64(50.0),
        };
        let mut out = Vec::new();
        c.on_tick(&view, &mut out);
        for r in &out {
            if let Reconfig::SetVariant { variant, .. } = *r {
                sv.variant = variant
            }
        }
        !out.is_empty()
    }

    fn server() -> ServerView {
        ServerView {
            name: "s".into(),
            queue_len: 0,
            in_service: 0,
            busy_instances: 0,
            instances: 1,
            max_batch_size: 1,
            variant: 0,
            batch_service_s: LAT,
        }
    }

    #[test]
    fn switches_exactly_at_the_computed_intensity() {
        for pue in [1.0, 1.5] {
            let i_star = switching_point(pue);
            assert!((switching_point(1.0) - 94.736_842).abs() < 1e-3);
            for (intensity, want) in [(i_star * 0.999, 0), (i_star * 1.001, 1), (i_star * 0.5, 0), (i_star * 3.0, 1)] {
                let mut c = cfg(pue).build(&ctx());
                let mut sv = server();
                tick(&mut c, &mut sv, 1, intensity);
                assert_eq!(sv.variant, want, "intensity {intensity} vs switching point {i_star} (pue {pue})");
            }
        }
    }

    #[test]
    fn reoptimises_only_when_the_signal_moves_beyond_the_threshold() {
        let i_star = switching_point(1.0);
        let mut c = cfg(1.0).build(&ctx());
        let mut sv = server();
        assert!(!tick(&mut c, &mut sv, 1, i_star * 0.97), "big is already running");
        assert_eq!(c.last_signal(), Some(i_star * 0.97));
        // +3.1 % crosses the switching point but not the 5 % threshold: hold
        assert!(!tick(&mut c, &mut sv, 2, i_star * 1.0));
        assert_eq!((sv.variant, c.last_signal()), (0, Some(i_star * 0.97)));
        // +6 % over the last optimisation: switch to eco
        assert!(tick(&mut c, &mut sv, 3, i_star * 0.97 * 1.06));
        assert_eq!(sv.variant, 1);
        // back down by 4 %: hold; by 6 %: back to big
        assert!(!tick(&mut c, &mut sv, 4, i_star * 0.97 * 1.06 * 0.96));
        assert!(tick(&mut c, &mut sv, 5, i_star * 0.97 * 1.06 * 0.94));
        assert_eq!(sv.variant, 0);
        // threshold 0: every change re-optimises
        let mut c = CarbonConfig { threshold: 0.0, ..cfg(1.0) }.build(&ctx());
        let mut sv = server();
        tick(&mut c, &mut sv, 1, i_star * 0.999);
        tick(&mut c, &mut sv, 2, i_star * 1.001);
        assert_eq!(sv.variant, 1);
    }

    #[test]
    fn slo_excludes_variants_and_forces_reoptimisation() {
        // big is slow: 40 ms; at 30 rps one instance of it is saturated. λ = 0: accuracy only
        let mut ctx = ctx();
        ctx.servers[0].variants[0].latency_s = vec![0.04];
        let mut c = CarbonConfig { lambda: 0.0, ..cfg(1.0) }.build(&ctx);
        let mut sv = server();
        tick(&mut c, &mut sv, 1, 1.0); // clean grid, no load: big
        assert_eq!(sv.variant, 0);
        for i in 0..30 {
            c.decide(
                &RequestView { id: i, arrival: SimTime::from_secs_f64(1.0 + i as f64 / 30.0), uncertainty: None },
                &GatewayView { now: SimTime::ZERO, servers: &[], carbon_g_per_kwh: 0.0, power_w: 0.0, slo: SimDuration::ZERO },
            );
        }
        // same intensity, but big no longer meets the SLO at 30 rps
        tick(&mut c, &mut sv, 2, 1.0);
        assert_eq!(sv.variant, 1);
    }

    #[test]
    fn lambda_extremes_and_config() {
        let ctx = ctx();
        let vars = &ctx.servers[0].variants;
        let p = |lambda, intensity| CarbonProblem {
            variants: vars,
            batch_size: 1,
            instances: 1,
            load_rps: 1.0,
            slo_s: 0.05,
            intensity,
            embodied_g_per_hour: G,
            lambda,
        };
        assert_eq!(p(0.0, 1000.0).best(), 0, "accuracy only");
        assert_eq!(p(1.0, 1.0).best(), 1, "carbon only");
        assert_eq!(p(0.5, 0.0).score(0), 0.0);
        let c: CarbonConfig = toml::from_str("lambda = 0.3\nthreshold = 0.1\npue = 1.2\ninterval_s = 300").unwrap();
        c.validate().unwrap();
        assert_eq!((c.lambda, c.threshold, c.pue), (0.3, 0.1, Some(1.2)));
        assert!(CarbonConfig { lambda: 1.5, ..c.clone() }.validate().unwrap_err().contains("controller.lambda"));
        assert!(CarbonConfig { pue: Some(0.5), ..c }.validate().unwrap_err().contains("controller.pue"));
        assert!(CarbonConfig { servers: vec!["nope".into()], ..Default::default() }.check_context(&ctx).is_err());
    }
}
