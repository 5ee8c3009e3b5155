//! `basin calibrate [transport]`: Triton measured as the replay uses it (b concurrent one-row
//! requests), here against a mock server whose statistics are known exactly.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use basin::calibrate::transport::{ServerSnapshot, TransportConfig, cost_point, measure_transport, overhead_ms};
use basin::hw::backend::{
    BackendError, BackendInfo, InferOutput, InferenceBackend, InputData, MockBackend, MockLatency, TensorSpec, ThreadSleep,
};
use basin::hw::meter::mock::MockMeter;

/// Per request: queue 0.1 ms, compute 1 ms; the client sleeps 3 ms (so its round trip is ≥ 3 ms).
const QUEUE_NS: u64 = 100_000;
const COMPUTE_NS: u64 = 1_000_000;

#[derive(Default)]
struct Server {
    snap: ServerSnapshot,
    /// Requests since the last statistics read: they form one execution (the "batcher").
    pending: u64,
}

/// A client of the mock server: each call is one request of one row.
struct Client {
    inner: MockBackend,
    server: Arc<Mutex<Server>>,
}

impl InferenceBackend for Client {
    fn info(&self) -> &BackendInfo {
        self.inner.info()
    }
    fn inputs(&self) -> &[TensorSpec] {
        self.inner.inputs()
    }
    fn prepare(&mut self, batch_size: usize) -> Result<(), BackendError> {
        assert_eq!(batch_size, 1, "the replay's pattern is one row per request");
        self.inner.prepare(batch_size)
    }
    fn set_inputs(&mut self, inputs: &InputData) -> Result<(), BackendError> {
        self.inner.set_inputs(inputs)
    }
    fn infer(&mut self) -> Result<InferOutput, BackendError> {
        let out = self.inner.infer()?;
        let mut s = self.server.lock().unwrap();
        s.snap.inference_count += 1;
        s.snap.queue_ns += QUEUE_NS;
        s.snap.compute_ns += COMPUTE_NS;
        s.pending += 1;
        Ok(out)
    }
}

fn stats_of(server: &Arc<Mutex<Server>>) -> impl FnMut() -> Result<ServerSnapshot> + use<> {
    let server = server.clone();
    move || {
        let mut s = server.lock().unwrap();
        let k = std::mem::take(&mut s.pending);
        if k > 0 {
            // one execution of size k whose service time is the compute of one request
            s.snap.execution_count += 1;
            // per request compute 1 ms; the execution's service (what overhead subtracts) too
            match s.snap.batches.iter_mut().find(|b| b.0 == k) {
                Some(b) => {
                    b.1 += 1;
                    b.2 += COMPUTE_NS;
                }
                None => s.snap.batches.push((k, 1, COMPUTE_NS)),
            }
        }
        Ok(s.snap.clone())
    }
}

fn clients(n: usize, server: &Arc<Mutex<Server>>) -> Vec<Box<dyn InferenceBackend>> {
    (0..n)
        .map(|_| {
            let inner =
                MockBackend::classifier("m", 4, 3, MockLatency::Linear { base: Duration::from_millis(3), per_item: Duration::ZERO })
                    .with_sleeper(Box::new(ThreadSleep));
            Box::new(Client { inner, server: server.clone() }) as Box<dyn InferenceBackend>
        })
        .collect()
}

#[test]
fn concurrent_one_row_requests_give_service_time_and_overhead() {
    let server = Arc::new(Mutex::new(Server::default()));
    let mut backends = clients(4, &server);
    let mut stats = stats_of(&server);
    let cfg = TransportConfig { warmup_rounds: 2, rounds: 10, max_time_s: 60.0, models: None };
    let mut points = Vec::new();
    for b in [1u32, 2, 4] {
        let mut meter = MockMeter::constant_power(10.0, Duration::from_millis(100));
        let p = measure_transport("m", &mut backends, &mut stats, &mut meter, b, &cfg).unwrap();
        assert_eq!(p.rounds, 10);
        assert_eq!(p.requests, 10 * u64::from(b), "warm-up rounds are not counted");
        assert_eq!(p.executions, 10);
        assert!((p.queue_ms - 0.1).abs() < 1e-12 && (p.compute_ms - 1.0).abs() < 1e-12, "{p:?}");
        // round trip ≥ the mock's 3 ms, so the overhead outside queue + compute is ≥ 1.9 ms,
        // and exactly round trip − 1.1 ms on average
        assert!(p.client_mean_ms >= 3.0);
        assert!((p.overhead_mean_ms - (p.client_mean_ms - 1.1)).abs() < 1e-9, "{p:?}");
        assert!(p.overhead_p50_ms >= 1.9);
        // the batcher formed one batch of b per round: one service sample each
        assert_eq!(p.service, vec![(b, vec![1.0; 10])]);
        // the mock meter moved by one tick between the first and last measured read
        assert!((p.energy_j - 1.0).abs() < 1e-12, "{}", p.energy_j);
        points.push(p);
    }
    for b in [1u32, 2, 4] {
        let c = cost_point(&points, b).unwrap();
        assert_eq!(c.batch_size, b);
        assert_eq!(c.samples_ms.len(), 10);
        assert!((c.stats.mean_ms - 1.0).abs() < 1e-12);
        // energy per batch of b = energy per request × b
        let per_request = 1.0 / (10.0 * f64::from(b));
        assert!((c.energy_per_batch_j() - per_request * f64::from(b)).abs() < 1e-12);
    }
    assert!(cost_point(&points, 3).is_none(), "no batch of 3 was ever formed");
    let o = overhead_ms(&points, "m").unwrap();
    assert!(o >= 1.9 && o <= points.iter().map(|p| p.client_mean_ms).fold(0.0, f64::max));
}

#[test]
fn too_few_client_backends_is_a_clear_error() {
    let server = Arc::new(Mutex::new(Server::default()));
    let mut backends = clients(2, &server);
    let mut stats = stats_of(&server);
    let mut meter = MockMeter::constant_power(1.0, Duration::from_millis(1));
    let e = measure_transport("m", &mut backends, &mut stats, &mut meter, 4, &TransportConfig::default()).unwrap_err().to_string();
    assert!(e.contains("`m`") && e.contains("batch size 4") && e.contains("needs 4"), "{e}");
}

#[test]
fn a_failing_request_stops_the_point_with_its_error() {
    let server = Arc::new(Mutex::new(Server::default()));
    let mut backends: Vec<Box<dyn InferenceBackend>> = (0..2)
        .map(|_| {
            let inner = MockBackend::classifier("m", 4, 3, MockLatency::Linear { base: Duration::ZERO, per_item: Duration::ZERO })
                .with_fail_every(3);
            Box::new(Client { inner, server: server.clone() }) as Box<dyn InferenceBackend>
        })
        .collect();
    let mut stats = stats_of(&server);
    let mut meter = MockMeter::constant_power(1.0, Duration::from_millis(1));
    let e = measure_transport("m", &mut backends, &mut stats, &mut meter, 2, &TransportConfig::default()).unwrap_err().to_string();
    assert!(e.contains("injected failure"), "{e}");
}
