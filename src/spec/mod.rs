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

/// The real backends basin drives, by the name an experiment's `backend` (and the cost table's
/// `backend` column) gives them. Other names (`sim`, a GPU label) are cost-table labels only:
/// simulation accepts them, a replay has nothing to run them on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    /// ONNX Runtime in basin's own process (`onnxruntime`, also written `ort`).
    OnnxRuntime,
    /// A Triton server over KServe v2 HTTP (`triton`): it forms batches itself.
    Triton,
}

impl BackendKind {
    /// The names a replay accepts, for error messages.
    pub const ALLOWED: &'static str = "onnxruntime or triton";

    /// The backend an experiment's `backend` names, if it is a real one.
    pub fn of(name: &str) -> Option<BackendKind> {
        match name {
            "onnxruntime" | "ort" => Some(BackendKind::OnnxRuntime),
            "triton" => Some(BackendKind::Triton),
            _ => None,
        }
    }

    /// Whether `name` is Triton.
    pub fn is_triton(name: &str) -> bool {
        Self::of(name) == Some(BackendKind::Triton)
    }

    /// The name written in experiment files, cost tables and outputs.
    pub const fn name(self) -> &'static str {
        match self {
            BackendKind::OnnxRuntime => "onnxruntime",
            BackendKind::Triton => "triton",
        }
    }

    /// Whether the backend batches requests itself (a gateway sends each request on its own).
    pub fn batches_remotely(self) -> bool {
        self == BackendKind::Triton
    }

    /// Whether the backend an experiment's `backend` names batches requests itself (`false`
    /// for a cost-table label).
    pub fn named_batches_remotely(name: &str) -> bool {
        Self::of(name).is_some_and(Self::batches_remotely)
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
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
            servers: self
                .servers
                .iter()
                .map(|s| ServerProfile {
                    name: s.name.clone(),
                    variants: s.variants.iter().map(|v| profile(&v.model, v.quality_index, &v.costs)).collect(),
                    initial_variant: s.initial_variant,
                    instances: s.instances,
                    max_batch_size: s.max_batch_size,
                    idle_power_w: self.devices[s.device].idle_power_w,
                    instance_standby_power_w: s.instance_standby_power_w,
                    warmup_s: s.warmup.as_secs_f64(),
                    warmup_energy_j: s.warmup_energy.0,
                })
                .collect(),
            early_exit: self.early_exit.as_ref().map(|e| profile(&e.model, e.quality_index, std::slice::from_ref(&e.dist))),
            slo: self.slo,
        }
    }
}

/// Builders with the defaults that tests, benchmarks and examples share (one model `m` on one
/// device `dev0`, cost rows given as a function of the batch size).
pub mod build {
    use super::SimSpec;
    use crate::core::{Joules, SimDuration};
    use crate::metrics::CarbonSignal;
    use crate::model::DeviceSpec;
    use crate::model::arrivals::ArrivalSpec;
    use crate::model::controller::ControllerConfig;
    use crate::model::cost::{CostRow, LatencyDistribution};
    use crate::model::routing::RoutingConfig;
    use crate::model::server::{ServerKind, ServerSpec, Variant};

    /// A server `name` of model `m` on device 0 whose batches of size b take `cost(b)` =
    /// (latency ms, energy J), drawn from `dist` when given (deterministic otherwise).
    pub fn server(
        name: &str,
        kind: ServerKind,
        instances: u32,
        max_batch: u32,
        delay_us: u64,
        dist: Option<LatencyDistribution>,
        cost: impl Fn(u32) -> (f64, f64),
    ) -> ServerSpec {
        let costs = (1..=max_batch)
            .map(|b| {
                let (l, e) = cost(b);
                let mut r = CostRow::fixed("m", "sim", "dev0", b, l, e);
                r.distribution = dist;
                r.service_dist().expect("a built cost row has a finite latency and energy")
            })
            .collect();
        ServerSpec {
            name: name.into(),
            kind,
            backend: "sim".into(),
            device: 0,
            variants: vec![Variant { model: "m".into(), costs, quality_index: None }],
            initial_variant: 0,
            instances,
            max_batch_size: max_batch,
            preferred_batch_sizes: vec![],
            max_queue_delay: SimDuration::from_micros(delay_us),
            max_queue_size: None,
            warmup: SimDuration::ZERO,
            warmup_energy: Joules(0.0),
            instance_standby_power_w: 0.0,
            request_overhead: SimDuration::ZERO,
            load: None,
            observed_service: None,
            observed_transport: None,
            observed_overhead: None,
        }
    }

    /// An experiment `name` with `servers` on device `dev0` idling at `idle_w`, open loop, first
    /// server routing, SLO 100 ms, PUE 1, 400 g/kWh, 1 s intervals, no records.
    pub fn spec(name: &str, arrivals: ArrivalSpec, servers: Vec<ServerSpec>, idle_w: f64) -> SimSpec {
        SimSpec {
            name: name.into(),
            arrivals,
            max_requests: None,
            devices: vec![DeviceSpec { name: "dev0".into(), idle_power_w: idle_w }],
            servers,
            early_exit: None,
            quality: None,
            controller: ControllerConfig::default(),
            routing: RoutingConfig::default(),
            slo: SimDuration::from_millis_f64(100.0),
            pue: 1.0,
            carbon: CarbonSignal::Constant(400.0),
            interval: SimDuration::from_secs(1),
            record_requests: false,
            record_batches: false,
            energy_estimated: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::BackendKind;

    #[test]
    fn backend_names_round_trip_and_only_triton_batches_remotely() {
        for k in [BackendKind::OnnxRuntime, BackendKind::Triton] {
            assert_eq!(BackendKind::of(k.name()), Some(k));
            assert_eq!(k.to_string(), k.name());
        }
        assert_eq!(BackendKind::of("ort"), Some(BackendKind::OnnxRuntime));
        assert_eq!(BackendKind::of("sim"), None);
        assert!(BackendKind::is_triton("triton") && !BackendKind::is_triton("onnxruntime"));
        assert!(BackendKind::Triton.batches_remotely() && !BackendKind::OnnxRuntime.batches_remotely());
        assert!(BackendKind::named_batches_remotely("triton") && !BackendKind::named_batches_remotely("sim"));
    }
}
