//! `GET /metrics`: the live gateway in the Prometheus text format, through the `prometheus`
//! crate (its registry and text encoder; no hand-written exposition text).

use prometheus::{Counter, Encoder, Gauge, Histogram, HistogramOpts, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

use crate::gateway::LiveLevels;

/// Latency buckets from 100 µs to 10 s (seconds, as Prometheus prefers).
const LATENCY_BUCKETS: [f64; 16] = [1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
const OVERHEAD_BUCKETS: [f64; 12] = [1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 0.1];

pub struct LiveMetrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: Histogram,
    overhead: Histogram,
    queue_len: IntGaugeVec,
    in_service: IntGaugeVec,
    tau: Gauge,
    intensity: Gauge,
    power: Gauge,
    energy: Counter,
    co2: Counter,
    servers: Vec<String>,
}

fn registered<C: prometheus::core::Collector + Clone + 'static>(registry: &Registry, c: C) -> C {
    registry.register(Box::new(c.clone())).expect("metric names are unique and valid");
    c
}

impl LiveMetrics {
    /// `meter`, `estimated`: the energy meter's name and whether its joules are an estimate
    /// (constant labels of power, energy and CO₂).
    pub fn new(servers: Vec<String>, meter: &str, estimated: bool) -> Self {
        let registry = Registry::new();
        let r = &registry;
        let energy_opts = |name: &str, help: &str| {
            Opts::new(name, help).const_label("meter", meter).const_label("estimated", if estimated { "true" } else { "false" })
        };
        LiveMetrics {
            requests: registered(
                r,
                IntCounterVec::new(
                    Opts::new("basin_requests_total", "Requests answered, by decision and requested model"),
                    &["decision", "model"],
                )
                .expect("valid"),
            ),
            latency: registered(
                r,
                Histogram::with_opts(
                    HistogramOpts::new("basin_request_latency_seconds", "Arrival to answer").buckets(LATENCY_BUCKETS.to_vec()),
                )
                .expect("valid"),
            ),
            overhead: registered(
                r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "basin_gateway_overhead_seconds",
                        "Arrival to answer minus the backends' time (the gateway's own latency)",
                    )
                    .buckets(OVERHEAD_BUCKETS.to_vec()),
                )
                .expect("valid"),
            ),
            queue_len: registered(
                r,
                IntGaugeVec::new(Opts::new("basin_queue_length", "Requests queued, per server"), &["server"]).expect("valid"),
            ),
            in_service: registered(
                r,
                IntGaugeVec::new(Opts::new("basin_in_service", "Requests in service, per server"), &["server"]).expect("valid"),
            ),
            tau: registered(r, Gauge::new("basin_controller_tau", "The controller's threshold τ (NaN: it has none)").expect("valid")),
            intensity: registered(r, Gauge::new("basin_grid_intensity_g_per_kwh", "Grid carbon intensity in use").expect("valid")),
            power: registered(
                r,
                Gauge::with_opts(energy_opts("basin_power_watts", "IT power over the last meter interval")).expect("valid"),
            ),
            energy: registered(
                r,
                Counter::with_opts(energy_opts("basin_energy_joules_total", "Facility energy (IT × PUE) since start")).expect("valid"),
            ),
            co2: registered(r, Counter::with_opts(energy_opts("basin_co2_grams_total", "CO₂ since start")).expect("valid")),
            servers,
            registry,
        }
    }

    /// An answered request: its decision label, the model the client named, its latency and
    /// the gateway's own share of it (seconds).
    pub fn answered(&self, decision: &str, model: &str, latency_s: f64, overhead_s: Option<f64>) {
        self.requests.with_label_values(&[decision, model]).inc();
        self.latency.observe(latency_s);
        if let Some(o) = overhead_s {
            self.overhead.observe(o);
        }
    }

    pub fn levels(&self, l: &LiveLevels) {
        for (i, name) in self.servers.iter().enumerate() {
            self.queue_len.with_label_values(&[name]).set(l.queue_len.get(i).copied().unwrap_or(0) as i64);
            self.in_service.with_label_values(&[name]).set(l.in_service.get(i).copied().unwrap_or(0) as i64);
        }
        self.tau.set(l.tau.unwrap_or(f64::NAN));
        self.intensity.set(l.carbon_g_per_kwh);
        raise(&self.co2, l.co2_g);
    }

    /// The meter's reading: power now, facility energy so far.
    pub fn energy(&self, power_w: f64, energy_j: f64) {
        self.power.set(power_w);
        raise(&self.energy, energy_j);
    }

    /// The exposition text.
    pub fn encode(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out).expect("writing to a Vec cannot fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }

    pub const CONTENT_TYPE: &'static str = "text/plain; version=0.0.4; charset=utf-8";
}

/// A counter follows a running total kept elsewhere (it never goes down).
fn raise(c: &Counter, total: f64) {
    let d = total - c.get();
    if d > 0.0 {
        c.inc_by(d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_carries_every_family() {
        let m = LiveMetrics::new(vec!["local".into()], "cpu-time estimate", true);
        m.answered("skipped", "digits", 0.002, Some(0.0001));
        m.levels(&LiveLevels { queue_len: vec![3], in_service: vec![1], tau: Some(0.4), carbon_g_per_kwh: 250.0, co2_g: 0.5 });
        m.energy(12.0, 40.0);
        let text = m.encode();
        for needle in [
            r#"basin_requests_total{decision="skipped",model="digits"} 1"#,
            r#"basin_queue_length{server="local"} 3"#,
            r#"basin_energy_joules_total{estimated="true",meter="cpu-time estimate"} 40"#,
            "basin_controller_tau 0.4",
            "basin_request_latency_seconds_bucket",
        ] {
            assert!(text.contains(needle), "{needle} missing from\n{text}");
        }
    }
}
