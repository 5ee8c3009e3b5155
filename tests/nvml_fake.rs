//! basin's NVML meter against a fake `libnvidia-ml.so` (tests/fake_nvml/fake_nvml.c, compiled
//! here with `cc`), loaded through `nvml-wrapper` exactly as the driver's library is: the
//! counter windows, a 2⁶⁴ wrap and a driver reset, a GPU without the energy counter (power
//! polled, flagged), several GPUs, a GPU lost mid-window, and NVML failing to initialise.
//! Every test builds its own library with its own script, so tests run in parallel.
#![cfg(feature = "nvml")]

use std::ffi::OsStr;
use std::time::Duration;

use basin::hw::meter::nvml::{self, NvmlMeter, NvmlSource};
use basin::hw::meter::{EnergyMeter, MeterError, measure_idle_power, measure_window};

mod fake_nvml;

use fake_nvml::FakeNvml;

fn open(fake: &FakeNvml, index: u32) -> Result<NvmlMeter, MeterError> {
    NvmlMeter::open_library(fake.lib().as_os_str(), index)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

#[test]
fn counter_windows_are_differences_of_the_energy_counter() {
    // The first value is read by open (the baseline), then one per read.
    let fake = FakeNvml::new("device NVIDIA H200\nenergy 5000 5000 5150 5150 5600\n");
    let mut m = open(&fake, 0).unwrap();
    assert_eq!(m.source(), NvmlSource::EnergyCounter);
    assert_eq!(m.info().name, "nvml:NVIDIA H200 (total energy counter)");
    assert!(!m.info().estimated);
    assert_eq!(m.info().domains, vec!["gpu0".to_string()]);

    let w = measure_window(&mut m, || std::thread::sleep(Duration::from_millis(5))).unwrap();
    assert!(close(w.energy_j, 0.150), "{}", w.energy_j);
    assert!(w.elapsed >= Duration::from_millis(5), "{:?}", w.elapsed);
    assert!(!w.estimated);
    assert_eq!(w.meter_name, "nvml:NVIDIA H200 (total energy counter)");

    // 450 mJ over a 100 ms idle window: 4.5 W on the meter's own clock.
    let idle = measure_idle_power(&mut m, Duration::from_millis(100)).unwrap();
    assert!(close(idle.watts * idle.window_s, 0.450), "{idle:?}");
    assert!(idle.window_s >= 0.1);
    let health = m.health();
    assert_eq!((health.wraps, health.stalled), (0, false));
}

#[test]
fn the_counter_wrapping_at_2_pow_64_is_counted_and_a_reset_is_an_error() {
    let top = u64::MAX - 99;
    let fake = FakeNvml::new(&format!("device NVIDIA H200\nenergy {top} 400 2\n"));
    let mut m = open(&fake, 0).unwrap();
    std::thread::sleep(Duration::from_millis(10));
    // 100 mJ to the top of the counter, then 400: 0.5 J (50 W over 10 ms is possible).
    let r = m.read().unwrap();
    assert!(close(r.energy_j, 0.5), "{}", r.energy_j);
    assert_eq!(m.health().wraps, 1);
    // 400 -> 2 would be ~1.8e16 J in a few ms: the driver was reloaded.
    let e = m.read().unwrap_err();
    assert!(matches!(e, MeterError::CounterReset { previous: 400, current: 2, .. }), "{e}");
    assert!(e.to_string().contains("the counter was reset"), "{e}");
}

#[test]
fn a_gpu_without_the_energy_counter_is_power_polled_and_flagged() {
    let fake = FakeNvml::new("device Tesla P100-PCIE-16GB\nno_energy\npower 150000\n");
    let mut m = open(&fake, 0).unwrap();
    assert_eq!(m.source(), NvmlSource::PowerPolling);
    assert_eq!(m.info().name, "nvml:Tesla P100-PCIE-16GB (no energy counter: power polled every 20 ms, trapezoid-integrated)");
    assert!(!m.info().estimated, "polled power is a measurement, named as such");
    std::thread::sleep(Duration::from_millis(200));
    let r = m.read().unwrap();
    // A constant 150 W integrates to exactly 150 W x the time of the last sample.
    assert!(r.at >= Duration::from_millis(100), "{:?}", r.at);
    assert!(close(r.energy_j, 150.0 * r.at.as_secs_f64()), "{} J at {:?}", r.energy_j, r.at);
}

#[test]
fn several_gpus_are_metered_separately_and_a_missing_index_is_named() {
    let fake = FakeNvml::new(
        "device NVIDIA H200\nenergy 1000 1100\n\
         device NVIDIA A100-SXM4-80GB\nenergy 70000 70250\n",
    );
    let mut gpu0 = open(&fake, 0).unwrap();
    let mut gpu1 = open(&fake, 1).unwrap();
    assert_eq!(gpu0.info().name, "nvml:NVIDIA H200 (total energy counter)");
    assert_eq!(gpu1.info().name, "nvml:NVIDIA A100-SXM4-80GB (total energy counter)");
    assert_eq!(gpu1.info().domains, vec!["gpu1".to_string()]);
    assert!(close(gpu0.read().unwrap().energy_j, 0.100));
    assert!(close(gpu1.read().unwrap().energy_j, 0.250));
    let e = open(&fake, 2).unwrap_err();
    assert!(matches!(e, MeterError::NvmlNoDevice { index: 2, count: 2 }), "{e}");
    assert_eq!(e.to_string(), "NVML device 2 does not exist (2 GPU(s) found)");
}

#[test]
fn a_gpu_lost_mid_window_is_an_error_not_a_number() {
    // Two successful energy reads (open and the window's first), then the GPU is gone.
    let fake = FakeNvml::new("device NVIDIA H200\nenergy 100 200 300\nlost_after 2\n");
    let mut m = open(&fake, 0).unwrap();
    let e = measure_window(&mut m, || ()).unwrap_err();
    assert!(matches!(e, MeterError::Disappeared { meter: "NVML", .. }), "{e}");
    assert!(e.to_string().starts_with("NVML counter disappeared: gpu0:"), "{e}");
}

#[test]
fn a_power_polled_gpu_lost_mid_run_is_an_error() {
    let fake = FakeNvml::new("device Tesla P100\nno_energy\npower 90000\nlost_after 3\n");
    let mut m = open(&fake, 0).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let e = m.read().unwrap_err();
    assert!(matches!(e, MeterError::Disappeared { meter: "NVML", .. }), "{e}");
}

#[test]
fn nvml_failing_to_initialise_is_a_clear_error() {
    // NVML_ERROR_DRIVER_NOT_LOADED
    let fake = FakeNvml::new("init 9\ndevice NVIDIA H200\n");
    let e = open(&fake, 0).unwrap_err();
    assert!(matches!(e, MeterError::NvmlUnavailable { .. }), "{e}");
    assert_eq!(e.to_string(), "NVML is not available on this host (the NVIDIA driver is not loaded)");
    // NVML_ERROR_NO_PERMISSION names the call.
    let fake = FakeNvml::new("init 4\n");
    let e = open(&fake, 0).unwrap_err();
    assert!(matches!(e, MeterError::Nvml { call: "nvmlInit_v2", .. }), "{e}");
    // A driver with no GPU attached.
    let fake = FakeNvml::new("driver 580.95.05\n");
    let e = open(&fake, 0).unwrap_err();
    assert!(matches!(e, MeterError::NvmlNoDevice { index: 0, count: 0 }), "{e}");
    // No library at all.
    let missing = fake.dir.path().join("absent/libnvidia-ml.so");
    let e = NvmlMeter::open_library(missing.as_os_str(), 0).unwrap_err();
    assert!(matches!(e, MeterError::NvmlUnavailable { .. }), "{e}");
    assert!(e.to_string().contains(&format!("cannot load {}", missing.display())), "{e}");
}

#[test]
fn describe_reports_driver_cuda_clocks_power_limit_and_memory() {
    let fake = FakeNvml::new(
        "driver 580.95.05\ncuda 13000\n\
         device NVIDIA H200\nclocks 1980 1980 3201\nmax_clocks 1980 1980 3201\npower_limit 700000\nmemory 150754820096\n\
         device NVIDIA T4\n",
    );
    let sys = nvml::describe(fake.lib().as_os_str()).unwrap();
    assert_eq!(sys.driver_version.as_deref(), Some("580.95.05"));
    assert_eq!(sys.cuda_driver_version.as_deref(), Some("13.0"));
    assert_eq!(sys.gpus.len(), 2);
    let h200 = &sys.gpus[0];
    assert_eq!((h200.index, h200.name.as_str()), (0, "NVIDIA H200"));
    assert_eq!(h200.power_limit_w, Some(700.0));
    assert_eq!((h200.graphics_clock_mhz, h200.sm_clock_mhz, h200.memory_clock_mhz), (Some(1980), Some(1980), Some(3201)));
    assert_eq!(h200.max_memory_clock_mhz, Some(3201));
    assert!((h200.memory_total_gib.unwrap() - 140.4).abs() < 0.05, "{:?}", h200.memory_total_gib);
    // What a GPU does not report stays unknown rather than zero.
    let t4 = &sys.gpus[1];
    assert_eq!((t4.power_limit_w, t4.sm_clock_mhz, t4.memory_total_gib), (None, None, None));
    let e = nvml::describe(OsStr::new("/nonexistent/libnvidia-ml.so")).unwrap_err();
    assert!(matches!(e, MeterError::NvmlUnavailable { .. }), "{e}");
}
