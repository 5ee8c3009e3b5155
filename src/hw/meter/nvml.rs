//! NVIDIA GPU energy through NVML (`nvml-wrapper` 0.13, feature `nvml`).
//!
//! * Volta and newer: `nvmlDeviceGetTotalEnergyConsumption`, a millijoule counter since the
//!   driver was loaded. It does not wrap in practice (64 bits), so a decrease means the driver
//!   was reloaded and is reported as [`MeterError::CounterReset`]. It is flagged stalled when
//!   it does not move for [`NVML_STALL_AFTER`] (it updates every few tens of milliseconds).
//! * Older GPUs (the call returns `NotSupported`): `nvmlDeviceGetPowerUsage` (milliwatts,
//!   itself an average over the driver's own window) is sampled every [`SAMPLE_PERIOD`] on a
//!   background thread and integrated by trapezoids, `E += (P_prev + P_now) / 2 × Δt`. Energy
//!   is then known up to the last sample; a reading's `at` is that sample's time.
//!
//! NVML is loaded at run time: without a driver `Nvml::init()` fails with
//! `NvmlError::LibloadingError` (in ~0.2 ms), mapped to [`MeterError::NvmlUnavailable`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nvml_wrapper::Nvml;
use nvml_wrapper::error::NvmlError;

use super::counter::{CounterDomain, CounterTracker};
use super::{EnergyMeter, EnergyReading, MeterError, MeterHealth, MeterInfo, MeterKind};

/// Power sampling period for GPUs without an energy counter.
pub const SAMPLE_PERIOD: Duration = Duration::from_millis(20);
/// Stall threshold for the energy counter.
pub const NVML_STALL_AFTER: Duration = Duration::from_secs(1);

/// Map an NVML error from `call` to a meter error.
fn nvml_err(call: &'static str, e: NvmlError) -> MeterError {
    match e {
        NvmlError::LibloadingError(e) => MeterError::NvmlUnavailable {
            detail: format!("no NVIDIA driver: libnvidia-ml.so not found: {e}"),
        },
        NvmlError::DriverNotLoaded => MeterError::NvmlUnavailable {
            detail: "the NVIDIA driver is not loaded".into(),
        },
        NvmlError::FailedToLoadSymbol(s) => MeterError::NvmlUnavailable {
            detail: format!("libnvidia-ml is too old (missing {s})"),
        },
        other => MeterError::Nvml {
            call,
            detail: other.to_string(),
        },
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

enum Mode {
    Counter {
        tracker: CounterTracker,
    },
    Sampling {
        shared: Arc<Mutex<Integrator>>,
        stop: Arc<AtomicBool>,
        thread: Option<JoinHandle<()>>,
    },
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
        f.debug_struct("NvmlMeter")
            .field("info", &self.info)
            .field("index", &self.index)
            .finish()
    }
}

impl NvmlMeter {
    pub fn open(index: u32) -> Result<Self, MeterError> {
        let nvml = Arc::new(Nvml::init().map_err(|e| nvml_err("nvmlInit", e))?);
        let count = nvml
            .device_count()
            .map_err(|e| nvml_err("nvmlDeviceGetCount", e))?;
        if index >= count {
            return Err(MeterError::NvmlNoDevice { index, count });
        }
        let device = nvml
            .device_by_index(index)
            .map_err(|e| nvml_err("nvmlDeviceGetHandleByIndex", e))?;
        let gpu = device.name().unwrap_or_else(|_| format!("GPU {index}"));
        let opened = Instant::now();
        let domain = format!("gpu{index}");
        let (mode, how) = match device.total_energy_consumption() {
            Ok(mj) => {
                let mut tracker = CounterTracker::new(
                    "NVML",
                    vec![CounterDomain {
                        name: domain.clone(),
                        max_range_uj: None,
                    }],
                    NVML_STALL_AFTER,
                );
                tracker.update(Duration::ZERO, &[mj.saturating_mul(1000)])?;
                (Mode::Counter { tracker }, "total energy counter".to_owned())
            }
            Err(NvmlError::NotSupported) => {
                let mw = device
                    .power_usage()
                    .map_err(|e| nvml_err("nvmlDeviceGetPowerUsage", e))?;
                let shared = Arc::new(Mutex::new(Integrator::default()));
                shared
                    .lock()
                    .unwrap()
                    .add(Duration::ZERO, f64::from(mw) / 1000.0);
                let stop = Arc::new(AtomicBool::new(false));
                let thread =
                    spawn_sampler(nvml.clone(), index, opened, shared.clone(), stop.clone());
                let how = format!(
                    "power sampled every {} ms, trapezoid-integrated",
                    SAMPLE_PERIOD.as_millis()
                );
                (
                    Mode::Sampling {
                        shared,
                        stop,
                        thread: Some(thread),
                    },
                    how,
                )
            }
            Err(e) => return Err(nvml_err("nvmlDeviceGetTotalEnergyConsumption", e)),
        };
        let info = MeterInfo {
            kind: MeterKind::Nvml,
            name: format!("nvml:{gpu} ({how})"),
            estimated: false,
            domains: vec![domain],
        };
        Ok(Self {
            info,
            nvml,
            index,
            mode,
            opened,
        })
    }
}

fn spawn_sampler(
    nvml: Arc<Nvml>,
    index: u32,
    opened: Instant,
    shared: Arc<Mutex<Integrator>>,
    stop: Arc<AtomicBool>,
) -> JoinHandle<()> {
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
        let gone = |reason: String| MeterError::Disappeared {
            meter: "NVML",
            path: format!("gpu{}", self.index).into(),
            reason,
        };
        match &mut self.mode {
            Mode::Counter { tracker } => {
                let at = self.opened.elapsed();
                let mj = self
                    .nvml
                    .device_by_index(self.index)
                    .and_then(|d| d.total_energy_consumption())
                    .map_err(|e| gone(e.to_string()))?;
                tracker.update(at, &[mj.saturating_mul(1000)])?;
                Ok(EnergyReading {
                    energy_j: tracker.energy_j(),
                    at,
                })
            }
            Mode::Sampling { shared, .. } => {
                let s = shared.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(e) = &s.error {
                    return Err(gone(e.clone()));
                }
                let at = s.last.map_or(Duration::ZERO, |l| l.0);
                Ok(EnergyReading {
                    energy_j: s.energy_j,
                    at,
                })
            }
        }
    }

    fn health(&self) -> MeterHealth {
        match &self.mode {
            Mode::Counter { tracker } => tracker.health(),
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
    fn no_driver_is_a_clear_error() {
        if std::path::Path::new("/proc/driver/nvidia").exists() {
            return; // a GPU host: NVML may open
        }
        let e = NvmlMeter::open(0).unwrap_err();
        assert!(matches!(e, MeterError::NvmlUnavailable { .. }), "{e}");
        assert!(e.to_string().contains("libnvidia-ml.so not found"), "{e}");
    }
}
