//! Energy meters behind one trait, chosen automatically and named in every output.
//!
//! | kind | source | what it reports | `estimated` |
//! |---|---|---|---|
//! | `nvml` | NVIDIA driver through `nvml-wrapper` (feature `nvml`) | the GPU's total-energy counter (Volta and newer), else its power sampled on a background thread and integrated by trapezoids | no |
//! | `rapl` | Linux powercap, `/sys/class/powercap/intel-rapl:*/energy_uj` | package (+ DRAM) energy counters, wrap-around handled | no |
//! | `perf_log` | a recorded `perf stat -I … -e power/energy-pkg/,power/energy-ram/` log | the log's energy, replayed against the clock | no (a recording of a measurement) |
//! | `estimate` | process (or host) CPU time × a stated per-core power model ([`estimate`]) | a model, not a measurement | **yes**, always |
//! | `mock` | a deterministic sequence or a constant power | test double | as configured |
//!
//! [`MeterChoice::Auto`] picks NVML (feature `nvml` and a GPU present) > RAPL (a readable
//! powercap zone) > the CPU-time estimate. [`MeterInfo::name`] states which meter ran (and for
//! the estimate, its model) and [`MeterInfo::estimated`] must be carried into every table,
//! summary and figure built from its readings: an estimate is never presented as a
//! measurement. Idle power is measured (or estimated, and flagged) separately with
//! [`measure_idle_power`].
//!
//! Readings are cumulative joules since the meter was opened (counter wrap-around already
//! handled) stamped with monotonic time since open. The pure counter arithmetic (wraps, stalls,
//! summing domains) is in [`counter`] and is tested on recorded sequences; the I/O modules only
//! read raw values.
//!
//! Granularity: RAPL updates about every 1 ms, NVML's energy counter and power readings every
//! ~20–100 ms, the estimate's CPU time in 10 ms ticks. Measure windows much longer than that (or
//! many requests per window); the per-read cost is benchmarked in `benches/meters.rs`.

pub mod counter;
pub mod estimate;
pub mod mock;
#[cfg(feature = "nvml")]
pub mod nvml;
pub mod perf_log;
pub mod procset;
pub mod rapl;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use estimate::{CpuScope, EstimateConfig, EstimateMeter};
pub use mock::MockMeter;
pub use perf_log::PerfLogMeter;
pub use rapl::RaplMeter;

/// Which family of meter produced a reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MeterKind {
    Nvml,
    Rapl,
    PerfLog,
    Estimate,
    Mock,
    /// No meter: energy modelled from the cost table (`basin replay --virtual`).
    CostTable,
}

/// What a meter is, for labelling outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeterInfo {
    pub kind: MeterKind,
    /// Human-readable, names the source and (for estimates) the model, e.g.
    /// `rapl:package-0+dram`, `nvml:NVIDIA H100 (total energy counter)`,
    /// `estimate:process cpu-time x 42.5 W/core (CodeCarbon TDP/cores: generic 85 W TDP / 2 CPUs), idle not modelled`.
    pub name: String,
    /// True when the figures come from a model rather than a counter. Carry it everywhere.
    pub estimated: bool,
    /// The domains summed into `energy_j` (e.g. `package-0`, `dram`, `pkg`, `ram`, `gpu0`).
    pub domains: Vec<String>,
}

/// One reading: cumulative energy since the meter was opened.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EnergyReading {
    /// Joules since the meter was opened, wrap-around handled; never decreases.
    pub energy_j: f64,
    /// Monotonic time since the meter was opened (the meter's own clock: virtual for mocks
    /// and replays).
    pub at: Duration,
}

/// Health of a meter's counters, for warnings in run summaries. Never an error by itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeterHealth {
    /// A counter has not moved for longer than the stall threshold (it is still stalled).
    pub stalled: bool,
    /// How many distinct stalls were seen since open.
    pub stall_events: u32,
    /// Counter wrap-arounds handled since open.
    pub wraps: u32,
    /// Intervals with no data (`<not counted>` in a perf log) counted as zero energy.
    pub gaps: u32,
}

/// A source of cumulative energy readings.
pub trait EnergyMeter: Send {
    fn info(&self) -> &MeterInfo;
    fn read(&mut self) -> Result<EnergyReading, MeterError>;
    /// Counter health (stalls, wraps, gaps). Meters without counters report all clear.
    fn health(&self) -> MeterHealth {
        MeterHealth::default()
    }
}

impl<M: EnergyMeter + ?Sized> EnergyMeter for Box<M> {
    fn info(&self) -> &MeterInfo {
        (**self).info()
    }
    fn read(&mut self) -> Result<EnergyReading, MeterError> {
        (**self).read()
    }
    fn health(&self) -> MeterHealth {
        (**self).health()
    }
}

/// Everything that can go wrong opening or reading a meter.
#[derive(Debug, thiserror::Error)]
pub enum MeterError {
    #[error("NVML was requested but basin was built without the `nvml` feature (rebuild with `cargo build --features nvml`)")]
    NvmlNotCompiled,
    #[error("NVML is not available on this host ({detail})")]
    NvmlUnavailable { detail: String },
    #[error("NVML device {index} does not exist ({count} GPU(s) found)")]
    NvmlNoDevice { index: u32, count: u32 },
    #[error("NVML call {call} failed: {detail}")]
    Nvml { call: &'static str, detail: String },
    #[error("RAPL is not available: {reason} (root {root})")]
    RaplUnavailable { root: PathBuf, reason: String },
    #[error("{meter} counter disappeared: {path}: {reason}")]
    Disappeared { meter: &'static str, path: PathBuf, reason: String },
    #[error("{meter} counter went backwards without a known wrap range ({previous} -> {current}): the counter was reset")]
    CounterReset { meter: &'static str, previous: u64, current: u64 },
    #[error("{path}: cannot read: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}:{line}: {message}")]
    Parse { path: PathBuf, line: usize, message: String },
    #[error("{path}: the recorded log ends at {end_s:.3} s, asked for {at_s:.3} s")]
    LogEnded { path: PathBuf, end_s: f64, at_s: f64 },
    #[error("invalid counter sample: {0}")]
    InvalidSample(String),
    #[error("invalid meter configuration: {0}")]
    Config(String),
}

/// How to pick a meter. Deserialisable so run configs can name one.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MeterChoice {
    /// NVML (feature and GPU) > RAPL (readable powercap) > estimate.
    #[default]
    Auto,
    Nvml {
        #[serde(default)]
        device: u32,
    },
    Rapl {
        #[serde(default)]
        root: Option<PathBuf>,
    },
    Estimate {
        #[serde(default)]
        config: EstimateConfig,
    },
    PerfLog {
        path: PathBuf,
    },
}

/// A chosen meter plus why the better candidates were skipped (for `Auto`).
pub struct Selection {
    pub meter: Box<dyn EnergyMeter>,
    /// `(kind, reason)` for each candidate tried before the chosen one.
    pub skipped: Vec<(MeterKind, String)>,
}

impl std::fmt::Debug for Selection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Selection").field("meter", self.meter.info()).field("skipped", &self.skipped).finish()
    }
}

/// Open the meter `choice` names; `Auto` falls back silently (see [`open_explained`]).
pub fn open(choice: MeterChoice) -> Result<Box<dyn EnergyMeter>, MeterError> {
    open_explained(choice).map(|s| s.meter)
}

/// Open a meter and report which candidates `Auto` skipped and why.
pub fn open_explained(choice: MeterChoice) -> Result<Selection, MeterError> {
    let one = |meter: Box<dyn EnergyMeter>| Selection { meter, skipped: Vec::new() };
    match choice {
        MeterChoice::Nvml { device } => open_nvml(device).map(one),
        MeterChoice::Rapl { root } => Ok(one(Box::new(RaplMeter::open(root.unwrap_or_else(|| PathBuf::from(rapl::POWERCAP_ROOT)))?))),
        MeterChoice::Estimate { config } => Ok(one(Box::new(EstimateMeter::open(config)?))),
        MeterChoice::PerfLog { path } => Ok(one(Box::new(PerfLogMeter::open(&path)?))),
        MeterChoice::Auto => {
            let mut skipped = Vec::new();
            match open_nvml(0) {
                Ok(meter) => return Ok(Selection { meter, skipped }),
                Err(e) => skipped.push((MeterKind::Nvml, e.to_string())),
            }
            match RaplMeter::open(rapl::POWERCAP_ROOT) {
                Ok(m) => {
                    return Ok(Selection { meter: Box::new(m), skipped });
                }
                Err(e) => skipped.push((MeterKind::Rapl, e.to_string())),
            }
            let meter = Box::new(EstimateMeter::open(EstimateConfig::default())?);
            Ok(Selection { meter, skipped })
        }
    }
}

#[cfg(feature = "nvml")]
fn open_nvml(device: u32) -> Result<Box<dyn EnergyMeter>, MeterError> {
    Ok(Box::new(nvml::NvmlMeter::open(device)?))
}

#[cfg(not(feature = "nvml"))]
fn open_nvml(_device: u32) -> Result<Box<dyn EnergyMeter>, MeterError> {
    Err(MeterError::NvmlNotCompiled)
}

/// What NVML says about the host's GPUs, for calibration manifests.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NvmlSystem {
    pub library: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver_version: Option<String>,
    /// The CUDA version the driver supports, e.g. `13.0`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cuda_driver_version: Option<String>,
    pub gpus: Vec<GpuDescription>,
}

/// One GPU as NVML reports it at the time of the query; `None`: the query is not supported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GpuDescription {
    pub index: u32,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_total_gib: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub power_limit_w: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub graphics_clock_mhz: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sm_clock_mhz: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_clock_mhz: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_graphics_clock_mhz: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_sm_clock_mhz: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_memory_clock_mhz: Option<u32>,
}

/// What NVML reports about this host's GPUs (through [`nvml::library`]); an error says why
/// there is nothing to report (no driver, or basin built without the `nvml` feature).
pub fn describe_gpus() -> Result<NvmlSystem, MeterError> {
    #[cfg(feature = "nvml")]
    return nvml::describe(&nvml::library());
    #[cfg(not(feature = "nvml"))]
    Err(MeterError::NvmlNotCompiled)
}

/// The energy and time a closure took, as seen by one meter.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured<T> {
    pub value: T,
    pub energy_j: f64,
    /// Elapsed time on the meter's clock (between the two readings).
    pub elapsed: Duration,
    /// Wall-clock time around the closure (`Instant`), including the two reads.
    pub wall: Duration,
    pub estimated: bool,
    pub meter_name: String,
}

impl<T> Measured<T> {
    /// Mean power over the window; `None` when the meter's clock did not advance.
    pub fn mean_power_w(&self) -> Option<f64> {
        let s = self.elapsed.as_secs_f64();
        (s > 0.0).then(|| self.energy_j / s)
    }
}

/// Run `f` between two meter readings and report its energy and duration.
pub fn measure_window<M, T>(meter: &mut M, f: impl FnOnce() -> T) -> Result<Measured<T>, MeterError>
where
    M: EnergyMeter + ?Sized,
{
    let wall0 = Instant::now();
    let r0 = meter.read()?;
    let value = f();
    let r1 = meter.read()?;
    let wall = wall0.elapsed();
    let info = meter.info();
    Ok(Measured {
        value,
        energy_j: r1.energy_j - r0.energy_j,
        elapsed: r1.at.saturating_sub(r0.at),
        wall,
        estimated: info.estimated,
        meter_name: info.name.clone(),
    })
}

/// Idle power of the metered domains, measured (or, for an estimate meter, estimated and
/// flagged) over a quiet window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdlePower {
    pub watts: f64,
    pub estimated: bool,
    pub meter_name: String,
    /// Length of the window on the meter's clock.
    pub window_s: f64,
}

/// Read, sleep for `duration` doing nothing, read again: the mean power in between.
/// Call it with nothing else running on the metered device.
pub fn measure_idle_power<M>(meter: &mut M, duration: Duration) -> Result<IdlePower, MeterError>
where
    M: EnergyMeter + ?Sized,
{
    let m = measure_window(meter, || std::thread::sleep(duration))?;
    let watts = m.mean_power_w().ok_or_else(|| {
        MeterError::InvalidSample(format!("meter {} did not advance its clock over a {duration:?} idle window", m.meter_name))
    })?;
    Ok(IdlePower { watts, estimated: m.estimated, meter_name: m.meter_name, window_s: m.elapsed.as_secs_f64() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measure_window_uses_the_meters_clock_and_carries_the_label() {
        let mut m = MockMeter::replay(vec![(Duration::from_millis(0), 0.0), (Duration::from_millis(500), 40.0)]).estimated(true);
        let r = measure_window(&mut m, || 7).unwrap();
        assert_eq!(r.value, 7);
        assert_eq!(r.energy_j, 40.0);
        assert_eq!(r.elapsed, Duration::from_millis(500));
        assert_eq!(r.mean_power_w(), Some(80.0));
        assert!(r.estimated);
        assert!(r.meter_name.starts_with("mock"));
    }

    #[test]
    fn idle_power_from_a_constant_power_meter() {
        let mut m = MockMeter::constant_power(75.0, Duration::from_millis(250));
        let idle = measure_idle_power(&mut m, Duration::ZERO).unwrap();
        assert!((idle.watts - 75.0).abs() < 1e-9);
        assert!(!idle.estimated);
        assert_eq!(idle.window_s, 0.25);
    }

    #[test]
    fn idle_power_from_the_estimate_is_flagged_estimated() {
        let cfg = EstimateConfig { idle_w: 20.0, ..EstimateConfig::default() };
        let mut m = EstimateMeter::open(cfg).unwrap();
        let idle = measure_idle_power(&mut m, Duration::from_millis(30)).unwrap();
        assert!(idle.estimated);
        assert!(idle.meter_name.starts_with("estimate:"));
        // Sleeping uses (almost) no CPU: the estimate is the stated idle power plus at most
        // one 10 ms tick of CPU time charged at the per-core power over the window.
        assert!(idle.watts >= 20.0 - 1e-9, "{}", idle.watts);
    }

    #[test]
    fn a_meter_that_disappears_mid_window_is_an_error_not_a_number() {
        let mut m = MockMeter::replay(vec![(Duration::ZERO, 0.0)]);
        let err = measure_window(&mut m, || ()).unwrap_err();
        assert!(matches!(err, MeterError::Disappeared { .. }), "{err}");
    }

    #[cfg(not(feature = "nvml"))]
    #[test]
    fn nvml_without_the_feature_is_a_clear_error() {
        let err = open(MeterChoice::Nvml { device: 0 }).err().expect("must fail");
        assert!(err.to_string().contains("without the `nvml` feature"), "{err}");
    }

    #[cfg(feature = "nvml")]
    #[test]
    fn nvml_without_a_driver_is_a_clear_error() {
        // This test machine has no NVIDIA driver; on a GPU host NVML opens instead.
        if std::path::Path::new("/proc/driver/nvidia").exists() {
            return;
        }
        let err = open(MeterChoice::Nvml { device: 0 }).err().expect("must fail");
        assert!(matches!(err, MeterError::NvmlUnavailable { .. }), "{err}");
        assert!(err.to_string().starts_with("NVML is not available on this host"), "{err}");
    }

    #[test]
    fn auto_falls_back_and_names_what_it_skipped() {
        let sel = open_explained(MeterChoice::Auto).unwrap();
        let info = sel.meter.info().clone();
        // Whatever was chosen is named; anything better was skipped with a reason.
        assert!(!info.name.is_empty());
        match info.kind {
            MeterKind::Nvml => assert!(sel.skipped.is_empty()),
            MeterKind::Rapl => assert_eq!(sel.skipped.len(), 1),
            MeterKind::Estimate => {
                assert!(info.estimated);
                let kinds: Vec<_> = sel.skipped.iter().map(|(k, _)| *k).collect();
                assert_eq!(kinds, vec![MeterKind::Nvml, MeterKind::Rapl]);
                assert!(sel.skipped.iter().all(|(_, why)| !why.is_empty()));
            }
            k => panic!("auto never picks {k:?}"),
        }
    }

    #[test]
    fn meter_choice_round_trips_through_json() {
        let c = MeterChoice::Rapl { root: Some("/tmp/x".into()) };
        let s = serde_json::to_string(&c).unwrap();
        assert_eq!(s, r#"{"kind":"rapl","root":"/tmp/x"}"#);
        assert_eq!(serde_json::from_str::<MeterChoice>(&s).unwrap(), c);
        let auto: MeterChoice = serde_json::from_str(r#"{"kind":"auto"}"#).unwrap();
        assert_eq!(auto, MeterChoice::Auto);
        let info = MeterInfo { kind: MeterKind::PerfLog, name: "perf_log:x".into(), estimated: false, domains: vec!["pkg".into()] };
        assert!(serde_json::to_string(&info).unwrap().contains(r#""kind":"perf_log""#));
    }
}
