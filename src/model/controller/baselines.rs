//! The baselines of IPA's energy study, as restrictions of the IPA optimiser ([`super::ipa`]).
//!
//! - `kind = "fa2_low"`: FA2-style scaling (Razavi et al., "FA2: Fast, Accurate Autoscaling for
//!   Serving Deep Learning Inference with SLA Guarantees", RTAS 2022) with the *smallest*
//!   variant (lowest accuracy): instance count and batch size adapt, the variant never changes.
//! - `kind = "fa2_high"`: the same with the *largest* variant (highest accuracy).
//! - `kind = "rim_high"`: variant switching (RIM, as in IPA's comparison) on a fixed,
//!   generous allocation: `fix_instances` instances (default `max_instances`), the variant and
//!   batch size adapt.
//!
//! Each takes every key of `kind = "ipa"` (same objective, predictor and defaults) except the
//! pins its kind sets: `fix_variant` for all three, `fix_instances` for the FA2 pair.
//! `fix_batch_size` pins the batch size of any of them (e.g. to compare scaling alone).

use serde::{Deserialize, Serialize};

use super::ControllerContext;
use super::ipa::{Ipa, IpaConfig};

fn unset<T>(x: &Option<T>, key: &str, kind: &str) -> Result<(), String> {
    if x.is_some() { Err(format!("controller.{key} is set by kind = \"{kind}\" and cannot be given")) } else { Ok(()) }
}

macro_rules! baseline {
    ($(#[$doc:meta])* $name:ident, $kind:literal, |$c:ident| $restrict:expr, |$v:ident| $check:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub IpaConfig);

        impl $name {
            pub const KIND: &'static str = $kind;
            /// Checks parameter ranges and that the kind's pins are not overridden.
            pub fn validate(&self) -> Result<(), String> {
                let $v = &self.0;
                $check?;
                self.0.validate()
            }
            /// The equivalent `kind = "ipa"` configuration.
            pub fn to_ipa(&self) -> IpaConfig {
                let mut $c = self.0.clone();
                $restrict;
                $c
            }
            pub fn check_context(&self, ctx: &ControllerContext) -> Result<(), String> { self.to_ipa().check_context(ctx) }
            pub fn build(&self, ctx: &ControllerContext) -> Ipa { self.to_ipa().build(ctx) }
        }

        impl super::PolicyConfig for $name {
            fn validate(&self) -> Result<(), String> { $name::validate(self) }
            fn check_context(&self, ctx: &ControllerContext) -> Result<(), String> { $name::check_context(self, ctx) }
            fn build_controller(&self, ctx: &ControllerContext, _: &crate::core::RngStreams) -> Box<dyn super::Controller> { Box::new(self.build(ctx)) }
        }
    };
}

baseline!(
    /// `kind = "fa2_low"`: scale instances (and batch) with the smallest variant.
    Fa2LowConfig, "fa2_low",
    |c| c.fix_variant = Some("smallest".into()),
    |v| unset(&v.fix_variant, "fix_variant", "fa2_low").and(unset(&v.fix_instances, "fix_instances", "fa2_low"))
);
baseline!(
    /// `kind = "fa2_high"`: scale instances (and batch) with the largest variant.
    Fa2HighConfig, "fa2_high",
    |c| c.fix_variant = Some("largest".into()),
    |v| unset(&v.fix_variant, "fix_variant", "fa2_high").and(unset(&v.fix_instances, "fix_instances", "fa2_high"))
);
baseline!(
    /// `kind = "rim_high"`: switch variants (and batch) on `fix_instances` (default
    /// `max_instances`) instances.
    RimHighConfig, "rim_high",
    |c| c.fix_instances = Some(c.fix_instances.unwrap_or(c.max_instances)),
    |v| unset(&v.fix_variant, "fix_variant", "rim_high")
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{RngStreams, SimDuration};
    use crate::model::controller::ipa::{optimize, rank_variants};
    use crate::model::controller::{ServerProfile, VariantProfile};
    use rand::RngExt;

    fn ctx(rng: &mut crate::core::StreamRng) -> ControllerContext {
        let variants = (0..3)
            .map(|i| {
                let lat: f64 = rng.random_range(0.002..0.03);
                let e: f64 = rng.random_range(0.2..3.0);
                VariantProfile {
                    model: format!("m{i}"),
                    accuracy: Some(rng.random_range(0.5..0.95)),
                    latency_s: (1..=4).map(|b| lat * (1.0 + 0.4 * (b as f64 - 1.0))).collect(),
                    energy_j: (1..=4).map(|b| e * (1.0 + 0.5 * (b as f64 - 1.0))).collect(),
                }
            })
            .collect();
        ControllerContext {
            servers: vec![ServerProfile {
                instance_standby_power_w: 0.0,
                name: "s".into(),
                variants,
                initial_variant: 0,
                instances: 1,
                max_batch_size: 1,
                idle_power_w: 30.0,
                warmup_s: 0.0,
                warmup_energy_j: 0.0,
            }],
            early_exit: None,
            slo: SimDuration::from_millis_f64(rng.random_range(20.0..200.0)),
        }
    }

    /// Brute force over the baseline's own space, written from its definition.
    fn restricted_best(full: &super::super::ipa::Problem, vs: &[usize], ns: &[u32]) -> Option<(usize, u32, u32)> {
        let mut best: Option<(f64, usize, u32, u32)> = None;
        for &v in vs {
            for &n in ns {
                for &b in &full.batch_sizes {
                    if let Some(f) = full.evaluate(v, n, b)
                        && best.is_none_or(|(g, ..)| f > g)
                    {
                        best = Some((f, v, n, b));
                    }
                }
            }
        }
        best.map(|(_, v, n, b)| (v, n, b))
    }

    #[test]
    fn baselines_search_their_restricted_spaces() {
        let mut rng = RngStreams::new(5).stream("baselines-test");
        let base = IpaConfig { max_instances: 3, instance_static_power_w: Some(5.0), ..Default::default() };
        for _ in 0..300 {
            let ctx = ctx(&mut rng);
            let rank = rank_variants(&ctx.servers[0].variants);
            let (small, large) = (rank[0], rank[2]);
            let mut full = base.problem(&ctx, 0);
            full.load_rps = rng.random_range(1.0..600.0);
            let with_load = |c: IpaConfig| {
                let mut p = c.problem(&ctx, 0);
                p.load_rps = full.load_rps;
                optimize(&p).map(|c| (c.variant, c.instances, c.batch_size))
            };
            let all_n = [1, 2, 3];
            assert_eq!(with_load(Fa2LowConfig(base.clone()).to_ipa()), restricted_best(&full, &[small], &all_n));
            assert_eq!(with_load(Fa2HighConfig(base.clone()).to_ipa()), restricted_best(&full, &[large], &all_n));
            assert_eq!(with_load(RimHighConfig(base.clone()).to_ipa()), restricted_best(&full, &[0, 1, 2], &[3]));
        }
    }

    #[test]
    fn pins_set_by_the_kind_cannot_be_overridden() {
        let c = Fa2LowConfig(IpaConfig { fix_variant: Some("m0".into()), ..Default::default() });
        assert!(c.validate().unwrap_err().contains("fix_variant"));
        let c = Fa2HighConfig(IpaConfig { fix_instances: Some(2), ..Default::default() });
        assert!(c.validate().unwrap_err().contains("fix_instances"));
        let c = RimHighConfig(IpaConfig { fix_instances: Some(2), ..Default::default() });
        c.validate().unwrap();
        assert_eq!(c.to_ipa().fix_instances, Some(2));
        assert_eq!(RimHighConfig::default().to_ipa().fix_instances, Some(IpaConfig::default().max_instances));
    }
}
