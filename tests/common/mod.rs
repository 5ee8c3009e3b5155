//! Builders shared by the integration tests.
#![allow(dead_code)]

use basin::core::{SimDuration, SimTime};
use basin::metrics::CarbonSignal;
use basin::model::DeviceSpec;
use basin::model::arrivals::{ArrivalProcess, ArrivalSpec};
use basin::model::controller::ControllerConfig;
use basin::model::cost::{CostRow, LatencyDistribution};
use basin::model::routing::RoutingConfig;
use basin::model::server::{ServerKind, ServerSpec, Variant};
use basin::spec::SimSpec;

/// A server whose batches of size b take `latency_ms(b)` and cost `energy_j(b)`.
pub fn server(name: &str, kind: ServerKind, instances: u32, max_batch: u32, delay_us: u64,
              dist: Option<LatencyDistribution>, cost: impl Fn(u32) -> (f64, f64)) -> ServerSpec {
    let costs = (1..=max_batch).map(|b| {
        let (l, e) = cost(b);
        let mut r = CostRow::fixed("m", "sim", "dev0", b, l, e);
        r.distribution = dist;
        r.service_dist().unwrap()
    }).collect();
    ServerSpec {
        name: name.into(), kind, backend: "sim".into(), device: 0,
        variants: vec![Variant { model: "m".into(), costs, quality_index: None }],
        initial_variant: 0, instances, max_batch_size: max_batch, preferred_batch_sizes: vec![],
        max_queue_delay: SimDuration::from_micros(delay_us), max_queue_size: None,
        warmup: SimDuration::ZERO, warmup_energy: basin::core::Joules(0.0), instance_standby_power_w: 0.0, request_overhead: SimDuration::ZERO, load: None,
    }
}

pub fn spec(arrivals: ArrivalSpec, servers: Vec<ServerSpec>, idle_w: f64) -> SimSpec {
    SimSpec {
        name: "test".into(), arrivals, max_requests: None,
        devices: vec![DeviceSpec { name: "dev0".into(), idle_power_w: idle_w }],
        servers, early_exit: None, quality: None,
        controller: ControllerConfig::default(), routing: RoutingConfig::default(),
        slo: SimDuration::from_millis_f64(100.0), pue: 1.0, carbon: CarbonSignal::Constant(400.0),
        interval: SimDuration::from_secs(1), record_requests: false, record_batches: false,
        energy_estimated: false,
    }
}

/// Poisson arrivals at `rate_rps` for `seconds`.
pub fn poisson(rate_rps: f64, seconds: usize) -> ArrivalSpec {
    ArrivalSpec::Rate { rates_rps: vec![rate_rps; seconds], process: ArrivalProcess::Poisson }
}

/// Explicit arrival times (seconds).
pub fn times(t: &[f64]) -> ArrivalSpec { ArrivalSpec::Times { arrivals_s: t.to_vec() } }

pub fn at_ms(ms: f64) -> SimTime { SimTime::from_secs_f64(ms / 1e3) }
