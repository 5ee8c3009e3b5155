//! Validation of the simulator against the real system, in levels that split the error into the
//! parts a noisy host cannot touch and the part it can (docs/src/validation.md).
//!
//! | level | the real run | the simulation takes from it | what the comparison validates |
//! |---|---|---|---|
//! | 0 `basin replay --virtual` | the replay driver on a virtual clock | everything | the driver is the simulator (exact equality) |
//! | 1 `controlled` | real Triton/HTTP/client pool/threads; compute replaced by holding the cost table's time | transport (Path B) | arrivals, batching, queueing, the controller, the driver |
//! | 2 `conditioned` | real models | transport, every batch's execution time | the queueing/batching/transport model on real compute |
//! | 3 `predicted` | real models | nothing (tables and load profile measured before) | the whole prediction |
//!
//! Every level compares one simulation with N replays ([`stats`]): the replays' mean, 95% band
//! and spread, the simulation's error, equivalence tests and the KS distance of latencies. Every
//! replay carries its host speed probe (`hw::probe`); a comparison whose host drifted more than
//! [`probe::UNRELIABLE_DRIFT`] is marked unreliable instead of being reported as the simulator's
//! error.
//!
//! The orchestration (starting Triton, replays, simulations) is `basin validate`
//! (`cli::validate`); this module holds the parts that do not run anything.

pub mod compare;
pub mod conditioned;
pub mod controlled;
pub mod stats;
pub mod trace;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::str::FromStr;

use serde::Serialize;
use serde_json::Value;

use crate::hw::probe;
use crate::metrics::RunOutput;
use crate::model::request::Outcome;
use stats::{MetricStats, ks_distance};

/// A validation level (`--level`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Controlled,
    Conditioned,
    Predicted,
}

impl Level {
    pub const NAMES: [&'static str; 3] = ["controlled", "conditioned", "predicted"];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Controlled => "controlled",
            Level::Conditioned => "conditioned",
            Level::Predicted => "predicted",
        }
    }

    /// What the simulation takes from the replays it is compared with (and therefore does not
    /// validate).
    /// `host_passes`: level 3 re-measured the host with a short load pass before each replay.
    pub fn taken_from_run(self, host_passes: bool) -> &'static str {
        match self {
            Level::Controlled => {
                "service times by construction (the real run holds the cost table's times); per remote server: each traced request's transport (arrival at the gateway → in Triton's queue, so the real gateway's own time before sending included; execution end → answered; from Triton's trace, that of the nearest traced request for untraced ones, or without a trace the mean client round trip (arrival → answer) − Triton's queue + compute), Triton's batcher's dispatch lag (median wait beyond the batching delay) and each traced batch's overhead outside the model (Triton's execution span − the model's logged execution; a simulated batch takes that of the traced batch nearest its start; without a trace the mean from Triton's statistics)"
            }
            Level::Conditioned => {
                "every batch's observed execution time, in execution order; per remote server: each traced request's transport, the batcher's dispatch lag and the per-execution overhead outside the model, as at level 1"
            }
            Level::Predicted if host_passes => {
                "nothing from the replays: cost tables and load profile were measured before, independently; just before each replay a short load pass (the real pipeline, Poisson, the server at the rate the simulation sends it: open loop, or for a skipping cascade the whole arrival rate thinned by a fixed uncertainty threshold) re-measured the host, and that replay's simulation takes the profile rescaled to it (so does the replay's gateway, whose controller sees each answer's energy estimated from the profile) (service and energy factors × the pass's over the profile's at the pass's rate, transport overhead shifted by their difference; inputs.<server>.host_pass)"
            }
            Level::Predicted => "nothing: cost tables and load profile were measured before, independently",
        }
    }
}

impl FromStr for Level {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "controlled" => Ok(Level::Controlled),
            "conditioned" => Ok(Level::Conditioned),
            "predicted" => Ok(Level::Predicted),
            other => Err(format!("unknown level `{other}`; expected one of: {}", Level::NAMES.join(", "))),
        }
    }
}

/// The compared metrics: name, JSON pointer into a summary, and whether it is a latency (KS).
pub const METRICS: &[(&str, &str, bool)] = &[
    ("latency_mean_ms", "/latency_ms/mean", true),
    ("latency_p50_ms", "/latency_ms/p50", true),
    ("latency_p95_ms", "/latency_ms/p95", true),
    ("latency_p99_ms", "/latency_ms/p99", true),
    ("throughput_rps", "/throughput_rps", false),
    ("mean_batch_size", "/mean_batch_size", false),
    ("admission_rate", "/admission_rate", false),
    ("accuracy", "/accuracy", false),
    ("energy_j", "/energy_j", false),
];

/// Level 1's targets on |rel_error| (the issue's): mean latency 2%, p99 5%, mean batch size 2%,
/// throughput 0.5%; and ≤ 1% averaged over those four.
pub const CONTROLLED_TARGETS: &[(&str, f64)] =
    &[("latency_mean_ms", 0.02), ("latency_p99_ms", 0.05), ("mean_batch_size", 0.02), ("throughput_rps", 0.005)];
pub const CONTROLLED_MEAN_TARGET: f64 = 0.01;

/// One replay of a validation, as reported.
#[derive(Clone, Debug, Serialize)]
pub struct ReplayRun {
    pub dir: String,
    pub host_drift: Option<f64>,
    pub median_probe_us: Option<f64>,
    /// The driver's schedule error p99 (ms).
    pub schedule_error_p99_ms: f64,
    pub failed: u64,
}

/// `validation.json`.
#[derive(Clone, Debug, Serialize)]
pub struct Validation {
    pub level: Level,
    pub name: String,
    pub experiment: String,
    pub repeats: usize,
    /// The largest drift of any replay's host probe (max/min of its rolling median).
    pub host_drift: Option<f64>,
    /// Some replay's host drifted more than `hw::probe::UNRELIABLE_DRIFT`: the errors may be the
    /// host's, not the simulator's.
    pub unreliable: bool,
    pub taken_from_run: &'static str,
    /// What the simulation took, per server (e.g. `transport_ms`).
    pub inputs: BTreeMap<String, Value>,
    /// The simulated instances' busy fraction.
    pub sim_utilisation: Option<f64>,
    pub metrics: BTreeMap<String, MetricStats>,
    /// Level 1: each target metric's |rel_error| against its target, and the average.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub targets: Option<Targets>,
    pub replays: Vec<ReplayRun>,
    pub date: String,
    pub host: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Targets {
    /// metric → (target, |rel_error|, met).
    pub per_metric: BTreeMap<String, (f64, Option<f64>, bool)>,
    pub mean_abs_error: Option<f64>,
    pub mean_target: f64,
    pub all_met: bool,
}

fn summary_value(out: &RunOutput) -> Value {
    serde_json::to_value(&out.summary).unwrap_or(Value::Null)
}

/// The latencies (ms) of the requests a server answered: the population of the summary's
/// latency metrics, which the KS distance and the CDF figure compare too (a request the early
/// exit answered takes the early-exit model's time, not the serving path's).
pub fn served_latencies(out: &RunOutput) -> Vec<f64> {
    let Some(r) = out.requests.as_ref() else { return Vec::new() };
    r.decision.iter().zip(&r.latency_ms).filter(|(d, _)| **d == Outcome::Admitted).filter_map(|(_, l)| *l).collect()
}

/// The simulated instances' busy fraction: Σ batch service / (duration × instances).
pub fn utilisation(out: &RunOutput, instances: u32) -> Option<f64> {
    let b = out.batches.as_ref()?;
    let busy: f64 = b.start_s.iter().zip(&b.end_s).map(|(a, e)| e - a).sum();
    let d = out.summary.duration_s * instances.max(1) as f64;
    (d > 0.0).then(|| busy / d)
}

/// The metrics of simulations `sims` (one, or one per replay for level 2: their mean is the
/// simulated value) against `replays`.
pub fn metrics(sims: &[&RunOutput], replays: &[&RunOutput]) -> BTreeMap<String, MetricStats> {
    let sim_values: Vec<Value> = sims.iter().map(|o| summary_value(o)).collect();
    let rep_values: Vec<Value> = replays.iter().map(|o| summary_value(o)).collect();
    let sim_lat: Vec<f64> = sims.iter().flat_map(|o| served_latencies(o)).collect();
    let rep_lat: Vec<f64> = replays.iter().flat_map(|o| served_latencies(o)).collect();
    let ks = ks_distance(&sim_lat, &rep_lat);
    METRICS
        .iter()
        .map(|&(name, ptr, latency)| {
            let sim: Vec<f64> = sim_values.iter().filter_map(|v| v.pointer(ptr).and_then(Value::as_f64)).collect();
            let sim = (!sim.is_empty()).then(|| sim.iter().sum::<f64>() / sim.len() as f64);
            let reps: Vec<Option<f64>> = rep_values.iter().map(|v| v.pointer(ptr).and_then(Value::as_f64)).collect();
            (name.to_string(), MetricStats::new(sim, &reps, if latency { ks } else { None }))
        })
        .collect()
}

/// Level 1's targets against `metrics`.
pub fn controlled_targets(metrics: &BTreeMap<String, MetricStats>) -> Targets {
    let mut per_metric = BTreeMap::new();
    let mut errors = Vec::new();
    for &(name, target) in CONTROLLED_TARGETS {
        let e = metrics.get(name).and_then(|m| m.rel_error).map(f64::abs);
        errors.extend(e);
        per_metric.insert(name.to_string(), (target, e, e.is_some_and(|e| e <= target)));
    }
    let mean_abs_error = (errors.len() == CONTROLLED_TARGETS.len()).then(|| errors.iter().sum::<f64>() / errors.len() as f64);
    let all_met = per_metric.values().all(|x| x.2) && mean_abs_error.is_some_and(|m| m <= CONTROLLED_MEAN_TARGET);
    Targets { per_metric, mean_abs_error, mean_target: CONTROLLED_MEAN_TARGET, all_met }
}

/// Whether a drift makes a comparison unreliable.
pub fn drift_unreliable(drift: Option<f64>) -> bool {
    drift.is_some_and(|d| d - 1.0 > probe::UNRELIABLE_DRIFT)
}

fn pct(x: Option<f64>) -> String {
    x.map_or("–".into(), |x| format!("{:+.2}%", x * 100.0))
}

fn num(x: Option<f64>) -> String {
    x.map_or("–".into(), |x| if x.abs() >= 100.0 { format!("{x:.1}") } else { format!("{x:.4}") })
}

fn yes(x: Option<bool>) -> &'static str {
    match x {
        Some(true) => "yes",
        Some(false) => "no",
        None => "–",
    }
}

/// `validation.md`: the tables of one validation.
pub fn markdown(v: &Validation) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "# Validation of `{}`: level {} ({} replays)\n", v.name, v.level.as_str(), v.repeats);
    let _ = writeln!(t, "{} · host `{}` · experiment `{}`\n", v.date, v.host, v.experiment);
    let _ = writeln!(t, "The simulation takes from the replays: {}.", v.taken_from_run);
    if !v.inputs.is_empty() {
        let _ = writeln!(t, "Inputs taken: `{}`.", serde_json::to_string(&v.inputs).unwrap_or_default());
    }
    let drift = v.host_drift.map_or("–".into(), |d| format!("{d:.3}"));
    let _ = writeln!(
        t,
        "\nHost drift (max/min of the speed probe's rolling median, worst replay): {drift}{}\n",
        if v.unreliable { " — **UNRELIABLE**: the host's speed changed during a replay; the errors below may be the host's" } else { "" }
    );
    if let Some(u) = v.sim_utilisation {
        let _ = writeln!(t, "Simulated utilisation: {:.0}%\n", u * 100.0);
    }
    t += "| metric | sim | replay mean | 95% band | CV | error | in band | TOST ±10% | TOST ±5% | KS |\n";
    t += "|---|---|---|---|---|---|---|---|---|---|\n";
    for &(name, _, _) in METRICS {
        let Some(m) = v.metrics.get(name) else { continue };
        let band = m.replay_ci95.map_or("–".into(), |[a, b]| format!("[{}, {}]", num(Some(a)), num(Some(b))));
        let _ = writeln!(
            t,
            "| {name} | {} | {} | {band} | {} | {} | {} | {} | {} | {} |",
            num(m.sim),
            num(m.replay_mean),
            m.replay_cv.map_or("–".into(), |c| format!("{:.1}%", c * 100.0)),
            pct(m.rel_error),
            yes(m.within_band),
            yes(m.tost_10),
            yes(m.tost_5),
            m.ks.map_or(String::new(), |k| format!("{k:.3}")),
        );
    }
    if let Some(tg) = &v.targets {
        t += "\nLevel-1 targets (|error|):\n\n| metric | target | error | met |\n|---|---|---|---|\n";
        for (name, (target, e, ok)) in &tg.per_metric {
            let _ = writeln!(
                t,
                "| {name} | {:.1}% | {} | {} |",
                target * 100.0,
                e.map_or("–".into(), |e| format!("{:.2}%", e * 100.0)),
                yes(Some(*ok))
            );
        }
        let _ = writeln!(
            t,
            "| average | {:.1}% | {} | {} |",
            tg.mean_target * 100.0,
            tg.mean_abs_error.map_or("–".into(), |e| format!("{:.2}%", e * 100.0)),
            yes(Some(tg.all_met))
        );
    }
    t += "\nReplays:\n\n| run | host drift | probe median µs | schedule err p99 ms | failed |\n|---|---|---|---|---|\n";
    for r in &v.replays {
        let _ = writeln!(
            t,
            "| {} | {} | {} | {:.3} | {} |",
            r.dir,
            r.host_drift.map_or("–".into(), |d| format!("{d:.3}")),
            r.median_probe_us.map_or("–".into(), |d| format!("{d:.0}")),
            r.schedule_error_p99_ms,
            r.failed
        );
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_with_a_clear_error() {
        assert_eq!("controlled".parse::<Level>(), Ok(Level::Controlled));
        let e = "fast".parse::<Level>().unwrap_err();
        assert!(e.contains("`fast`") && e.contains("controlled, conditioned, predicted"), "{e}");
    }

    #[test]
    fn controlled_targets_need_every_metric_and_the_average() {
        let m = |e: f64| MetricStats::new(Some(100.0 * (1.0 + e)), &[Some(100.0), Some(100.0), Some(100.0)], None);
        let mut all: BTreeMap<String, MetricStats> = BTreeMap::new();
        for (name, e) in [("latency_mean_ms", 0.01), ("latency_p99_ms", 0.02), ("mean_batch_size", 0.005), ("throughput_rps", 0.001)] {
            all.insert(name.into(), m(e));
        }
        let t = controlled_targets(&all);
        assert!(t.all_met && (t.mean_abs_error.unwrap() - 0.009).abs() < 1e-9);
        all.insert("latency_mean_ms".into(), m(0.03));
        assert!(!controlled_targets(&all).all_met);
        all.remove("throughput_rps");
        let t = controlled_targets(&all);
        assert!(!t.all_met && t.mean_abs_error.is_none());
    }

    #[test]
    fn the_latency_distribution_is_that_of_the_served_requests() {
        use crate::metrics::{RequestRecords, Summary, TimeSeries};
        let mut r = RequestRecords::default();
        for (decision, latency) in [
            (Outcome::Admitted, Some(3.0)),
            (Outcome::Skipped, Some(0.004)),
            (Outcome::Admitted, Some(4.0)),
            (Outcome::Rejected, None),
            (Outcome::Failed, Some(9.0)),
        ] {
            r.decision.push(decision);
            r.latency_ms.push(latency);
        }
        let out = RunOutput { summary: Summary::default(), timeseries: TimeSeries::default(), requests: Some(r), batches: None, events: 0 };
        assert_eq!(served_latencies(&out), vec![3.0, 4.0]);
    }
}
