//! Controllers see only what a real gateway sees.
//! - Labels: moving every model's `correct` labels to other samples (so each model's offline
//!   accuracy, which an operator knows before the run, stays the same, but which requests are
//!   answered correctly changes) must not change a single decision: admissions, skips, τ(t),
//!   batches, reconfigurations.
//! - The future: cutting the trace at T must not change anything the controller did before T.

mod common;
use common::*;

use basin::core::{RngStreams, SimDuration, SimTime};
use basin::metrics::{CarbonSignal, RunOutput};
use basin::model::controller::ControllerConfig;
use basin::model::cost::CostRow;
use basin::model::quality::{Quality, QualityTable};
use basin::model::server::{ServerKind, Variant};
use basin::sim;
use basin::spec::{EarlyExitSpec, SimSpec};
use rand::RngExt;

const KINDS: &[&str] = &[
    "kind = \"open_loop\"",
    "kind = \"static_threshold\"\nthreshold = 0.4",
    "kind = \"bio_threshold\"\ntau0 = 0.6\ntau_inf = 0.1\nk = 0.05",
    "kind = \"bio_threshold\"\ntau0 = 0.6\ntau_inf = 0.1\nk = 0.05\n[feedback]\nwindow_s = 5\nslo_violation_target = 0.01\nreheat = 0.2\ntau_max = 0.9",
    "kind = \"ipa\"\ninterval_s = 5\nmax_instances = 3",
    "kind = \"fa2_low\"\ninterval_s = 5\nmax_instances = 3",
    "kind = \"fa2_high\"\ninterval_s = 5\nmax_instances = 3",
    "kind = \"rim_high\"\ninterval_s = 5\nmax_instances = 3",
    "kind = \"qlearn\"\ninterval_s = 5\nmax_instances = 3",
    "kind = \"carbon\"\ninterval_s = 5\nembodied_g_per_hour = 300",
];

fn controller(src: &str) -> ControllerConfig {
    toml::from_str(src).expect("controller config parses")
}

/// A cascade (early exit `tiny`) in front of a batched server that can switch between `small`
/// and `large`, on a bursty workload, with a quality table whose labels can be moved to other
/// samples (`shift`: sample i gets the label of sample i + shift of the same model).
fn deployment(ctl: &str, shift: u32, seconds: usize) -> SimSpec {
    const N: u32 = 500;
    let mut rng = RngStreams::new(99).stream("table");
    let mut conf = vec![];
    let mut correct = vec![];
    for _ in 0..N {
        for skill in [0.6, 0.8, 0.95] {
            let c: f64 = (skill + rng.random::<f64>() * 0.3 - 0.15_f64).clamp(0.0, 1.0);
            conf.push(c);
            correct.push(rng.random::<f64>() < c);
        }
    }
    let mut rows = Vec::new();
    for i in 0..N {
        for (k, m) in ["tiny", "small", "large"].iter().enumerate() {
            let j = ((i + shift) % N) as usize;
            rows.push((m.to_string(), i, conf[i as usize * 3 + k], correct[j * 3 + k]));
        }
    }
    let table = QualityTable::from_rows(rows).unwrap();
    let rates: Vec<f64> = (0..seconds).map(|s| if (s / 10) % 3 == 2 { 900.0 } else { 250.0 }).collect();
    let mut srv = server("b", ServerKind::Batched, 1, 8, 2_000, None, |b| (1.0 + 0.3 * b as f64, 0.05 * b as f64));
    let costs = |lat: f64| {
        (1..=8)
            .map(|b| CostRow::fixed("x", "sim", "dev0", b, lat * (1.0 + 0.3 * b as f64), 0.05 * lat * b as f64).service_dist().unwrap())
            .collect::<Vec<_>>()
    };
    srv.variants = vec![
        Variant { model: "large".into(), costs: costs(1.0), quality_index: table.index_of("large") },
        Variant { model: "small".into(), costs: costs(0.4), quality_index: table.index_of("small") },
    ];
    srv.instance_standby_power_w = 5.0;
    srv.warmup = SimDuration::from_secs(1);
    let mut s = spec(basin::model::arrivals::ArrivalSpec::Rate { rates_rps: rates, process: Default::default() }, vec![srv], 30.0);
    s.early_exit = Some(EarlyExitSpec {
        model: "tiny".into(),
        dist: CostRow::fixed("tiny", "sim", "dev0", 1, 0.1, 0.001).service_dist().unwrap(),
        quality_index: table.index_of("tiny"),
        overhead_energy_j: 0.0,
    });
    s.quality = Some(Quality::Table(table));
    s.controller = controller(ctl);
    s.slo = SimDuration::from_millis_f64(20.0);
    s.carbon = CarbonSignal::Steps {
        times: (0..12).map(|i| SimTime::from_secs(i * 10)).collect(),
        values: (0..12).map(|i| 100.0 + 60.0 * (i % 4) as f64).collect(),
    };
    s.record_batches = true;
    s.record_requests = true;
    s
}

/// Per-interval admitted, skipped and rejected counts, τ bits, and (start ns, size, instance) per batch.
type Decisions = (Vec<u64>, Vec<u64>, Vec<u64>, Vec<Option<u64>>, Vec<(u64, u32, u32)>);

/// Everything a controller decided, as comparable data (excludes correctness).
fn decisions(o: &RunOutput) -> Decisions {
    let t = &o.timeseries;
    let b = o.batches.as_ref().unwrap();
    (
        t.admitted.clone(),
        t.skipped.clone(),
        t.rejected.clone(),
        t.tau.iter().map(|x| x.map(f64::to_bits)).collect(),
        (0..b.len()).map(|i| ((b.start_s[i] * 1e9) as u64, b.size[i], b.instance[i])).collect(),
    )
}

#[test]
fn moving_labels_between_samples_changes_no_decision() {
    for ctl in KINDS {
        let a = sim::run(&deployment(ctl, 0, 60), 3);
        let b = sim::run(&deployment(ctl, 7, 60), 3);
        assert!(decisions(&a) == decisions(&b), "{ctl}: decisions depend on labels");
        // ... while the answers' correctness did change (the test is not vacuous)
        let (ra, rb) = (a.requests.as_ref().unwrap(), b.requests.as_ref().unwrap());
        let differ = ra.correct.iter().zip(&rb.correct).filter(|(x, y)| x != y).count();
        assert!(differ > ra.len() / 20, "{ctl}: only {differ} answers changed correctness");
    }
}

#[test]
fn the_future_of_the_trace_changes_nothing_before_it() {
    for ctl in KINDS {
        let short = sim::run(&deployment(ctl, 0, 60), 4);
        let long = sim::run(&deployment(ctl, 0, 120), 4);
        // every interval that ended by t = 59 s is identical
        let (s, l) = (&short.timeseries, &long.timeseries);
        for i in 0..59 {
            assert_eq!(
                (s.admitted[i], s.skipped[i], s.rejected[i], s.completed[i]),
                (l.admitted[i], l.skipped[i], l.rejected[i], l.completed[i]),
                "{ctl}: interval {i}"
            );
            assert_eq!(s.tau[i].map(f64::to_bits), l.tau[i].map(f64::to_bits), "{ctl}: tau at {i}");
            assert_eq!(s.queue_len[i].to_bits(), l.queue_len[i].to_bits(), "{ctl}: queue at {i}");
        }
    }
}

#[test]
fn every_controller_runs_and_reacts() {
    // sanity: the adaptive controllers do reconfigure on this bursty workload, the cascade ones skip
    for ctl in KINDS {
        let o = sim::run(&deployment(ctl, 0, 60), 5);
        let s = &o.summary;
        assert_eq!(s.requests, s.admitted + s.skipped + s.rejected, "{ctl}");
        assert!(s.completed == s.admitted, "{ctl}");
        if ctl.contains("threshold") {
            assert!(s.skipped > 0 && s.admitted > 0, "{ctl}: {} skipped, {} admitted", s.skipped, s.admitted);
        }
    }
}
