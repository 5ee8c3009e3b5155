//! A controlled-service backend (validation level 1, Path A): instead of computing, it holds the
//! worker thread for the cost table's service time of the batch's size, drawn from the row's
//! distribution with a seeded stream — sleep, then spin to the deadline. It isolates what the
//! simulator models (arrivals, batching, queueing, the controller, the driver's threads) from
//! how fast this host computes. Its answers are placeholders (class 0): a validation run takes
//! accuracy from the experiment's quality table, as the simulation does.
//!
//! Triton's controlled models (Path B) do the same inside `tritonserver`'s Python backend
//! (`scripts/triton_repo.py`).

use std::time::{Duration, Instant};

use super::{BackendError, BackendInfo, DType, InferOutput, InferenceBackend, InputData, TensorSpec};
use crate::core::StreamRng;
use crate::model::cost::ServiceDist;

/// Classes of the placeholder answer.
const CLASSES: usize = 10;

pub struct ControlledBackend {
    info: BackendInfo,
    specs: Vec<TensorSpec>,
    /// Service time per batch size (index = size − 1).
    service: Vec<ServiceDist>,
    rng: StreamRng,
    /// The last stretch of every hold is spun, not slept, for precision.
    spin: Duration,
    batch: usize,
}

impl ControlledBackend {
    /// `service[b - 1]` is the service time of a batch of `b`.
    pub fn new(model: &str, service: Vec<ServiceDist>, rng: StreamRng, spin: Duration) -> Self {
        ControlledBackend {
            info: BackendInfo {
                backend: "controlled".into(),
                model: model.into(),
                device: "cpu".into(),
                provider: "controlled service (cost table)".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                input_path: "none".into(),
            },
            specs: vec![TensorSpec { name: "input".into(), dtype: DType::F32, shape: vec![-1, 1] }],
            service,
            rng,
            spin,
            batch: 0,
        }
    }
}

/// Sleeps until `deadline − spin`, then spins to `deadline`.
pub fn hold_until(deadline: Instant, spin: Duration) {
    let now = Instant::now();
    if let Some(sleep) = deadline.checked_duration_since(now).and_then(|d| d.checked_sub(spin)) {
        std::thread::sleep(sleep);
    }
    while Instant::now() < deadline {
        std::hint::spin_loop();
    }
}

impl InferenceBackend for ControlledBackend {
    fn info(&self) -> &BackendInfo {
        &self.info
    }
    fn inputs(&self) -> &[TensorSpec] {
        &self.specs
    }
    fn prepare(&mut self, batch_size: usize) -> Result<(), BackendError> {
        self.batch = batch_size;
        Ok(())
    }
    fn set_inputs(&mut self, data: &InputData) -> Result<(), BackendError> {
        self.batch = data.batch_size();
        Ok(())
    }
    fn infer(&mut self) -> Result<InferOutput, BackendError> {
        let start = Instant::now();
        let b = self.batch;
        let dist = self.service.get(b.wrapping_sub(1)).ok_or_else(|| BackendError::InvalidRequest {
            model: self.info.model.clone(),
            message: format!("no service time for a batch of {b} (the table covers 1..={})", self.service.len()),
        })?;
        let (service, _) = dist.draw(&mut self.rng);
        hold_until(start + Duration::from_nanos(service.0), self.spin);
        let mut probs = vec![0.0; b * CLASSES];
        probs.iter_mut().step_by(CLASSES).for_each(|p| *p = 1.0);
        Ok(InferOutput { batch_size: b, num_classes: CLASSES, probs, elapsed_ms: start.elapsed().as_secs_f64() * 1e3 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Joules;
    use crate::core::{RngStreams, SimDuration};
    use crate::model::cost::ServiceDist;

    #[test]
    fn holds_each_batch_for_its_table_time() {
        let fixed = |ms: f64| ServiceDist::Deterministic { latency: SimDuration::from_millis_f64(ms), energy: Joules(0.0) };
        let mut b = ControlledBackend::new("m", vec![fixed(2.0), fixed(3.0)], RngStreams::new(1).stream("c"), Duration::from_micros(200));
        for (size, ms) in [(1, 2.0), (2, 3.0)] {
            b.prepare(size).unwrap();
            let out = b.infer().unwrap();
            assert_eq!(out.batch_size, size);
            assert!(out.elapsed_ms >= ms, "held {} ms for a {ms} ms row", out.elapsed_ms);
            assert_eq!(out.argmax(0), 0);
        }
        b.prepare(3).unwrap();
        assert!(b.infer().is_err());
    }
}
