//! `basin load-profile`: how a real server's service and transport times grow with load.
//!
//! For each rate, the experiment's own pipeline (the replay driver: gateway, early exit,
//! controller, client threads, the real server) runs an open-loop Poisson workload at that rate
//! for a fixed time, and the server's statistics are read before and after. From one rate come:
//!
//! * `rps`: requests that reached the server per second (the simulator's rate window counts
//!   the same thing);
//! * `measured_factor`: Σ_b n_b·s_b / Σ_b n_b·t_b, where n_b executions of batch size b took
//!   s_b on average (compute_input + compute_infer + compute_output, Triton's `batch_stats`) and
//!   t_b is the cost table's mean for b: how much slower execution is at this load than the
//!   table says, for the batch sizes that actually ran;
//! * `service_factor` (`--service fitted`, the default): the factor at which the simulator,
//!   on the identical arrivals, reproduces the server-side time Triton measured per request
//!   (queue + compute), found by bisection. It is larger than `measured_factor` where Triton's
//!   instance is occupied beyond its compute statistics (scheduling, the Python backend's
//!   hand-offs) so that requests queue longer than a batcher with the measured execution times
//!   would make them; putting that time into the instance's occupancy (rather than adding it
//!   as a delay) keeps its effect on queueing, batch sizes and tails. `--service measured`
//!   uses `measured_factor` instead;
//! * `overhead_ms`: the replay's mean latency of the server's requests − the simulator's mean
//!   latency for the identical arrivals at `service_factor` with no overhead: with the fitted
//!   factor this is the transport time (`transport_ms` = mean latency − early exit − Triton's
//!   queue and compute per request: HTTP, (de)serialisation, client threads, the driver);
//!
//! * `energy_factor`: (the replay's energy − the simulation's energy outside batches, i.e. idle
//!   and early exit) / the simulation's batch energy (cost table): what the whole pipeline
//!   really spends per batch at this rate relative to the isolated calibration rounds.
//!
//! The result is a [`crate::model::load::LoadProfile`] (`[[server]] load_profile`).

use super::measure::quantile_sorted;
use super::transport::ServerSnapshot;
use crate::metrics::RunOutput;
use crate::model::request::Outcome;

/// One rate's measurement and the profile point derived from it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct LoadRow {
    pub offered_rps: f64,
    pub rps: f64,
    pub service_factor: f64,
    pub measured_factor: f64,
    pub overhead_ms: f64,
    pub energy_factor: f64,
    pub transport_ms: f64,
    pub sim_latency_mean_ms: f64,
    pub sim_queue_ms: f64,
    pub requests: u64,
    pub executions: u64,
    pub mean_batch: f64,
    pub queue_ms: f64,
    pub compute_ms: f64,
    pub latency_mean_ms: f64,
    pub latency_p99_ms: f64,
    pub failed: u64,
    pub power_w: f64,
    /// The host speed probe's median kernel time during the pass (µs; NaN without a probe).
    pub host_probe_us: f64,
    #[serde(skip)]
    pub by_size: BySize,
}

/// Derives a [`LoadRow`] from the server's counters over the run (`stats`: after − before),
/// the replay's output and the cost table's mean execution time per batch size (`table_ms[b-1]`).
/// `sim`: the simulation of the identical arrivals at `factor` (the profile's service factor)
/// and no overhead.
#[allow(clippy::too_many_arguments)]
pub fn derive(
    offered_rps: f64,
    duration_s: f64,
    server: usize,
    stats: &ServerSnapshot,
    out: &RunOutput,
    sim: &RunOutput,
    factor: f64,
    table_ms: &[f64],
    early_exit_ms: f64,
) -> Result<LoadRow, String> {
    let (measured_factor, by_size) = service_factor(stats, table_ms)?;
    let rec = out.requests.as_ref().ok_or("the replay kept no per-request records (set [output] requests = true)")?;
    let mut lat: Vec<f64> = Vec::new();
    let mut failed = 0u64;
    for i in 0..rec.len() {
        if rec.path[i] != Some(server as u16) {
            continue;
        }
        match (rec.decision[i], rec.latency_ms[i]) {
            (Outcome::Admitted, Some(l)) => lat.push(l),
            (Outcome::Failed, _) => failed += 1,
            _ => {}
        }
    }
    if lat.is_empty() {
        return Err(format!("no request was answered by server {server} at {offered_rps} req/s"));
    }
    if stats.inference_count == 0 || stats.execution_count == 0 {
        return Err(format!("the server's statistics show no inference at {offered_rps} req/s (is it the server the experiment names?)"));
    }
    let n = stats.inference_count as f64;
    let queue_ms = stats.queue_ns as f64 / n / 1e6;
    let compute_ms = stats.compute_ns as f64 / n / 1e6;
    let mean = lat.iter().sum::<f64>() / lat.len() as f64;
    lat.sort_by(f64::total_cmp);
    let p99 = lat[((lat.len() as f64 * 0.99).ceil() as usize).clamp(1, lat.len()) - 1];
    let (sim_mean, sim_queue) = server_means(sim, server).ok_or("the simulation answered no request of the server (or kept no records)")?;
    let pue = sim.summary.energy.pue.max(1e-9);
    let sim_batches = sim.summary.energy.active_j;
    let sim_other = sim.summary.energy_j / pue - sim_batches;
    if sim_batches <= 0.0 {
        return Err("the simulation's batches have no energy (cost table energy_j = 0?)".into());
    }
    let energy_factor = ((out.summary.energy_j / pue - sim_other) / sim_batches).max(0.01);
    Ok(LoadRow {
        offered_rps,
        rps: lat.len() as f64 / duration_s,
        service_factor: factor,
        measured_factor,
        overhead_ms: (mean - sim_mean).max(0.0),
        energy_factor,
        transport_ms: (mean - early_exit_ms - queue_ms - compute_ms).max(0.0),
        sim_latency_mean_ms: sim_mean,
        sim_queue_ms: sim_queue,
        requests: stats.inference_count,
        executions: stats.execution_count,
        mean_batch: n / stats.execution_count as f64,
        queue_ms,
        compute_ms,
        latency_mean_ms: mean,
        latency_p99_ms: p99,
        failed,
        power_w: out.summary.energy_j / duration_s,
        host_probe_us: f64::NAN, // the replay's, set by the caller
        by_size,
    })
}

/// How a rate's profile point is taken from its passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Pick {
    /// The pass with the smallest service factor, whole: the pipeline at this host's own speed.
    /// Another tenant's slow spell is noise the replays' spread carries, not the load's effect;
    /// on this project's shared VM it made two passes of three at a rate up to 3× slower.
    Fastest,
    /// The median of the passes, field by field.
    Median,
}

impl Pick {
    pub fn describe(self) -> &'static str {
        match self {
            Pick::Fastest => "the pass with the smallest service factor",
            Pick::Median => "the median",
        }
    }

    /// The profile point of one rate from its passes (at least one).
    pub fn apply(self, rows: &[LoadRow]) -> LoadRow {
        match self {
            Pick::Fastest => rows.iter().min_by(|a, b| a.service_factor.total_cmp(&b.service_factor)).expect("a rate has passes").clone(),
            Pick::Median => median(rows),
        }
    }
}

/// The median of several passes' rows at one rate, field by field (counts summed; by-size rows
/// concatenated): one pass disturbed by other work on a shared host does not move the profile.
pub fn median(rows: &[LoadRow]) -> LoadRow {
    let m = |f: fn(&LoadRow) -> f64| {
        let mut v: Vec<f64> = rows.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        quantile_sorted(&v, 0.5)
    };
    LoadRow {
        offered_rps: m(|r| r.offered_rps),
        rps: m(|r| r.rps),
        service_factor: m(|r| r.service_factor),
        measured_factor: m(|r| r.measured_factor),
        overhead_ms: m(|r| r.overhead_ms),
        energy_factor: m(|r| r.energy_factor),
        transport_ms: m(|r| r.transport_ms),
        sim_latency_mean_ms: m(|r| r.sim_latency_mean_ms),
        sim_queue_ms: m(|r| r.sim_queue_ms),
        requests: rows.iter().map(|r| r.requests).sum(),
        executions: rows.iter().map(|r| r.executions).sum(),
        mean_batch: m(|r| r.mean_batch),
        queue_ms: m(|r| r.queue_ms),
        compute_ms: m(|r| r.compute_ms),
        latency_mean_ms: m(|r| r.latency_mean_ms),
        latency_p99_ms: m(|r| r.latency_p99_ms),
        failed: rows.iter().map(|r| r.failed).sum(),
        power_w: m(|r| r.power_w),
        host_probe_us: m(|r| r.host_probe_us),
        by_size: rows.iter().flat_map(|r| r.by_size.iter().copied()).collect(),
    }
}

/// Per batch size: (size, executions, mean service ms, cost table mean ms).
pub type BySize = Vec<(u64, u64, f64, f64)>;

/// Σ_b n_b·s_b / Σ_b n_b·t_b over the batch sizes that ran, and per size (b, n_b, s_b, t_b).
pub fn service_factor(stats: &ServerSnapshot, table_ms: &[f64]) -> Result<(f64, BySize), String> {
    let (mut measured, mut table) = (0.0, 0.0);
    let mut by_size = Vec::new();
    for &(b, n, ns) in &stats.batches {
        let t = *table_ms
            .get((b as usize).wrapping_sub(1))
            .ok_or_else(|| format!("batch size {b} ran, but the cost table covers 1..={}", table_ms.len()))?;
        let s = ns as f64 / n as f64 / 1e6;
        measured += n as f64 * s;
        table += n as f64 * t;
        by_size.push((b, n, s, t));
    }
    if table <= 0.0 {
        return Err("no execution ran, or the cost table's mean execution times are zero".into());
    }
    Ok((measured / table, by_size))
}

/// The factor f in [0.05, 20] at which `server_time(f)` (the simulated server-side time per
/// request, increasing in f) equals `target_ms`: bisection on log f, 40 steps.
pub fn fit_factor(target_ms: f64, mut server_time: impl FnMut(f64) -> f64) -> f64 {
    let (mut lo, mut hi) = (0.05f64, 20.0f64);
    if server_time(lo) >= target_ms {
        return lo;
    }
    if server_time(hi) <= target_ms {
        return hi;
    }
    for _ in 0..40 {
        let mid = (lo * hi).sqrt();
        if server_time(mid) < target_ms { lo = mid } else { hi = mid }
    }
    (lo * hi).sqrt()
}

/// The simulated server-side time per request (ms): mean latency of the server's requests
/// minus the early-exit stage (run the simulation without overhead).
pub fn sim_server_time(sim: &RunOutput, server: usize, early_exit_ms: f64) -> Option<f64> {
    server_means(sim, server).map(|(l, _)| l - early_exit_ms)
}

/// Least-squares `power = base + per_arrival × rate` over (rate, power) points, both ≥ 0: a
/// negative intercept is set to 0 and the slope refitted through the origin; one point gives
/// base 0. Returns (base W, J per arrival).
pub fn fit_power(pts: &[(f64, f64)]) -> (f64, f64) {
    let through_origin = || {
        let (xy, xx) = pts.iter().fold((0.0, 0.0), |(a, b), &(x, y)| (a + x * y, b + x * x));
        (0.0, if xx > 0.0 { (xy / xx).max(0.0) } else { 0.0 })
    };
    if pts.len() < 2 {
        return through_origin();
    }
    let n = pts.len() as f64;
    let (mx, my) = (pts.iter().map(|p| p.0).sum::<f64>() / n, pts.iter().map(|p| p.1).sum::<f64>() / n);
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx <= 0.0 {
        return through_origin();
    }
    let slope = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum::<f64>() / sxx;
    let base = my - slope * mx;
    if base < 0.0 || slope < 0.0 {
        if slope < 0.0 {
            return (my.max(0.0), 0.0);
        }
        return through_origin();
    }
    (base, slope)
}

/// Mean latency and mean queue wait (arrival → batch start, ms) of the requests `server`
/// answered.
fn server_means(out: &RunOutput, server: usize) -> Option<(f64, f64)> {
    let rec = out.requests.as_ref()?;
    let (mut n, mut lat, mut wait) = (0usize, 0.0, 0.0);
    for i in 0..rec.len() {
        if rec.path[i] == Some(server as u16)
            && rec.decision[i] == Outcome::Admitted
            && let (Some(l), Some(st)) = (rec.latency_ms[i], rec.start_s[i])
        {
            n += 1;
            lat += l;
            wait += (st - rec.arrival_s[i]) * 1e3;
        }
    }
    (n > 0).then(|| (lat / n as f64, wait / n as f64))
}

/// The profile CSV (`[[server]] load_profile` reads `rps, service_factor, overhead_ms`): plain,
/// header first; its provenance goes to the caller's manifest.
pub fn csv(rows: &[LoadRow]) -> String {
    let mut t = String::from(
        "rps,service_factor,overhead_ms,energy_factor,measured_factor,transport_ms,offered_rps,requests,executions,mean_batch,queue_ms,sim_queue_ms,compute_ms,latency_mean_ms,sim_latency_mean_ms,latency_p99_ms,failed,power_w,host_probe_us\n",
    );
    for r in rows {
        t.push_str(&format!(
            "{:.3},{:.5},{:.5},{:.5},{:.5},{:.5},{:.3},{},{},{:.4},{:.5},{:.5},{:.5},{:.5},{:.5},{:.5},{},{:.5},{:.1}\n",
            r.rps,
            r.service_factor,
            r.overhead_ms,
            r.energy_factor,
            r.measured_factor,
            r.transport_ms,
            r.offered_rps,
            r.requests,
            r.executions,
            r.mean_batch,
            r.queue_ms,
            r.sim_queue_ms,
            r.compute_ms,
            r.latency_mean_ms,
            r.sim_latency_mean_ms,
            r.latency_p99_ms,
            r.failed,
            r.power_w,
            r.host_probe_us
        ));
    }
    t
}

/// Per rate and batch size: executions, measured and table mean service time.
pub fn batches_csv(rows: &[LoadRow]) -> String {
    let mut t = String::from("rps,batch_size,executions,service_ms,table_ms,factor\n");
    for r in rows {
        for &(b, n, s, tb) in &r.by_size {
            t.push_str(&format!("{:.3},{b},{n},{s:.5},{tb:.5},{:.5}\n", r.rps, s / tb));
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_factor_weights_by_executions() {
        // 30 executions of b=1 at 2 ms (table 1 ms), 10 of b=4 at 6 ms (table 3 ms):
        // (30·2 + 10·6) / (30·1 + 10·3) = 120 / 60 = 2
        let stats = ServerSnapshot {
            inference_count: 70,
            execution_count: 40,
            queue_ns: 0,
            compute_ns: 0,
            batches: vec![(1, 30, 60_000_000), (4, 10, 60_000_000)],
        };
        let (f, by) = service_factor(&stats, &[1.0, 1.5, 2.0, 3.0]).unwrap();
        assert!((f - 2.0).abs() < 1e-12, "{f}");
        assert_eq!(by.len(), 2);
        assert!(service_factor(&stats, &[1.0]).unwrap_err().contains("batch size 4"));
        assert!(service_factor(&ServerSnapshot::default(), &[1.0]).is_err());
    }

    #[test]
    fn fit_power_is_least_squares_with_non_negative_terms() {
        let (b, e) = fit_power(&[(100.0, 1.5), (300.0, 2.5), (600.0, 4.0)]); // 1 W + 0.005 J × rate
        assert!((b - 1.0).abs() < 1e-9 && (e - 0.005).abs() < 1e-12, "{b} {e}");
        let (b, e) = fit_power(&[(100.0, 0.5), (200.0, 2.0)]); // negative intercept: through the origin
        assert_eq!(b, 0.0);
        assert!((e - (100.0 * 0.5 + 200.0 * 2.0) / (100.0f64.powi(2) + 200.0f64.powi(2))).abs() < 1e-12);
        assert_eq!(fit_power(&[(100.0, 1.0)]), (0.0, 0.01));
    }

    fn row(f: f64, o: f64) -> LoadRow {
        LoadRow {
            offered_rps: 100.0,
            rps: 99.0,
            service_factor: f,
            measured_factor: f,
            overhead_ms: o,
            energy_factor: 1.0,
            transport_ms: o,
            sim_latency_mean_ms: 5.0,
            sim_queue_ms: 2.0,
            requests: 10,
            executions: 5,
            mean_batch: 2.0,
            queue_ms: 2.0,
            compute_ms: 3.0,
            latency_mean_ms: 6.0,
            latency_p99_ms: 9.0,
            failed: 0,
            power_w: 10.0,
            host_probe_us: 300.0,
            by_size: vec![(1, 5, 3.0, 2.0)],
        }
    }

    #[test]
    fn median_per_field() {
        let a = median(&[row(1.2, 1.0), row(6.0, 50.0), row(1.4, 1.2)]);
        assert_eq!((a.service_factor, a.overhead_ms, a.requests, a.by_size.len()), (1.4, 1.2, 30, 3));
        assert_eq!(median(&[row(1.0, 1.0), row(2.0, 3.0)]).service_factor, 1.5);
    }

    #[test]
    fn fastest_pick_takes_one_pass_whole() {
        let pass = |f: f64, e: f64| LoadRow { service_factor: f, energy_factor: e, ..row(f, 1.0) };
        let passes = [pass(3.5, 1.5), pass(1.2, 1.02), pass(3.6, 1.4)];
        let p = Pick::Fastest.apply(&passes);
        assert_eq!((p.service_factor, p.energy_factor, p.requests), (1.2, 1.02, 10));
        assert_eq!(Pick::Median.apply(&passes).service_factor, 3.5);
    }

    #[test]
    fn fit_factor_inverts_a_monotone_response() {
        // server time = 2 ms + 3 ms × f: 8 ms at f = 2
        let f = fit_factor(8.0, |f| 2.0 + 3.0 * f);
        assert!((f - 2.0).abs() < 1e-6, "{f}");
        assert_eq!(fit_factor(0.0, |f| 2.0 + 3.0 * f), 0.05);
        assert_eq!(fit_factor(1e9, |f| 2.0 + 3.0 * f), 20.0);
    }
}
