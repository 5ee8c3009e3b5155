//! Cost of the harness's own instruments: one `read()` of each meter and one `Instant::now()`.
//!
//! The calibration harness reads the clock and a meter twice per measured window; the
//! acceptance criterion is that this overhead stays under 1 % of the smallest measured
//! latency. The bench prints, per instrument, the mean cost and the smallest window (two
//! reads) for which it is under 1 %. RAPL is read from a fake sysfs in tmpfs (`/dev/shm`
//! when present), so it measures the file reads, not the kernel's MSR access.

use std::fs;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use basin::hw::meter::{EnergyMeter, EstimateConfig, EstimateMeter, MockMeter, RaplMeter};
use criterion::{Criterion, criterion_group, criterion_main};

fn fake_sysfs() -> tempfile::TempDir {
    let dir = if Path::new("/dev/shm").is_dir() {
        tempfile::tempdir_in("/dev/shm").unwrap_or_else(|_| tempfile::tempdir().unwrap())
    } else {
        tempfile::tempdir().unwrap()
    };
    for (id, name, value) in [("intel-rapl:0", "package-0", 123_456_789u64), ("intel-rapl:0:0", "dram", 9_876_543)] {
        let z = dir.path().join(id);
        fs::create_dir(&z).unwrap();
        fs::write(z.join("name"), format!("{name}\n")).unwrap();
        fs::write(z.join("max_energy_range_uj"), "262143328850\n").unwrap();
        fs::write(z.join("energy_uj"), format!("{value}\n")).unwrap();
    }
    dir
}

/// Mean seconds per call of `f` over a fixed number of calls (for the printed summary).
fn mean_cost(mut f: impl FnMut()) -> Duration {
    for _ in 0..1_000 {
        f();
    }
    let n = 20_000u32;
    let t0 = Instant::now();
    for _ in 0..n {
        f();
    }
    t0.elapsed() / n
}

fn bench(c: &mut Criterion) {
    let sysfs = fake_sysfs();
    let mut rapl = RaplMeter::open(sysfs.path()).expect("fake sysfs");
    let mut estimate = EstimateMeter::open(EstimateConfig::default()).expect("procfs");
    let mut mock = MockMeter::constant_power(75.0, Duration::from_millis(1));

    let mut g = c.benchmark_group("meter_read");
    g.bench_function("instant_now", |b| b.iter(|| black_box(Instant::now())));
    g.bench_function("mock", |b| b.iter(|| black_box(mock.read().unwrap())));
    g.bench_function("rapl_fake_sysfs", |b| b.iter(|| black_box(rapl.read().unwrap())));
    g.bench_function("estimate_proc_self_stat", |b| b.iter(|| black_box(estimate.read().unwrap())));
    g.finish();

    let rows = [
        (
            "Instant::now()",
            mean_cost(|| {
                black_box(Instant::now());
            }),
        ),
        (
            "mock read",
            mean_cost(|| {
                black_box(mock.read().unwrap());
            }),
        ),
        (
            "rapl read (fake sysfs, 2 zones)",
            mean_cost(|| {
                black_box(rapl.read().unwrap());
            }),
        ),
        (
            "estimate read (/proc/self/stat)",
            mean_cost(|| {
                black_box(estimate.read().unwrap());
            }),
        ),
    ];
    println!("\nharness overhead per window = 2 x (clock + meter read); < 1 % needs a window of at least:");
    let clock = rows[0].1;
    for (name, cost) in rows {
        let per_window = if name.starts_with("Instant") { 2 * cost } else { 2 * (cost + clock) };
        println!(
            "  {name:<34} {:>9.1} ns/read   -> window >= {:>9.1} us",
            cost.as_secs_f64() * 1e9,
            per_window.as_secs_f64() * 1e6 * 100.0
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
