//! The one-command GPU calibration on a host without a GPU: `scripts/calibrate-gpu.sh` stops at
//! once with "no NVIDIA GPU", its `--dry-run` prints the plan (naming the GPU when NVML answers,
//! here the fake library of tests/fake_nvml), `calibration/cal-gpu.toml` is a valid calibration,
//! and `basin calibrate` meters with NVML end to end through the fake library.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use basin::calibrate::config::{CalConfig, MeterKindName, ProviderName};

mod fake_nvml;

use fake_nvml::FakeNvml;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// This host has an NVIDIA driver: the "no GPU" expectations do not apply.
fn gpu_host() -> bool {
    Path::new("/proc/driver/nvidia").exists()
}

fn script(args: &[&str], nvml_lib: Option<&Path>) -> Output {
    let mut c = Command::new(repo().join("scripts/calibrate-gpu.sh"));
    c.args(args).env_remove("BASIN_NVML_LIB");
    if let Some(lib) = nvml_lib {
        c.env("BASIN_NVML_LIB", lib);
    }
    c.output().expect("run scripts/calibrate-gpu.sh")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn without_a_gpu_the_script_stops_at_once_saying_so() {
    if gpu_host() {
        return;
    }
    let t0 = Instant::now();
    let out = script(&["--budget-s", "300"], None);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.starts_with("calibrate-gpu: error: no NVIDIA GPU on this host: cannot load libnvidia-ml.so.1"), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(t0.elapsed() < Duration::from_secs(10), "took {:?}", t0.elapsed());
    // Nothing was set up or written.
    assert!(!stderr.contains("setup-ort"), "{stderr}");
}

#[test]
fn bad_arguments_are_clear_errors() {
    for (args, want) in [
        (&["--budget-s", "10"][..], "--budget-s must be a whole number of seconds >= 60 (got '10')"),
        (&["--out"][..], "--out needs a value"),
        (&["--frobnicate"][..], "unknown argument '--frobnicate'"),
    ] {
        let out = script(args, None);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(text(&out.stderr).contains(want), "{args:?}: {}", text(&out.stderr));
    }
}

#[test]
fn the_dry_run_prints_the_plan_and_runs_nothing() {
    let out = script(&["--dry-run"], None);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    if !gpu_host() {
        assert!(stdout.contains("GPU:        none found here (cannot load libnvidia-ml.so.1"), "{stdout}");
        assert!(stdout.contains("a real run stops at once with \"no NVIDIA GPU\""), "{stdout}");
    }
    for step in [
        "1. scripts/setup-ort.sh --gpu      onnxruntime-gpu 1.31.1 (CUDA 13)",
        "2. scripts/build-models.sh         resnet18 (N x 3 x 224 x 224), bert6 (N x 128 tokens)",
        "4. Triton rows:                    scripts/start-triton.sh --cuda",
        "5. basin calibrate ",
        "ONNX Runtime, CUDA execution provider (device 0), IoBinding; models: 6; batch sizes: [1, 2, 4, 8, 16, 32, 64]",
        "energy: NVML total-energy counter of GPU 0 (mJ), windows >= 0.25 s",
        "power polling only where the counter is missing (flagged in the meter name)",
        "6. basin simulate experiments/efficiency-boundary/batched.toml",
    ] {
        assert!(stdout.contains(step), "missing {step:?} in\n{stdout}");
    }
}

#[test]
fn the_dry_run_names_the_gpu_nvml_reports_and_trims_to_the_budget() {
    let fake = FakeNvml::new("driver 580.95.05\ndevice NVIDIA H200\nenergy 1\ndevice NVIDIA H200\nenergy 1\n");
    let out = script(&["--dry-run", "--budget-s", "900", "--no-triton"], Some(&fake.lib()));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("GPU:        NVIDIA H200 (driver 580.95.05, 2 GPU(s); GPU 0 is calibrated)"), "{stdout}");
    assert!(stdout.contains("/calibration/nvidia-h200-"), "{stdout}");
    assert!(stdout.contains("Triton rows:                    off (--no-triton)"), "{stdout}");
    // 42 points x (3 s warm-up cap + 4 s cap + 1 s) + idle fits 760 s: nothing to trim.
    assert!(stdout.contains("max_time_s 4.00, min_time_s 1.25, warmup_max_s 3.00 per point (nothing trimmed)"), "{stdout}");
    // The default 480 s with Triton (84 points) cannot hold that: repetitions are trimmed and said so.
    let out = script(&["--dry-run"], Some(&fake.lib()));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("max_time_s 4.00 -> 1.25; warmup_max_s 3.00 -> 1.50;"), "{stdout}");
}

#[test]
fn the_gpu_calibration_file_is_valid_and_says_what_it_measures() {
    let file = repo().join("calibration/cal-gpu.toml");
    let cfg = CalConfig::load(&file, &[]).unwrap();
    assert_eq!(cfg.batch_sizes, vec![1, 2, 4, 8, 16, 32, 64]);
    let ort = cfg.backends.onnxruntime.as_ref().unwrap();
    assert_eq!((ort.provider, ort.device), (ProviderName::Cuda, 0));
    assert_eq!(ort.library.as_deref(), Some("../.cache/onnxruntime-gpu/libonnxruntime.so"));
    assert_eq!(cfg.meter.kind, MeterKindName::Nvml);
    // NVML's counter updates about every 100 ms: windows of at least that, several per point.
    assert!(cfg.measure.window_s >= 0.1 && cfg.measure.min_time_s >= 3.0 * cfg.measure.window_s, "{:?}", cfg.measure);
    assert!(cfg.meter.idle_s >= 2.0);
    let models: Vec<&str> = cfg.models.keys().map(String::as_str).collect();
    assert_eq!(models, ["bert6", "digits_large", "digits_medium", "digits_small", "digits_tiny", "resnet18"]);
}

/// `basin calibrate` with `meter.kind = "nvml"` and the fake library as NVML (a GPU drawing a
/// constant 250 W): the cost table's energy is the counter's, named and not estimated, and the
/// manifest carries NVML's description of the GPU. The backend is ONNX Runtime on the CPU.
#[cfg(feature = "nvml")]
#[test]
fn basin_calibrate_meters_through_nvml_end_to_end() {
    let m = repo().join(".cache/models");
    let lib = std::env::var_os("BASIN_ORT_LIB").map(PathBuf::from).unwrap_or_else(|| repo().join(".cache/onnxruntime/libonnxruntime.so"));
    if !lib.is_file() || !m.join("digits_tiny.onnx").is_file() {
        assert!(std::env::var("BASIN_REQUIRE_HW").as_deref() != Ok("1"), "BASIN_REQUIRE_HW=1: ONNX Runtime or the models are missing");
        eprintln!("skipping: {} or {} missing (scripts/setup-ort.sh, scripts/build-models.sh)", lib.display(), m.display());
        return;
    }
    let fake = FakeNvml::new(
        "driver 580.95.05\ncuda 13000\ndevice NVIDIA H200\nenergy_rate 250000\nclocks 1755 1755 3201\nmax_clocks 1980 1980 3201\npower_limit 700000\nmemory 150754820096\n",
    );
    let dir = tempfile::tempdir().unwrap();
    let cal = dir.path().join("cal.toml");
    std::fs::write(
        &cal,
        format!(
            "batch_sizes = [1, 4]\n[models]\ndigits_tiny = \"{m}/digits_tiny.onnx\"\n\
             [backends.onnxruntime]\nlibrary = \"{lib}\"\n\
             [measure]\nmin_repetitions = 10\nmax_time_s = 0.6\nmin_time_s = 0.3\nwindow_s = 0.1\n\
             [meter]\nkind = \"nvml\"\nidle_s = 0.3\n",
            m = m.display(),
            lib = lib.display()
        ),
    )
    .unwrap();
    let out = dir.path().join("out");
    let run = Command::new(env!("CARGO_BIN_EXE_basin"))
        .args(["calibrate", cal.to_str().unwrap(), "--out", out.to_str().unwrap(), "--quiet"])
        .env("BASIN_NVML_LIB", fake.lib())
        .output()
        .unwrap();
    assert!(run.status.success(), "{}\n{}", text(&run.stdout), text(&run.stderr));
    assert!(!text(&run.stdout).contains("ESTIMATED"), "{}", text(&run.stdout));

    let cost = std::fs::read_to_string(out.join("cost.csv")).unwrap();
    assert!(cost.starts_with("model,"), "a plain CSV, header first: {cost}");
    let manifest = std::fs::read_to_string(out.join("manifest.toml")).unwrap();
    assert!(manifest.contains("; GPU 0: NVIDIA H200), "), "the table notes name the GPU: {manifest}");
    let mut rows = cost.lines();
    let header: Vec<&str> = rows.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let rows: Vec<Vec<&str>> = rows.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 2, "{cost}");
    for r in &rows {
        assert_eq!(r[col("meter")], "nvml:NVIDIA H200 (total energy counter)", "{cost}");
        assert_eq!(r[col("energy_estimated")], "false", "{cost}");
        // The fake GPU draws 250 W of the meter's own monotonic clock.
        let w: f64 = r[col("mean_power_w")].parse().unwrap();
        assert!((w - 250.0).abs() < 250.0 * 0.05, "mean power {w} W in {cost}");
    }
    let devices = std::fs::read_to_string(out.join("devices.csv")).unwrap();
    let idle: f64 = devices.lines().nth(1).unwrap().split(',').nth(1).unwrap().parse().unwrap();
    assert!((idle - 250.0).abs() < 250.0 * 0.05, "{devices}");

    let manifest: toml::Table = std::fs::read_to_string(out.join("manifest.toml")).unwrap().parse().unwrap();
    assert_eq!(manifest["runtime"]["onnxruntime_input_path"].as_str(), Some("io_binding"));
    let nvml = &manifest["host"]["nvml"];
    assert_eq!(nvml["driver_version"].as_str(), Some("580.95.05"));
    assert_eq!(nvml["cuda_driver_version"].as_str(), Some("13.0"));
    let gpu = &nvml["gpus"][0];
    assert_eq!(gpu["name"].as_str(), Some("NVIDIA H200"));
    assert_eq!(gpu["power_limit_w"].as_float(), Some(700.0));
    assert_eq!((gpu["sm_clock_mhz"].as_integer(), gpu["max_sm_clock_mhz"].as_integer()), (Some(1755), Some(1980)));
}
