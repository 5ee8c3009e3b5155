//! What validation levels 1 and 2 take from the real run they are compared with, and the
//! simulation spec that takes it.
//!
//! - **Transport** (levels 1–2): per request, from Triton's trace ([`crate::validate::trace`]):
//!   arrival at the gateway → in the model's queue (the real gateway's own time before it sends
//!   included), and execution end → answer at the gateway; without a trace, per remote server
//!   the mean client round trip (arrival → answer) of its requests minus the mean time Triton
//!   says they spent inside it (queue + compute). It drifts with the host (HTTP
//!   and (de)serialisation on shared cores) and is heavy-tailed, so it is measured, not validated.
//! - **Executed batches** (level 2): from the model side of the server — Path A: the replay's
//!   own batch records (worker start to answer); Path B: the batch log Triton's models write
//!   (`scripts/triton_repo.py`: `size,start_ns,end_ns` on `CLOCK_MONOTONIC`, one file per model
//!   instance). The conditioned simulation gives each server's batches these execution times in
//!   execution order instead of the cost table's draws.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};

use crate::core::SimDuration;
use crate::hw::backend::stats::ServerSnapshot;
use crate::metrics::{BatchRecords, RequestRecords};
use crate::model::transport::{ObservedOverhead, ObservedTransport};
use crate::spec::SimSpec;

/// One batch a model executed (from its batch log).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExecutedBatch {
    pub size: u32,
    pub start_ns: u64,
    pub end_ns: u64,
}

/// Parses one batch log (`size,start_ns,end_ns`, header first).
pub fn parse_batch_log(text: &str, file: &Path) -> Result<Vec<ExecutedBatch>> {
    // a line still being written (no newline yet) is not read
    let complete = if text.ends_with('\n') { text } else { text.rsplit_once('\n').map_or("", |(done, _)| done) };
    let mut lines = complete.lines().enumerate();
    match lines.next() {
        Some((_, h)) if h.trim() == "size,start_ns,end_ns" => {}
        Some((_, h)) => bail!("{}: expected the header `size,start_ns,end_ns`, found `{h}`", file.display()),
        None => return Ok(Vec::new()),
    }
    let mut out = Vec::new();
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').collect();
        let parsed = match f.as_slice() {
            [s, a, b] => s.trim().parse().ok().zip(a.trim().parse().ok()).zip(b.trim().parse().ok()),
            _ => None,
        };
        match parsed {
            Some(((size, start_ns), end_ns)) if end_ns >= start_ns => out.push(ExecutedBatch { size, start_ns, end_ns }),
            _ => bail!("{} line {}: expected `size,start_ns,end_ns` with end ≥ start, found `{line}`", file.display(), i + 1),
        }
    }
    Ok(out)
}

/// Every batch `model` executed (all its instances' logs in `dir`), in start order.
pub fn read_batch_logs(dir: &Path, model: &str) -> Result<Vec<ExecutedBatch>> {
    let prefix = format!("{model}.");
    let mut all = Vec::new();
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading the batch logs in {}", dir.display()))?;
    for e in entries {
        let p = e?.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with(&prefix) && name.ends_with(".csv") {
            let text = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
            all.extend(parse_batch_log(&text, &p)?);
        }
    }
    all.sort_by_key(|b| (b.start_ns, b.end_ns));
    Ok(all)
}

/// The execution times of the batches that started in `[from_ns, to_ns)`.
pub fn durations_within(batches: &[ExecutedBatch], from_ns: u64, to_ns: u64) -> Vec<SimDuration> {
    batches
        .iter()
        .filter(|b| b.start_ns >= from_ns && b.start_ns < to_ns)
        .map(|b| SimDuration(b.end_ns.saturating_sub(b.start_ns)))
        .collect()
}

/// The execution times of local server `server`'s batches in a replay's batch records, in
/// start order.
pub fn recorded_durations(batches: &BatchRecords, server: u16) -> Vec<SimDuration> {
    let mut v: Vec<(f64, f64)> =
        (0..batches.len()).filter(|&i| batches.server[i] == server).map(|i| (batches.start_s[i], batches.end_s[i])).collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    v.into_iter().map(|(a, b)| SimDuration::from_secs_f64((b - a).max(0.0))).collect()
}

/// Mean transport of remote server `server` (ms): its requests' mean round trip (arrival → answered,
/// from the replay's request records) minus their mean time inside the server (its statistics).
pub fn transport_ms(requests: &RequestRecords, server: u16, stats: &ServerSnapshot) -> Option<f64> {
    let (mut n, mut sum) = (0usize, 0.0);
    for i in 0..requests.id.len() {
        if requests.path[i] == Some(server)
            && let Some(answered) = requests.end_s[i]
        {
            n += 1;
            sum += answered - requests.arrival_s[i];
        }
    }
    let inside = stats.mean_server_ms()?;
    (n > 0).then(|| (sum / n as f64 * 1e3 - inside).max(0.0))
}

/// The mean time Triton spends per execution outside the model's own `execute` (ms): its
/// statistics' compute per execution minus the model's logged execution time (the Python
/// backend's IPC between the server and the model's stub process).
pub fn execution_overhead_ms(stats: &ServerSnapshot, logged: &[SimDuration]) -> Option<f64> {
    let server = stats.mean_execution_ms()?;
    (!logged.is_empty()).then(|| server - logged.iter().map(|d| d.0 as f64).sum::<f64>() / logged.len() as f64 / 1e6)
}

/// What a level-1/2 simulation takes from the run, per server (`None`: nothing).
#[derive(Clone, Debug, Default)]
pub struct TakenFromRun {
    /// Mean transport per request (ms): replaces the server's `request_overhead`.
    pub transport_ms: Vec<Option<f64>>,
    /// Per-execution overhead outside the model (ms): added to every batch's service time.
    pub execution_overhead_ms: Vec<Option<f64>>,
    /// How late the real batcher starts a batch (ms, [`crate::validate::trace::dispatch_lag`]):
    /// added to the batching delay (the batch is formed when the scheduler wakes).
    pub dispatch_lag_ms: Vec<Option<f64>>,
    /// Observed execution times in execution order (level 2): replace the cost table's draws.
    pub observed: Vec<Option<Vec<SimDuration>>>,
    /// Each request's transport (from Triton's trace): replaces `transport_ms` where present.
    pub transport: Vec<Option<Arc<ObservedTransport>>>,
    /// Each traced batch's overhead outside the model (from Triton's trace and the batch log):
    /// replaces `execution_overhead_ms` where present.
    pub overhead: Vec<Option<Arc<ObservedOverhead>>>,
}

/// `spec` for a level-1/2 simulation: no load profiles (the service time comes by construction
/// or from the run) and what `taken` holds.
pub fn conditioned_spec(spec: &SimSpec, taken: &TakenFromRun) -> SimSpec {
    let mut s = spec.clone();
    for (i, srv) in s.servers.iter_mut().enumerate() {
        srv.load = None;
        if let Some(Some(t)) = taken.transport_ms.get(i) {
            srv.request_overhead = SimDuration::from_millis_f64(*t);
        }
        if let Some(Some(t)) = taken.transport.get(i) {
            srv.observed_transport = Some(t.clone());
        }
        let ms = |v: &Vec<Option<f64>>| v.get(i).copied().flatten().unwrap_or(0.0).max(0.0);
        let per_batch = taken.overhead.get(i).cloned().flatten();
        let mean_overhead = if per_batch.is_some() { 0.0 } else { ms(&taken.execution_overhead_ms) };
        srv.observed_overhead = per_batch;
        // Triton's scheduler forms the batch when it wakes, so requests that reach the queue in
        // the lag join it: the lag lengthens the batching delay, not the service
        srv.max_queue_delay = srv.max_queue_delay + SimDuration::from_millis_f64(ms(&taken.dispatch_lag_ms));
        let overhead = SimDuration::from_millis_f64(mean_overhead);
        match taken.observed.get(i) {
            Some(Some(o)) => srv.observed_service = Some(Arc::from(o.iter().map(|&d| SimDuration(d.0 + overhead.0)).collect::<Vec<_>>())),
            _ if overhead.0 > 0 => {
                for v in &mut srv.variants {
                    v.costs = v.costs.iter().map(|c| c.shifted(overhead)).collect();
                }
            }
            _ => {}
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_logs_parse_and_window() {
        let p = Path::new("m.0.csv");
        let text = "size,start_ns,end_ns\n2,100,350\n1,400,500\n3,900,9";
        // the last line has no newline yet (being written): not read
        let b = parse_batch_log(text, p).unwrap();
        assert_eq!(b, vec![ExecutedBatch { size: 2, start_ns: 100, end_ns: 350 }, ExecutedBatch { size: 1, start_ns: 400, end_ns: 500 }]);
        assert_eq!(durations_within(&b, 300, 1000), vec![SimDuration(100)]);
        assert!(parse_batch_log("size,start_ns,end_ns\nx,1,2\n1,2,3\n", p).unwrap_err().to_string().contains("line 2"));
        assert!(parse_batch_log("start,end\n", p).is_err());
        assert_eq!(parse_batch_log("", p).unwrap(), vec![]);
        assert!(parse_batch_log("size,start_ns,end_ns\n1,500,400\n", p).is_err());
    }

    #[test]
    fn transport_is_round_trip_from_the_arrival_minus_server_time() {
        let mut r = RequestRecords::default();
        for (path, arrival, end) in [(Some(0), 1.0, 1.010), (Some(0), 2.0, 2.012), (Some(1), 3.0, 3.5), (None, 4.0, 4.1)] {
            r.id.push(r.id.len() as u64);
            r.path.push(path);
            r.arrival_s.push(arrival);
            // handed to a client later: the gateway's own time is part of the round trip
            r.start_s.push(Some(arrival + 0.001));
            r.end_s.push(Some(end));
        }
        let stats = ServerSnapshot { inference_count: 2, queue_ns: 4_000_000, compute_ns: 12_000_000, ..ServerSnapshot::default() };
        // mean round trip 11 ms, mean server time 8 ms
        assert!((transport_ms(&r, 0, &stats).unwrap() - 3.0).abs() < 1e-9);
        assert_eq!(transport_ms(&r, 2, &stats), None);
    }
}
