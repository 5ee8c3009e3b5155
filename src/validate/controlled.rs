//! Validation level 1 (controlled service): every model's compute is replaced by a model that
//! holds each batch for the cost table's service time of its size. Path A: worker threads
//! running [`ControlledBackend`]; Path B: Triton serving controlled models that
//! `scripts/triton_repo.py` generates from [`triton_config`]'s JSON, so the real Triton
//! batcher, HTTP stack and client pool stay in the loop.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::core::RngStreams;
use crate::hw::backend::controlled::ControlledBackend;
use crate::hw::backend::stats::ServerSnapshot;
use crate::hw::backend::{BackendError, InferenceBackend};
use crate::model::cost::ServiceDist;
use crate::replay::BackendFactory;
use crate::spec::SimSpec;

/// The last stretch of every hold is spun (as the replay's own waits are).
pub const SPIN: Duration = Duration::from_micros(150);

/// Opens controlled backends for local servers and the early-exit model; servers that batch
/// remotely go to `remote` (a Triton serving the controlled models of [`triton_config`]).
pub struct ControlledFactory<'a> {
    remote: &'a dyn BackendFactory,
    service: BTreeMap<String, Vec<ServiceDist>>,
    streams: RngStreams,
    opened: AtomicU64,
}

impl<'a> ControlledFactory<'a> {
    pub fn new(spec: &SimSpec, seed: u64, remote: &'a dyn BackendFactory) -> Self {
        let mut service = BTreeMap::new();
        for s in &spec.servers {
            for v in &s.variants {
                service.insert(v.model.clone(), v.costs.clone());
            }
        }
        if let Some(e) = &spec.early_exit {
            service.insert(e.model.clone(), vec![e.dist.clone()]);
        }
        ControlledFactory { remote, service, streams: RngStreams::new(seed), opened: AtomicU64::new(0) }
    }
}

impl BackendFactory for ControlledFactory<'_> {
    fn open(&self, model: &str, backend: &str) -> Result<Box<dyn InferenceBackend>, BackendError> {
        if self.remote.batches_remotely(backend) {
            return self.remote.open(model, backend);
        }
        let service = self.service.get(model).cloned().ok_or_else(|| BackendError::InvalidRequest {
            model: model.into(),
            message: "the experiment has no cost rows for this model".into(),
        })?;
        // one stream per opened backend (one per worker thread), numbered in opening order
        let rng = self.streams.stream_indexed(&format!("controlled/{model}"), self.opened.fetch_add(1, Ordering::Relaxed));
        Ok(Box::new(ControlledBackend::new(model, service, rng, SPIN)))
    }

    fn batches_remotely(&self, backend: &str) -> bool {
        self.remote.batches_remotely(backend)
    }

    fn server_snapshot(&self, model: &str, backend: &str) -> Option<ServerSnapshot> {
        self.remote.server_snapshot(model, backend)
    }
}

fn service_json(batch_size: usize, d: &ServiceDist) -> Value {
    match d {
        ServiceDist::Deterministic { latency, .. } => {
            json!({ "batch_size": batch_size, "kind": "deterministic", "latency_s": latency.as_secs_f64() })
        }
        ServiceDist::Exponential { mean_s, .. } => json!({ "batch_size": batch_size, "kind": "exponential", "mean_s": mean_s }),
        ServiceDist::Quantiles { knots, .. } => json!({ "batch_size": batch_size, "kind": "quantiles", "knots": knots }),
        ServiceDist::Samples { samples_s, .. } => json!({ "batch_size": batch_size, "kind": "samples", "samples_s": samples_s }),
    }
}

/// The controlled models for the Triton servers of `spec` (`scripts/start-triton.sh
/// --controlled FILE`): each server's batcher and instances, and its first variant's service
/// time for every batch size 1..=max_batch_size.
pub fn triton_config(spec: &SimSpec, seed: u64, remote: &dyn BackendFactory) -> Value {
    let models: Vec<Value> = spec
        .servers
        .iter()
        .filter(|s| remote.batches_remotely(&s.backend))
        .enumerate()
        .map(|(i, s)| {
            let v = &s.variants[0];
            json!({
                "name": v.model,
                "max_batch_size": s.max_batch_size,
                "max_queue_delay_us": s.max_queue_delay.0 / 1000,
                "preferred_batch_sizes": s.preferred_batch_sizes,
                "instances": s.instances,
                "max_queue_size": s.max_queue_size.unwrap_or(0),
                "seed": seed.wrapping_add(1000 * i as u64),
                "service": v.costs.iter().take(s.max_batch_size as usize).enumerate().map(|(b, d)| service_json(b + 1, d)).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({ "spin_us": SPIN.as_micros() as u64, "models": models })
}
