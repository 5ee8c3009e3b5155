//! NVIDIA GPU energy through NVML (`nvml-wrapper` 0.13, feature `nvml`).
//!
//! * Volta and newer: `nvmlDeviceGetTotalEnergyConsumption`, a 64-bit millijoule counter since
//!   the driver was loaded, updated about every 100 ms (measure windows of at least that).
//!   [`MillijouleCounter`] turns its samples into energy since open: a step backwards is a
//!   wrap modulo 2⁶⁴ when the forward distance is physically possible in the time elapsed
//!   (at most [`MAX_PLAUSIBLE_POWER_W`]), else a driver reload, reported as
//!   [`MeterError::CounterReset`]. The counter is flagged stalled when it does not move for
//!   [`NVML_STALL_AFTER`].
//! * Older GPUs (the call returns `NotSupported`): `nvmlDeviceGetPowerUsage` (milliwatts,
//!   itself an average over the driver's own window) is polled every [`SAMPLE_PERIOD`] on a
//!   background thread and integrated by trapezoids, `E += (P_prev + P_now) / 2 × Δt`. Energy
//!   is then known up to the last sample; a reading's `at` is that sample's time. The meter's
//!   name says so (`… (no energy counter: power polled …)`), and so does every table that
//!   carries it; [`NvmlMeter::source`] tells the two apart in code.
//!
//! A GPU that stops answering (fallen off the bus, driver unloaded) makes the next read a
//! [`MeterError::Disappeared`], so a window across it is an error, never a number.
//!
//! NVML is loaded at run time from [`library`] (`BASIN_NVML_LIB`, else the driver's
//! `libnvidia-ml.so.1`); without a driver the load fails in ~0.2 ms, mapped to
//! [`MeterError::NvmlUnavailable`]. The tests load a fake library built from
//! `tests/fake_nvml/fake_nvml.c` through the same path.

use std::ffi::{OsStr, OsString};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nvml_wrapper::Nvml;
use nvml_wrapper::enum_wrappers::device::Clock;
use nvml_wrapper::error::NvmlError;
use serde::Serialize;

use super::counter::{CounterDomain, CounterTracker};
use super::{EnergyMeter, EnergyReading, GpuDescription, MeterError, MeterHealth, MeterInfo, MeterKind, NvmlSystem};

/// Power sampling period for GPUs without an energy counter.
pub const SAMPLE_PERIOD: Duration = Duration::from_millis(20);
/// Stall threshold for the energy counter.
pub const NVML_STALL_AFTER: Duration = Duration::from_secs(1);
/// A backwards step of the energy counter is read as a 2⁶⁴ wrap only when the energy it implies
/// is below this power × the time since the previous read; no single GPU draws 10 kW.
pub const MAX_PLAUSIBLE_POWER_W: f64 = 10_000.0;
/// Environment variable naming the NVML library to load instead of the driver's.
pub const LIBRARY_ENV: &str = "BASIN_NVML_LIB";
/// The library the NVIDIA driver installs (its soname; the unversioned name needs the dev package).
pub const DEFAULT_LIBRARY: &str = "libnvidia-ml.so.1";

/// The NVML library to load: `BASIN_NVML_LIB`, else [`DEFAULT_LIBRARY`].
pub fn library() -> OsString {
    std::env::var_os(LIBRARY_ENV).unwrap_or_else(|| DEFAULT_LIBRARY.into())
}

/// Map an NVML error from `call` to a meter error.
fn nvml_err(call: &'static str, e: NvmlError) -> MeterError {
    match e {
        NvmlError::LibloadingError(e) => {
            MeterError::NvmlUnavailable { detail: format!("no NVIDIA driver: the NVML library could not be loaded: {e}") }
        }
        NvmlError::DriverNotLoaded => MeterError::NvmlUnavailable { detail: "the NVIDIA driver is not loaded".into() },
        NvmlError::FailedToLoadSymbol(s) => MeterError::NvmlUnavailable { detail: format!("libnvidia-ml is too old (missing {s})") },
        other => MeterError::Nvml { call, detail: other.to_string() },
    }
}

/// Load and initialise NVML from `lib`.
fn init(lib: &OsStr) -> Result<Nvml, MeterError> {
    Nvml::builder().lib_path(lib).init().map_err(|e| match e {
        NvmlError::LibloadingError(e) => {
            MeterError::NvmlUnavailable { detail: format!("no NVIDIA driver: cannot load {}: {e}", lib.to_string_lossy()) }
        }
        other => nvml_err("nvmlInit_v2", other),
    })
}

/// Energy since the first sample from NVML's 64-bit millijoule counter (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct MillijouleCounter {
    last: Option<(Duration, u64)>,
    total_mj: u128,
    wraps: u32,
}

impl MillijouleCounter {
    /// Feed the counter's value `mj` read at `at`. On error nothing changes.
    pub fn update(&mut self, at: Duration, mj: u64) -> Result<(), MeterError> {
        let delta = match self.last {
            None => 0,
            Some((_, prev)) if mj >= prev => mj - prev,
            Some((prev_at, prev)) => {
                let forward = mj.wrapping_sub(prev);
                let possible_mj = MAX_PLAUSIBLE_POWER_W * at.saturating_sub(prev_at).as_secs_f64() * 1e3;
                if forward as f64 > possible_mj {
                    return Err(MeterError::CounterReset { meter: "NVML", previous: prev, current: mj });
                }
                self.wraps += 1;
                forward
            }
        };
        self.total_mj += u128::from(delta);
        self.last = Some((at, mj));
        Ok(())
    }

    /// Millijoules since the first sample.
    pub fn total_mj(&self) -> u128 {
        self.total_mj
    }

    /// 2⁶⁴ wraps seen.
    pub fn wraps(&self) -> u32 {
        self.wraps
    }
}

#[derive(Debug, Default)]
struct Integrator {
    energy_j: f64,
    last: Option<(Duration, f64)>,
    error: Option<String>,
}

impl Integrator {
    fn add(&mut self, at: Duration, watts: f64) {
        if let Some((t0, p0)) = self.last {
            self.energy_j += 0.5 * (p0 + watts) * at.saturating_sub(t0).as_secs_f64();
        }
        self.last = Some((at, watts));
    }
}

/// Where an [`NvmlMeter`]'s energy comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NvmlSource {
    /// `nvmlDeviceGetTotalEnergyConsumption` (Volta and newer).
    EnergyCounter,
    /// `nvmlDeviceGetPowerUsage` polled and integrated: the GPU has no energy counter.
    PowerPolling,
}

enum Mode {
    Counter { counter: MillijouleCounter, tracker: CounterTracker },
    Sampling { shared: Arc<Mutex<Integrator>>, stop: Arc<AtomicBool>, thread: Option<JoinHandle<()>> },
}

/// One GPU's energy meter. See the module docs.
pub struct NvmlMeter {
    info: MeterInfo,
    nvml: Arc<Nvml>,
    index: u32,
    mode: Mode,
    opened: Instant,
}

impl std::fmt::Debug for NvmlMeter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NvmlMeter").field("info", &self.info).field("index", &self.index).finish()
    }
}

impl NvmlMeter {
    /// GPU `index` through the NVML library of [`library`].
    pub fn open(index: u32) -> Result<Self, MeterError> {
        Self::open_library(&library(), index)
    }

    /// GPU `index` through the NVML library at `lib` (a path, or a name the loader searches).
    pub fn open_library(lib: &OsStr, index: u32) -> Result<Self, MeterError> {
        let nvml = Arc::new(init(lib)?);
        let count = nvml.device_count().map_err(|e| nvml_err("nvmlDeviceGetCount_v2", e))?;
        if index >= count {
            return Err(MeterError::NvmlNoDevice { index, count });
        }
        let device = nvml.device_by_index(index).map_err(|e| nvml_err("nvmlDeviceGetHandleByIndex_v2", e))?;
        let gpu = device.name().unwrap_or_else(|_| format!("GPU {index}"));
        let opened = Instant::now();
        let domain = format!("gpu{index}");
        let (mode, how) = match device.total_energy_consumption() {
            Ok(mj) => {
                let mut counter = MillijouleCounter::default();
                counter.update(Duration::ZERO, mj)?;
                let mut tracker =
                    CounterTracker::new("NVML", vec![CounterDomain { name: domain.clone(), max_range_uj: None }], NVML_STALL_AFTER);
                tracker.update(Duration::ZERO, &[0])?;
                (Mode::Counter { counter, tracker }, "total energy counter".to_owned())
            }
            Err(NvmlError::NotSupported) => {
                let mw = device.power_usage().map_err(|e| nvml_err("nvmlDeviceGetPowerUsage", e))?;
                let shared = Arc::new(Mutex::new(Integrator::default()));
                shared.lock().unwrap_or_else(|p| p.into_inner()).add(Duration::ZERO, f64::from(mw) / 1000.0);
                let stop = Arc::new(AtomicBool::new(false));
                let thread = spawn_sampler(nvml.clone(), index, opened, shared.clone(), stop.clone());
                let how = format!("no energy counter: power polled every {} ms, trapezoid-integrated", SAMPLE_PERIOD.as_millis());
                (Mode::Sampling { shared, stop, thread: Some(thread) }, how)
            }
            Err(e) => return Err(nvml_err("nvmlDeviceGetTotalEnergyConsumption", e)),
        };
        let info = MeterInfo { kind: MeterKind::Nvml, name: format!("nvml:{gpu} ({how})"), estimated: false, domains: vec![domain] };
        Ok(Self { info, nvml, index, mode, opened })
    }

    /// Whether the energy is the GPU's counter or integrated power.
    pub fn source(&self) -> NvmlSource {
        match self.mode {
            Mode::Counter { .. } => NvmlSource::EnergyCounter,
            Mode::Sampling { .. } => NvmlSource::PowerPolling,
        }
    }
}

fn spawn_sampler(nvml: Arc<Nvml>, index: u32, opened: Instant, shared: Arc<Mutex<Integrator>>, stop: Arc<AtomicBool>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(SAMPLE_PERIOD);
            let sample = nvml.device_by_index(index).and_then(|d| d.power_usage());
            let at = opened.elapsed();
            let mut s = shared.lock().unwrap_or_else(|p| p.into_inner());
            match sample {
                Ok(mw) => s.add(at, f64::from(mw) / 1000.0),
                Err(e) => {
                    s.error = Some(e.to_string());
                    return;
                }
            }
        }
    })
}

impl EnergyMeter for NvmlMeter {
    fn info(&self) -> &MeterInfo {
        &self.info
    }

    fn read(&mut self) -> Result<EnergyReading, MeterError> {
        let gone = |reason: String| MeterError::Disappeared { meter: "NVML", path: format!("gpu{}", self.index).into(), reason };
        match &mut self.mode {
            Mode::Counter { counter, tracker } => {
                let at = self.opened.elapsed();
                let mj =
                    self.nvml.device_by_index(self.index).and_then(|d| d.total_energy_consumption()).map_err(|e| gone(e.to_string()))?;
                let mut next = counter.clone();
                next.update(at, mj)?;
                let uj = u64::try_from(next.total_mj() * 1000).unwrap_or(u64::MAX);
                tracker.update(at, &[uj])?;
                *counter = next;
                Ok(EnergyReading { energy_j: counter.total_mj() as f64 * 1e-3, at })
            }
            Mode::Sampling { shared, .. } => {
                let s = shared.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(e) = &s.error {
                    return Err(gone(e.clone()));
                }
                let at = s.last.map_or(Duration::ZERO, |l| l.0);
                Ok(EnergyReading { energy_j: s.energy_j, at })
            }
        }
    }

    fn health(&self) -> MeterHealth {
        match &self.mode {
            Mode::Counter { counter, tracker } => MeterHealth { wraps: counter.wraps(), ..tracker.health() },
            Mode::Sampling { .. } => MeterHealth::default(),
        }
    }
}

impl Drop for NvmlMeter {
    fn drop(&mut self) {
        if let Mode::Sampling { stop, thread, .. } = &mut self.mode {
            stop.store(true, Ordering::Relaxed);
            if let Some(t) = thread.take() {
                let _ = t.join();
            }
        }
    }
}

/// Driver, CUDA and per-GPU facts (clocks, power limit, memory) through the NVML library at `lib`.
pub fn describe(lib: &OsStr) -> Result<NvmlSystem, MeterError> {
    let nvml = init(lib)?;
    let count = nvml.device_count().map_err(|e| nvml_err("nvmlDeviceGetCount_v2", e))?;
    let mut gpus = Vec::new();
    for index in 0..count {
        let d = nvml.device_by_index(index).map_err(|e| nvml_err("nvmlDeviceGetHandleByIndex_v2", e))?;
        gpus.push(GpuDescription {
            index,
            name: d.name().map_err(|e| nvml_err("nvmlDeviceGetName", e))?,
            memory_total_gib: d.memory_info().ok().map(|m| m.total as f64 / f64::from(1u32 << 30)),
            power_limit_w: d.enforced_power_limit().ok().map(|mw| f64::from(mw) / 1e3),
            graphics_clock_mhz: d.clock_info(Clock::Graphics).ok(),
            sm_clock_mhz: d.clock_info(Clock::SM).ok(),
            memory_clock_mhz: d.clock_info(Clock::Memory).ok(),
            max_graphics_clock_mhz: d.max_clock_info(Clock::Graphics).ok(),
            max_sm_clock_mhz: d.max_clock_info(Clock::SM).ok(),
            max_memory_clock_mhz: d.max_clock_info(Clock::Memory).ok(),
        });
    }
    Ok(NvmlSystem {
        library: lib.to_string_lossy().into_owned(),
        driver_version: nvml.sys_driver_version().ok(),
        cuda_driver_version: nvml.sys_cuda_driver_version().ok().map(|v| format!("{}.{}", v / 1000, v % 1000 / 10)),
        gpus,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trapezoids_integrate_power_samples() {
        let mut i = Integrator::default();
        i.add(Duration::ZERO, 100.0);
        i.add(Duration::from_millis(500), 200.0);
        i.add(Duration::from_millis(1500), 200.0);
        assert!((i.energy_j - (75.0 + 200.0)).abs() < 1e-9);
    }

    #[test]
    fn the_millijoule_counter_wraps_at_2_pow_64_only_when_physically_possible() {
        let ms = Duration::from_millis;
        let mut c = MillijouleCounter::default();
        c.update(ms(0), u64::MAX - 499).unwrap();
        // 500 mJ to the top, then 300 more: 800 mJ in 100 ms (8 W).
        c.update(ms(100), 300).unwrap();
        assert_eq!((c.total_mj(), c.wraps()), (800, 1));
        c.update(ms(200), 1300).unwrap();
        assert_eq!(c.total_mj(), 1800);
        // A step back whose forward distance would be ~1.8e16 J: a driver reload, and the
        // counter keeps its state.
        let e = c.update(ms(300), 5).unwrap_err();
        assert!(matches!(e, MeterError::CounterReset { previous: 1300, current: 5, .. }), "{e}");
        assert_eq!((c.total_mj(), c.wraps()), (1800, 1));
    }

    #[test]
    fn no_driver_is_a_clear_error() {
        if std::path::Path::new("/proc/driver/nvidia").exists() {
            return; // a GPU host: NVML may open
        }
        let e = NvmlMeter::open_library(OsStr::new(DEFAULT_LIBRARY), 0).unwrap_err();
        assert!(matches!(e, MeterError::NvmlUnavailable { .. }), "{e}");
        assert!(e.to_string().contains("cannot load libnvidia-ml.so.1"), "{e}");
    }
}
