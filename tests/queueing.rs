//! The simulator against queueing theory. Each check runs independent replications (different
//! seeds), compares the grand mean with the closed form, and also asserts that the tolerance
//! is at least three standard errors of that mean — so a pass is not luck.

mod common;
use common::*;

use basin::model::cost::LatencyDistribution;
use basin::model::server::ServerKind;
use basin::sim;

const REPS: u64 = 8;

/// Mean sojourn (ms) of each replication.
fn replicate(spec: &basin::spec::SimSpec) -> Vec<f64> {
    let base: u64 = std::env::var("BASIN_TEST_SEED_BASE").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    let seeds: Vec<u64> = (base + 1..=base + REPS).collect();
    std::thread::scope(|s| {
        let hs: Vec<_> = seeds.iter().map(|&seed| s.spawn(move || sim::run(spec, seed).summary.latency_ms.mean.unwrap())).collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn mean_se(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let m = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0);
    (m, (var / n).sqrt())
}

fn check(name: &str, got: &[f64], theory: f64, tol: f64) {
    let (m, se) = mean_se(got);
    let rel = (m - theory).abs() / theory;
    eprintln!("{name}: simulated {m:.5} theory {theory:.5} rel.err {:.4}% (SE {:.4}%)", rel * 100.0, se / theory * 100.0);
    assert!(3.0 * se / theory <= tol, "{name}: too few requests, 3 SE = {:.3}% > tolerance {:.1}%", 300.0 * se / theory, tol * 100.0);
    assert!(rel <= tol, "{name}: {m} vs theory {theory} ({:.3}% > {:.1}%)", rel * 100.0, tol * 100.0);
}

/// M/M/1 with μ = 1000/s: mean sojourn 1/(μ − λ).
fn mm1(rho: f64, seconds_per_rep: usize) {
    let mu = 1000.0;
    let lambda = rho * mu;
    let s = spec(
        poisson(lambda, seconds_per_rep),
        vec![server("s", ServerKind::Local, 1, 1, 0, Some(LatencyDistribution::Exponential), |_| (1.0, 0.01))],
        10.0,
    );
    check(&format!("M/M/1 rho={rho}"), &replicate(&s), 1e3 / (mu - lambda), 0.01);
}

#[test]
fn mm1_rho_05() {
    mm1(0.5, 400)
}

#[test]
fn mm1_rho_09() {
    mm1(0.9, 5_500)
}

/// M/D/1, service 1 ms, ρ = 0.8: Pollaczek–Khinchine mean wait ρ/(2μ(1−ρ)).
#[test]
fn md1_pollaczek_khinchine() {
    let (mu, rho) = (1000.0, 0.8);
    let s = spec(poisson(rho * mu, 1_500), vec![server("s", ServerKind::Local, 1, 1, 0, None, |_| (1.0, 0.01))], 10.0);
    let waits: Vec<f64> = replicate(&s).iter().map(|w| w - 1.0).collect();
    check("M/D/1 wait", &waits, 1e3 * rho / (2.0 * mu * (1.0 - rho)), 0.01);
}

/// Erlang C: probability of waiting in M/M/c with offered load a = λ/μ.
fn erlang_c(c: u32, a: f64) -> f64 {
    let mut sum = 0.0;
    let mut term = 1.0;
    for k in 0..c {
        if k > 0 {
            term *= a / k as f64;
        }
        sum += term;
    }
    let last = term * a / c as f64;
    let rho = a / c as f64;
    let top = last / (1.0 - rho);
    top / (sum + top)
}

/// M/M/4, μ = 1000/s per server, ρ = 0.8: mean wait C(c, a) / (cμ − λ).
#[test]
fn mmc_erlang_c() {
    let (mu, c, rho) = (1000.0, 4u32, 0.8);
    let lambda = rho * mu * c as f64;
    let s = spec(
        poisson(lambda, 1_200),
        vec![server("s", ServerKind::Local, c, 1, 0, Some(LatencyDistribution::Exponential), |_| (1.0, 0.01))],
        10.0,
    );
    let sojourn = replicate(&s);
    // wait = sojourn − service; the service mean of each replication is 1 ms in expectation,
    // so compare sojourn with Wq + 1/μ (the tolerance is on the wait, the harder quantity).
    let wq = 1e3 * erlang_c(c, lambda / mu) / (c as f64 * mu - lambda);
    let waits: Vec<f64> = sojourn.iter().map(|w| w - 1.0).collect();
    check("M/M/4 wait", &waits, wq, 0.02);
}

/// Little's law on the recorded time series: mean number in system = throughput × mean sojourn.
#[test]
fn littles_law_on_time_series() {
    let s = spec(
        poisson(700.0, 600),
        vec![server("s", ServerKind::Batched, 2, 8, 2_000, Some(LatencyDistribution::Exponential), |b| {
            (1.0 + 0.5 * b as f64, 0.1 * b as f64)
        })],
        10.0,
    );
    let out = sim::run(&s, 3);
    let ts = &out.timeseries;
    let dur = out.summary.duration_s;
    let mut l = 0.0;
    for i in 0..ts.len() {
        let len = if i + 1 == ts.len() { dur - ts.t_s[i] } else { 1.0 };
        l += (ts.queue_len[i] + ts.in_service[i]) * len;
    }
    l /= dur;
    let lambda = ts.completed.iter().sum::<u64>() as f64 / dur;
    let w = out.summary.latency_ms.mean.unwrap() / 1e3;
    let rel = (l - lambda * w).abs() / l;
    eprintln!("Little: L = {l:.5}, λW = {:.5}, rel {rel:.2e}", lambda * w);
    assert!(rel < 1e-6, "L = {l}, λW = {}", lambda * w);
}

/// The streaming percentiles (HDR histogram, 3 significant digits) against the exact
/// nearest-rank quantiles of every recorded latency.
#[test]
fn streaming_percentiles_are_within_a_thousandth() {
    let mut s = spec(
        poisson(900.0, 250),
        vec![server("s", ServerKind::Local, 1, 1, 0, Some(LatencyDistribution::Exponential), |_| (1.0, 0.01))],
        10.0,
    );
    s.record_requests = true;
    let out = sim::run(&s, 11);
    let mut lat: Vec<f64> = out.requests.unwrap().latency_ms.iter().flatten().copied().collect();
    lat.sort_by(f64::total_cmp);
    let l = &out.summary.latency_ms;
    for (q, got) in [(0.50, l.p50), (0.95, l.p95), (0.99, l.p99)] {
        let exact = lat[((q * lat.len() as f64).ceil() as usize).max(1) - 1];
        let rel = (got.unwrap() - exact).abs() / exact;
        eprintln!("p{}: streaming {:.6} ms, exact {exact:.6} ms, rel {rel:.2e}", q * 100.0, got.unwrap());
        assert!(rel <= 1e-3, "p{}: {} vs exact {exact}", q * 100.0, got.unwrap());
    }
    assert_eq!(l.max, lat.last().copied());
}

/// A load profile (model::load) with one point is a constant factor and overhead: an M/D/1
/// whose table says 0.5 ms with factor 1.6 is an M/D/1 with service 0.8 ms, plus the 0.7 ms
/// overhead on the way back. λ = 1000/s, ρ = 0.8: sojourn 0.8 + 1.6 (P–K wait) + 0.7 = 3.1 ms.
#[test]
fn md1_with_a_flat_load_profile() {
    use basin::core::SimDuration;
    use basin::model::load::{LoadPoint, LoadProfile};
    let mut srv = server("s", ServerKind::Local, 1, 1, 0, None, |_| (0.5, 0.01));
    srv.load = Some(
        LoadProfile::new(
            vec![LoadPoint { rps: 100.0, service_factor: 1.6, overhead_ms: 0.7, energy_factor: 1.0 }],
            SimDuration::from_micros(200_000),
        )
        .unwrap(),
    );
    let s = spec(poisson(1000.0, 1_500), vec![srv], 10.0);
    let (mu, rho) = (1250.0, 0.8);
    check("M/D/1 + flat load profile", &replicate(&s), 0.8 + 1e3 * rho / (2.0 * mu * (1.0 - rho)) + 0.7, 0.01);
}

/// The factor and overhead follow the rate the window sees: evenly spaced arrivals at 500/s
/// (window 100 ms → 50 arrivals → 500/s), profile 0 → (1.0, 0 ms) and 1000 → (2.0, 2 ms):
/// factor 1.5 and overhead 1 ms, so a 1 ms table service takes 1.5 ms (no queueing at 2 ms
/// spacing) and every request answers in 2.5 ms; each batch's energy is scaled by the energy
/// factor at that rate (2.0).
#[test]
fn load_profile_follows_the_windowed_rate() {
    use basin::core::SimDuration;
    use basin::model::arrivals::{ArrivalProcess, ArrivalSpec};
    use basin::model::load::{LoadPoint, LoadProfile};
    let mut srv = server("s", ServerKind::Local, 1, 1, 0, None, |_| (1.0, 0.01));
    srv.load = Some(
        LoadProfile::new(
            vec![
                LoadPoint { rps: 0.0, service_factor: 1.0, overhead_ms: 0.0, energy_factor: 1.0 },
                LoadPoint { rps: 1000.0, service_factor: 2.0, overhead_ms: 2.0, energy_factor: 3.0 },
            ],
            SimDuration::from_micros(100_000),
        )
        .unwrap(),
    );
    let s = spec(ArrivalSpec::Rate { rates_rps: vec![500.0; 20], process: ArrivalProcess::Uniform }, vec![srv], 0.0);
    let out = sim::run(&s, 1);
    let m = out.summary.latency_ms.mean.unwrap();
    // the first 100 ms see fewer than 50 arrivals in the window (lower rate): skip them by
    // bounding the mean from both sides instead of equality
    assert!((m - 2.5).abs() < 0.01 * 2.5, "mean latency {m} ms, expected 2.5 ms");
    let n = out.summary.completed as f64;
    let e = out.summary.energy.active_j / n;
    assert!((e - 0.02).abs() < 0.01 * 0.02, "energy per request {e} J, expected 0.01 × 2.0");
}

/// `basin bench speed` times the bursty ×100 batcher in process and, against SimPy, as
/// `basin simulate experiments/bench/bursty-x100.toml`: the file must be the same model.
#[test]
fn the_benchmark_experiment_file_is_the_in_process_batcher_case() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let loaded = basin::io::experiment::load(&root.join("experiments/bench/bursty-x100.toml"), &[], Some(1)).expect("loads");
    let rates = basin::io::traces::load_rate_csv(root.join("traces/twitter/bursty.csv")).expect("trace").rates_rps;
    let from_file = basin::sim::run(&loaded.spec, 1).summary;
    let in_process = basin::sim::run(&basin::cli::bench::bursty_spec(rates), 1).summary;
    assert!(from_file.requests > 1_000_000, "{}", from_file.requests);
    assert_eq!((from_file.requests, from_file.batches), (in_process.requests, in_process.batches));
    assert_eq!(from_file.latency_ms, in_process.latency_ms);
    assert_eq!(from_file.mean_batch_size, in_process.mean_batch_size);
    assert_eq!(from_file.energy_j, in_process.energy_j);
}
