//! `basin bench load`: an open-loop KServe v2 load generator, light enough to share a 2-vCPU
//! host with the server it loads (`scripts/bench-serve.sh` uses it against `basin serve`).
//! Requests are sent at fixed intervals over a few persistent HTTP/1.1 connections; each
//! request's latency runs from its *scheduled* time, so a late send counts (no coordinated
//! omission). Prints one JSON line: sent, errors, achieved rate, latency percentiles (HDR
//! quantiles, like every other percentile basin reports).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use hdrhistogram::Histogram;
use serde_json::json;

use crate::hw::backend::triton::{EncodedRequest, Timeouts, TritonClient};
use crate::hw::backend::{InputData, RandomInputs};

#[derive(Args, Debug)]
pub struct LoadArgs {
    /// The server's base URL (e.g. http://127.0.0.1:8080).
    pub url: String,
    /// The model every request names.
    #[arg(long)]
    pub model: String,
    /// Requests per second.
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// How long to send, in seconds.
    #[arg(long, default_value_t = 30.0)]
    pub seconds: f64,
    /// Persistent connections (one sending thread each).
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
}

/// What one sending thread saw.
struct Sent {
    latency_ns: Histogram<u64>,
    errors: u64,
    first_error: Option<String>,
}

pub fn run(a: LoadArgs) -> Result<()> {
    if !(a.rate.is_finite() && a.rate > 0.0 && a.seconds.is_finite() && a.seconds > 0.0) || a.connections == 0 {
        bail!("--rate and --seconds must be finite and > 0, and --connections at least 1");
    }
    let client = TritonClient::new(&a.url, Timeouts::default()).map_err(anyhow::Error::msg)?;
    let meta =
        client.model_metadata(&a.model).map_err(anyhow::Error::msg).with_context(|| format!("asking {} about `{}`", a.url, a.model))?;
    let inputs = InputData::random(&a.model, &meta.inputs, 1, &RandomInputs::default()).map_err(anyhow::Error::msg)?;
    let output = meta.outputs.first().map(|o| o.name.as_str()).with_context(|| format!("`{}` has no outputs", a.model))?;
    let body = EncodedRequest::new(&inputs, &[output], false);
    let n = (a.rate * a.seconds).round() as u64;
    let interval = Duration::from_secs_f64(1.0 / a.rate);
    let start = Instant::now() + Duration::from_millis(200);
    let sent: Vec<Sent> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..a.connections as u64)
            .map(|k| {
                let (url, model, body) = (&a.url, &a.model, &body);
                let step = a.connections as u64;
                scope.spawn(move || -> Result<Sent> {
                    let client = TritonClient::new(url, Timeouts::default()).map_err(anyhow::Error::msg)?;
                    let mut s = Sent { latency_ns: Histogram::new(3)?, errors: 0, first_error: None };
                    for i in (k..n).step_by(step as usize) {
                        let due = start + interval.mul_f64(i as f64);
                        if let Some(wait) = due.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                        if let Err(e) = client.infer_encoded(model, body) {
                            s.errors += 1;
                            s.first_error.get_or_insert_with(|| e.to_string());
                        }
                        let _ = s.latency_ns.record((Instant::now() - due).as_nanos().max(1) as u64);
                    }
                    Ok(s)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a sending thread panicked")).collect::<Result<Vec<_>>>()
    })?;
    let wall = start.elapsed().as_secs_f64();
    let mut latency = Histogram::<u64>::new(3)?;
    let mut errors = 0;
    let mut first_error = None;
    for s in sent {
        latency.add(&s.latency_ns)?;
        errors += s.errors;
        first_error = first_error.or(s.first_error);
    }
    let ms = |q: f64| latency.value_at_quantile(q) as f64 / 1e6;
    println!(
        "{}",
        json!({
            "sent": n,
            "errors": errors,
            "first_error": first_error,
            "achieved_rps": n as f64 / wall,
            "connections": a.connections,
            "latency_ms": {"p50": ms(0.5), "p99": ms(0.99), "max": latency.max() as f64 / 1e6},
        })
    );
    Ok(())
}
