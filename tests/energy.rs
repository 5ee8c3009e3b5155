//! Energy conservation and carbon accounting, checked against an independent integration.

mod common;
use common::*;

use basin::core::{SimDuration, SimTime};
use basin::metrics::CarbonSignal;
use basin::model::controller::{ControllerConfig, StaticThresholdConfig};
use basin::model::cost::CostRow;
use basin::model::quality::{Quality, QualityTable};
use basin::model::server::ServerKind;
use basin::sim;
use basin::spec::EarlyExitSpec;

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-300)
}

/// A carbon signal with an irregular step every 7.3 s.
fn carbon() -> CarbonSignal {
    let times: Vec<SimTime> = (0..20).map(|i| SimTime::from_secs_f64(i as f64 * 7.3)).collect();
    let values = (0..20).map(|i| 150.0 + 37.0 * ((i * 7) % 11) as f64).collect();
    CarbonSignal::Steps { times, values }
}

fn base_spec() -> basin::spec::SimSpec {
    let mut s = spec(
        poisson(300.0, 60),
        vec![server("b", ServerKind::Batched, 1, 4, 2_000, None, |b| (1.0 + 0.4 * b as f64, 0.05 + 0.02 * b as f64))],
        35.0,
    );
    s.pue = 1.2;
    s.carbon = carbon();
    s.record_requests = true;
    s.record_batches = true;
    s
}

#[test]
fn per_request_energy_plus_idle_equals_device_totals() {
    let out = sim::run(&base_spec(), 5);
    let s = &out.summary;
    let req: f64 = out.requests.as_ref().unwrap().energy_j.iter().map(|e| e.unwrap_or(0.0)).sum();
    let total = req + s.energy.idle_j + s.energy.reconfig_j;
    assert!(rel(total, s.energy_j) < 1e-9, "requests {req} + idle {} != {}", s.energy.idle_j, s.energy_j);
    assert!(rel(req, s.energy.attributed_j) < 1e-9);
    // the time series integrates the same energy
    let ts: f64 = out.timeseries.energy_j.iter().sum();
    assert!(rel(ts, s.energy_j) < 1e-9, "time series {ts} vs {}", s.energy_j);
    // idle energy = idle power × (duration − busy time) × PUE (one instance: batches never overlap)
    let b = out.batches.as_ref().unwrap();
    let busy: f64 = (0..b.len()).map(|i| b.end_s[i] - b.start_s[i]).sum();
    assert!(rel(s.energy.idle_j, 35.0 * (s.duration_s - busy) * 1.2) < 1e-9);
}

/// ∫ power × intensity dt, integrated here from the batch records and the idle gaps.
#[test]
fn carbon_equals_integral_of_power_times_intensity() {
    let spec = base_spec();
    let out = sim::run(&spec, 9);
    let b = out.batches.as_ref().unwrap();
    let sig = carbon();
    let CarbonSignal::Steps { times, .. } = &sig else { unreachable!() };
    let edges: Vec<f64> = times.iter().map(|t| t.as_secs_f64()).collect();
    // ∫_a^b intensity(t) dt, splitting at the step edges
    let integral = |a: f64, b_: f64| -> f64 {
        let mut cuts = vec![a];
        cuts.extend(edges.iter().copied().filter(|&e| e > a && e < b_));
        cuts.push(b_);
        cuts.windows(2).map(|w| sig.at(SimTime::from_secs_f64((w[0] + w[1]) / 2.0)) * (w[1] - w[0])).sum()
    };
    let pue = 1.2;
    let mut co2 = 0.0;
    let mut t = 0.0;
    for i in 0..b.len() {
        co2 += 35.0 * integral(t, b.start_s[i]); // idle before the batch
        let p = b.energy_j[i] / pue / (b.end_s[i] - b.start_s[i]);
        co2 += p * integral(b.start_s[i], b.end_s[i]);
        t = b.end_s[i];
    }
    co2 += 35.0 * integral(t, out.summary.duration_s);
    let co2_g = co2 * pue / 3.6e6;
    assert!(rel(out.summary.co2_g, co2_g) < 1e-9, "summary {} vs integral {co2_g}", out.summary.co2_g);
    let ts: f64 = out.timeseries.co2_g.iter().sum();
    assert!(rel(ts, co2_g) < 1e-9);
}

#[test]
fn cascade_energy_is_attributed_to_requests() {
    // quality table: early-exit model `small` (confident on even samples), full model `m`
    let rows = (0..100u32)
        .flat_map(|i| [("small".to_string(), i, if i % 2 == 0 { 0.9 } else { 0.4 }, i % 3 != 0), ("m".to_string(), i, 0.95, i % 10 != 0)]);
    let table = QualityTable::from_rows(rows).unwrap();
    let mut s = base_spec();
    let qi_small = table.index_of("small");
    s.servers[0].variants[0].quality_index = table.index_of("m");
    s.quality = Some(Quality::Table(table));
    s.early_exit = Some(EarlyExitSpec {
        model: "small".into(),
        dist: CostRow::fixed("small", "sim", "dev0", 1, 0.2, 0.003).service_dist().unwrap(),
        quality_index: qi_small,
        overhead_energy_j: 0.0,
    });
    s.controller = ControllerConfig::StaticThreshold(StaticThresholdConfig { threshold: 0.3 });
    let out = sim::run(&s, 2);
    let sm = &out.summary;
    assert!(sm.skipped > 0 && sm.admitted > 0, "{sm:?}");
    // every request paid the early-exit model
    assert!(rel(sm.energy.early_exit_j, 0.003 * 1.2 * sm.requests as f64) < 1e-9);
    let req: f64 = out.requests.as_ref().unwrap().energy_j.iter().map(|e| e.unwrap()).sum();
    assert!(rel(req + sm.energy.idle_j, sm.energy_j) < 1e-9);
    // skipped requests answered after exactly the early-exit latency
    let r = out.requests.as_ref().unwrap();
    for i in 0..r.len() {
        if r.decision[i] == basin::model::request::Outcome::Skipped {
            assert!((r.latency_ms[i].unwrap() - 0.2).abs() < 1e-9);
        }
    }
    // accuracy over answered requests: skipped use `small`, admitted `m`
    let correct = r.correct.iter().filter(|c| **c == Some(true)).count() as f64;
    let answered = r.correct.iter().filter(|c| c.is_some()).count() as f64;
    assert!(rel(sm.accuracy.unwrap(), correct / answered) < 1e-12);
    let _ = SimDuration::ZERO;
}

#[test]
fn instance_standby_power_is_idle_energy() {
    // one instance drawing 10 W whenever it does not serve a batch, on top of the device's 35 W
    let mut s = base_spec();
    s.servers[0].instance_standby_power_w = 10.0;
    let out = sim::run(&s, 5);
    let b = out.batches.as_ref().unwrap();
    let busy: f64 = (0..b.len()).map(|i| b.end_s[i] - b.start_s[i]).sum();
    let d = out.summary.duration_s;
    assert!(rel(out.summary.energy.idle_j, (35.0 + 10.0) * (d - busy) * 1.2) < 1e-9);
    let ts: f64 = out.timeseries.energy_j.iter().sum();
    assert!(rel(ts, out.summary.energy_j) < 1e-9);
}
