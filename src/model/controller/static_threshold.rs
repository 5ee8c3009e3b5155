//! `kind = "static_threshold"`: a cascade with a fixed uncertainty threshold.
//!
//! The early-exit model answers every request first; the request goes on to the full model
//! only when the early-exit model's uncertainty `U = 1 − confidence` is at least `threshold`
//! (the easy requests exit early). `threshold = 0` admits everything, `threshold > 1` nothing.

use serde::{Deserialize, Serialize};

use super::{Controller, Decision, GatewayView, RequestView};
use crate::core::SimTime;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticThresholdConfig {
    /// Admit iff uncertainty ≥ threshold.
    pub threshold: f64,
}

impl StaticThresholdConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.threshold.is_finite() && self.threshold >= 0.0 {
            Ok(())
        } else {
            Err(format!("controller.threshold must be a finite number >= 0 (got {})", self.threshold))
        }
    }
    pub fn build(&self) -> StaticThreshold {
        StaticThreshold { threshold: self.threshold }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct StaticThreshold {
    threshold: f64,
}

impl Controller for StaticThreshold {
    fn decide(&mut self, req: &RequestView, _view: &GatewayView<'_>) -> Decision {
        match req.uncertainty {
            Some(u) if u < self.threshold => Decision::Skip,
            _ => Decision::Admit,
        }
    }
    fn tau(&self, _now: SimTime) -> Option<f64> {
        Some(self.threshold)
    }
}

impl super::PolicyConfig for StaticThresholdConfig {
    fn validate(&self) -> Result<(), String> {
        StaticThresholdConfig::validate(self)
    }
    fn build_controller(&self, _: &super::ControllerContext, _: &crate::core::RngStreams) -> Box<dyn super::Controller> {
        Box::new(self.build())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::SimDuration;

    #[test]
    fn admits_uncertain_skips_confident() {
        let mut c = StaticThresholdConfig { threshold: 0.3 }.build();
        let view = GatewayView { now: SimTime::ZERO, servers: &[], carbon_g_per_kwh: 0.0, power_w: 0.0, slo: SimDuration::ZERO };
        let r = |u| RequestView { id: 0, arrival: SimTime::ZERO, uncertainty: Some(u) };
        assert_eq!(c.decide(&r(0.29), &view), Decision::Skip);
        assert_eq!(c.decide(&r(0.3), &view), Decision::Admit);
        assert_eq!(c.decide(&r(0.9), &view), Decision::Admit);
    }
}
