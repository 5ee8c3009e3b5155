//! Triton's per-request trace (`tritonserver --trace-config level=TIMESTAMPS`, which
//! `scripts/start-triton.sh --trace-file FILE` turns on for every request): when each request
//! entered the model's queue and when its batch's execution ended, on `CLOCK_MONOTONIC` (Triton
//! stamps with `steady_clock`), keyed by the KServe `id` the replay's clients send (the
//! gateway's request id). Levels 1–2 take each request's transport from it.
//!
//! Triton keeps traces in memory and writes them to `FILE.<n>` whenever `log_frequency` traces
//! have gathered (never, with 0, until it exits); [`flush`] lowers the frequency to 1 for a
//! moment, which writes what it holds into the next file.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Deserialize;
use serde_json::json;

use crate::core::{SimDuration, SimTime};
#[cfg(feature = "triton")]
use crate::hw::backend::triton::TritonClient;
use crate::metrics::RequestRecords;
use crate::model::transport::{ObservedOverhead, ObservedTransport, Transport};
use crate::validate::conditioned::ExecutedBatch;

/// One traced request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TracedRequest {
    pub request_id: u64,
    pub queue_start_ns: u64,
    pub compute_start_ns: u64,
    pub compute_end_ns: u64,
}

#[derive(Deserialize)]
struct Entry {
    id: u64,
    #[serde(default)]
    request_id: Option<String>,
    #[serde(default)]
    timestamps: Vec<Stamp>,
}

#[derive(Deserialize)]
struct Stamp {
    name: String,
    ns: u64,
}

#[derive(Default)]
struct Partial {
    request_id: Option<u64>,
    queue_start: Option<u64>,
    compute_start: Option<u64>,
    compute_end: Option<u64>,
}

/// The requests in one trace file's text (a JSON array of entries, each naming its trace `id`).
/// Traces without a numeric `request_id` or without all three stamps are skipped.
pub fn parse_trace(text: &str, file: &Path) -> Result<Vec<TracedRequest>> {
    let entries: Vec<Entry> = serde_json::from_str(text).with_context(|| format!("{}: not a Triton trace file", file.display()))?;
    let mut by_trace: HashMap<u64, Partial> = HashMap::new();
    for e in entries {
        let p = by_trace.entry(e.id).or_default();
        if let Some(r) = e.request_id {
            p.request_id = r.parse().ok();
        }
        for s in e.timestamps {
            match s.name.as_str() {
                "QUEUE_START" => p.queue_start = Some(s.ns),
                "COMPUTE_START" => p.compute_start = Some(s.ns),
                "COMPUTE_END" => p.compute_end = Some(s.ns),
                _ => {}
            }
        }
    }
    let mut out: Vec<TracedRequest> = by_trace
        .into_values()
        .filter_map(|p| {
            Some(TracedRequest {
                request_id: p.request_id?,
                queue_start_ns: p.queue_start?,
                compute_start_ns: p.compute_start?,
                compute_end_ns: p.compute_end?,
            })
        })
        .collect();
    out.sort_by_key(|t| (t.queue_start_ns, t.request_id));
    Ok(out)
}

#[cfg(feature = "triton")]
/// Makes the Triton at `client` write the traces it holds (see the module doc).
pub fn flush(client: &TritonClient) -> Result<()> {
    let before = client.update_trace_setting(&json!({}))?;
    let Some(freq) = before.get("log_frequency").and_then(|v| v.as_str()).map(str::to_string) else {
        anyhow::bail!("Triton at {} reports no trace log_frequency: is tracing on (start-triton.sh --trace-file)?", client.base_url());
    };
    if freq == "0" {
        anyhow::bail!(
            "Triton at {} streams its trace into one file (log_frequency 0), which is complete only once it exits: start it with a log frequency above 0 (start-triton.sh --trace-file does)",
            client.base_url()
        );
    }
    client.update_trace_setting(&json!({"log_frequency": "1"}))?;
    client.update_trace_setting(&json!({"log_frequency": freq}))?;
    Ok(())
}

/// Every request in the trace files `stem.<n>` in `dir`, which are removed once read (each
/// flush writes a new file).
pub fn take_traces(dir: &Path, stem: &str) -> Result<Vec<TracedRequest>> {
    let prefix = format!("{stem}.");
    let mut all = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("reading Triton's traces in {}", dir.display()))? {
        let p = e?.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.strip_prefix(&prefix).is_some_and(|n| n.parse::<u64>().is_ok()) {
            let text = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
            all.extend(parse_trace(&text, &p)?);
            std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
        }
    }
    all.sort_by_key(|t| (t.queue_start_ns, t.request_id));
    Ok(all)
}

/// Each traced request's transport to and from remote server `server`, against the replay's
/// request records (times relative to the replay's start, `t0_ns` on `CLOCK_MONOTONIC`): its
/// arrival at the gateway (`arrival_s`) → queue start, and execution end → answered (`end_s`).
/// The way in counts from the arrival, not from the hand-off to a client thread: the real
/// gateway's own time before it sends (the replay loop's lateness, the early-exit model's real
/// run, the decision, waking a client thread) is part of the client's round trip too, and the
/// simulated gateway spends only the cost table's early-exit time there.
pub fn observed_transport(traced: &[TracedRequest], requests: &RequestRecords, server: u16, t0_ns: u64) -> Option<ObservedTransport> {
    let by_id: HashMap<u64, &TracedRequest> = traced.iter().map(|t| (t.request_id, t)).collect();
    let mono = |s: f64| t0_ns.saturating_add((s * 1e9).round() as u64);
    let pairs = (0..requests.id.len()).filter_map(|i| {
        if requests.path[i] != Some(server) {
            return None;
        }
        let t = by_id.get(&requests.id[i])?;
        let (arrived, answered) = (mono(requests.arrival_s[i]), mono(requests.end_s[i]?));
        Some((
            requests.id[i],
            Transport {
                to_server: SimDuration(t.queue_start_ns.saturating_sub(arrived)),
                from_server: SimDuration(answered.saturating_sub(t.compute_end_ns)),
            },
        ))
    });
    ObservedTransport::new(pairs.collect::<Vec<_>>())
}

/// How late Triton's batcher starts a batch after its rule allows it (Triton's scheduler thread
/// waking, forming the batch and handing it to the instance): the median, over the traced
/// requests of remote server `server` that waited at least the batching delay but less than
/// [`LAG_WINDOW`] more, of their wait beyond the delay. The simulated batcher starts a batch the
/// moment its rule fires.
pub fn dispatch_lag(traced: &[TracedRequest], requests: &RequestRecords, server: u16, max_queue_delay: SimDuration) -> Option<SimDuration> {
    let ids = sent_to(requests, server);
    let mut late: Vec<u64> = traced
        .iter()
        .filter(|t| ids.contains(&t.request_id))
        .map(|t| t.compute_start_ns.saturating_sub(t.queue_start_ns))
        .filter(|&wait| wait >= max_queue_delay.0 && wait < max_queue_delay.0 + LAG_WINDOW.0)
        .map(|wait| wait - max_queue_delay.0)
        .collect();
    if late.is_empty() {
        return None;
    }
    late.sort_unstable();
    Some(SimDuration(late[late.len() / 2]))
}

/// Each traced batch's time outside the model on remote server `server`: Triton's execution
/// span (compute start → end, which the batch's requests share) minus the model's logged
/// execution that started within it (`log`, in start order, on the same `CLOCK_MONOTONIC`),
/// keyed by the batch's start relative to the replay's (`t0_ns`). A span without a logged
/// execution inside it is left out.
pub fn observed_overhead(
    traced: &[TracedRequest],
    requests: &RequestRecords,
    server: u16,
    log: &[ExecutedBatch],
    t0_ns: u64,
) -> Option<ObservedOverhead> {
    let ids = sent_to(requests, server);
    let mut spans: Vec<(u64, u64)> =
        traced.iter().filter(|t| ids.contains(&t.request_id)).map(|t| (t.compute_start_ns, t.compute_end_ns)).collect();
    spans.sort_unstable();
    spans.dedup();
    let observed = spans.into_iter().filter_map(|(start, end)| {
        let b = log.get(log.partition_point(|b| b.start_ns < start))?;
        (b.start_ns <= end && start >= t0_ns)
            .then(|| (SimTime(start - t0_ns), SimDuration((end - start).saturating_sub(b.end_ns - b.start_ns))))
    });
    ObservedOverhead::new(observed.collect())
}

/// The ids of the requests the replay sent to server `server`.
fn sent_to(requests: &RequestRecords, server: u16) -> std::collections::HashSet<u64> {
    (0..requests.id.len()).filter(|&i| requests.path[i] == Some(server)).map(|i| requests.id[i]).collect()
}

/// Waits longer than the delay plus this are a busy instance's queue, not the batcher's lag.
pub const LAG_WINDOW: SimDuration = SimDuration(1_000_000);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trace_gives_each_request_its_queue_and_compute_stamps() {
        let text = r#"[
            {"id":1,"timestamps":[{"name":"HTTP_RECV_START","ns":100}]},
            {"id":1,"model_name":"m","model_version":1,"request_id":"7"},
            {"id":1,"timestamps":[{"name":"QUEUE_START","ns":200}]},
            {"id":2,"model_name":"m","model_version":1,"request_id":"8"},
            {"id":2,"timestamps":[{"name":"QUEUE_START","ns":210}]},
            {"id":1,"timestamps":[{"name":"COMPUTE_START","ns":300}]},
            {"id":1,"timestamps":[{"name":"COMPUTE_END","ns":900}]},
            {"id":3,"model_name":"m","request_id":"a name"},
            {"id":3,"timestamps":[{"name":"QUEUE_START","ns":1},{"name":"COMPUTE_START","ns":2},{"name":"COMPUTE_END","ns":3}]}
        ]"#;
        let t = parse_trace(text, Path::new("t.json.0")).unwrap();
        // trace 2 never finished computing, trace 3 names no gateway request: both skipped
        assert_eq!(t, vec![TracedRequest { request_id: 7, queue_start_ns: 200, compute_start_ns: 300, compute_end_ns: 900 }]);
        assert!(parse_trace("{", Path::new("t.json.0")).unwrap_err().to_string().contains("t.json.0"));
    }

    #[test]
    fn transport_runs_from_the_arrival_to_the_queue_and_from_the_execution_to_the_answer() {
        let mut r = RequestRecords::default();
        for (id, path, start, end) in [(7u64, Some(0u16), 0.001, 0.004), (8, Some(1), 0.002, 0.003), (9, Some(0), 0.005, 0.006)] {
            r.id.push(id);
            r.path.push(path);
            // handed to a client 0.2 ms after its arrival: the gateway's own time counts too
            r.arrival_s.push(start - 0.0002);
            r.start_s.push(Some(start));
            r.end_s.push(Some(end));
        }
        let t0 = 1_000_000_000;
        let traced = [TracedRequest {
            request_id: 7,
            queue_start_ns: t0 + 1_300_000,
            compute_start_ns: t0 + 2_000_000,
            compute_end_ns: t0 + 3_500_000,
        }];
        let o = observed_transport(&traced, &r, 0, t0).unwrap();
        let t = o.of(7);
        assert_eq!((t.to_server, t.from_server), (SimDuration(500_000), SimDuration(500_000)));
        // request 9 went to server 0 but was not traced; request 8 went elsewhere
        assert_eq!(o.observed(), 1);
        assert!(observed_transport(&traced, &r, 1, t0).is_none());
    }

    #[test]
    fn a_traced_batch_overhead_is_its_span_minus_the_logged_execution_inside_it() {
        let mut r = RequestRecords::default();
        for (id, path) in [(1u64, Some(0u16)), (2, Some(0)), (3, Some(0)), (4, Some(1))] {
            r.id.push(id);
            r.path.push(path);
        }
        let t0 = 1_000;
        let span =
            |id, start, end| TracedRequest { request_id: id, queue_start_ns: start - 50, compute_start_ns: start, compute_end_ns: end };
        // 1 and 2 shared a batch (one span), 3 ran alone; 4 was on another server; the span at
        // 9000 has no logged execution inside it
        let traced = [span(1, 2_000, 2_900), span(2, 2_000, 2_900), span(3, 5_000, 5_400), span(4, 7_000, 7_500), span(3, 9_000, 9_100)];
        let ran = |start_ns, end_ns| ExecutedBatch { size: 1, start_ns, end_ns };
        let log = [ran(1_500, 1_600), ran(2_100, 2_700), ran(5_050, 5_350), ran(7_100, 7_200), ran(9_500, 9_600)];
        let o = observed_overhead(&traced, &r, 0, &log, t0).unwrap();
        assert_eq!(o.observed(), 2);
        assert_eq!((o.at(SimTime(1_000)), o.at(SimTime(4_000))), (SimDuration(300), SimDuration(100)));
        assert!(observed_overhead(&traced, &r, 2, &log, t0).is_none());
    }

    #[test]
    fn the_dispatch_lag_is_the_median_wait_beyond_the_delay() {
        let mut r = RequestRecords::default();
        let mut traced = Vec::new();
        // waits of 2.10, 2.12, 2.30 ms (lag), 1.0 ms (joined a batch), 5 ms (busy instance)
        for (id, wait_us) in [(0u64, 2100u64), (1, 2120), (2, 2300), (3, 1000), (4, 5000)] {
            r.id.push(id);
            r.path.push(Some(0));
            traced.push(TracedRequest {
                request_id: id,
                queue_start_ns: 0,
                compute_start_ns: wait_us * 1000,
                compute_end_ns: wait_us * 1000 + 1,
            });
        }
        let delay = SimDuration::from_millis_f64(2.0);
        assert_eq!(dispatch_lag(&traced, &r, 0, delay), Some(SimDuration(120_000)));
        assert_eq!(dispatch_lag(&traced, &r, 1, delay), None);
    }
}
