//! Builders shared by the integration tests.
#![allow(dead_code)]

use basin::core::SimTime;
use basin::model::arrivals::{ArrivalProcess, ArrivalSpec};
use basin::model::cost::LatencyDistribution;
use basin::model::server::{ServerKind, ServerSpec};
use basin::spec::SimSpec;

/// A server whose batches of size b take `latency_ms(b)` and cost `energy_j(b)`.
pub fn server(
    name: &str,
    kind: ServerKind,
    instances: u32,
    max_batch: u32,
    delay_us: u64,
    dist: Option<LatencyDistribution>,
    cost: impl Fn(u32) -> (f64, f64),
) -> ServerSpec {
    basin::spec::build::server(name, kind, instances, max_batch, delay_us, dist, cost)
}

pub fn spec(arrivals: ArrivalSpec, servers: Vec<ServerSpec>, idle_w: f64) -> SimSpec {
    basin::spec::build::spec("test", arrivals, servers, idle_w)
}

/// Poisson arrivals at `rate_rps` for `seconds`.
pub fn poisson(rate_rps: f64, seconds: usize) -> ArrivalSpec {
    ArrivalSpec::Rate { rates_rps: vec![rate_rps; seconds], process: ArrivalProcess::Poisson }
}

/// Explicit arrival times (seconds).
pub fn times(t: &[f64]) -> ArrivalSpec {
    ArrivalSpec::Times { arrivals_s: t.to_vec() }
}

pub fn at_ms(ms: f64) -> SimTime {
    SimTime::from_secs_f64(ms / 1e3)
}
