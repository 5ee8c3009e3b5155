//! The resolved experiment: what every driver (simulation, replay, live serving) runs.
//!
//! The config layer (`io::experiment`) builds a [`SimSpec`] from a TOML file and its input
//! files and validates it; the drivers only read it. It lives apart from `sim` so that `io`,
//! `replay` and the gateway depend on the experiment, not on one driver.

use crate::core::SimDuration;
use crate::metrics::CarbonSignal;
use crate::model::DeviceSpec;
use crate::model::arrivals::ArrivalSpec;
use crate::model::controller::{ControllerConfig, ControllerContext, ServerProfile, VariantProfile};
use crate::model::cost::ServiceDist;
use crate::model::quality::Quality;
use crate::model::routing::RoutingConfig;
use crate::model::server::ServerSpec;

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
