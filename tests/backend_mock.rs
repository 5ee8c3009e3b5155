//! The deterministic mock backend, and (feature `triton`) the KServe v2 client against a mock
//! Triton written here: a std TcpListener answering the v2 endpoints, in modes that serve,
//! refuse, close, stall or fail.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use basin::hw::backend::*;

fn row_data(rows: usize, width: usize, offset: f32) -> InputData {
    let data = (0..rows * width).map(|i| i as f32 * 0.25 + offset).collect();
    InputData { tensors: vec![Tensor::new("input", vec![rows, width], TensorData::F32(data))] }
}

/// Records the waits instead of sleeping.
#[derive(Clone, Default)]
struct RecordingSleeper(Arc<Mutex<Vec<Duration>>>);
impl Sleeper for RecordingSleeper {
    fn sleep(&mut self, d: Duration) {
        self.0.lock().unwrap().push(d)
    }
}

#[test]
fn mock_latency_goes_through_the_sleeper_and_is_reported() {
    let sleeper = RecordingSleeper::default();
    let base = Duration::from_micros(1500);
    let per_item = Duration::from_micros(250);
    let mut b = MockBackend::classifier("m", 4, 3, MockLatency::Linear { base, per_item }).with_sleeper(Box::new(sleeper.clone()));
    for bs in [1usize, 4, 8] {
        b.prepare(bs).unwrap();
        let out = b.infer().unwrap();
        let want = base + per_item * bs as u32;
        assert_eq!(out.batch_size, bs);
        assert!((out.elapsed_ms - want.as_secs_f64() * 1e3).abs() < 1e-9);
        assert_eq!(*sleeper.0.lock().unwrap().last().unwrap(), want);
    }
    assert_eq!(sleeper.0.lock().unwrap().len(), 3);
    assert_eq!(b.calls(), 3);
}

#[test]
fn mock_latency_table_rejects_unknown_batch_sizes() {
    let table: BTreeMap<usize, Duration> = [(1, Duration::from_millis(2)), (4, Duration::from_millis(5))].into();
    let mut b = MockBackend::classifier("m", 4, 3, MockLatency::Table(table));
    b.prepare(4).unwrap();
    assert_eq!(b.infer().unwrap().elapsed_ms, 5.0);
    b.prepare(3).unwrap();
    let e = b.infer().unwrap_err().to_string();
    assert!(e.contains("batch size 3") && e.contains("`m`"), "{e}");
}

#[test]
fn mock_probabilities_are_deterministic_distributions_per_sample() {
    let lat = MockLatency::Linear { base: Duration::ZERO, per_item: Duration::ZERO };
    let mut a = MockBackend::classifier("m", 4, 5, lat.clone());
    let mut b = MockBackend::classifier("m", 4, 5, lat);
    let data = row_data(3, 4, 0.0);
    a.set_inputs(&data).unwrap();
    b.set_inputs(&data).unwrap();
    let (oa, ob) = (a.infer().unwrap(), b.infer().unwrap());
    assert_eq!(oa, ob);
    assert_eq!(oa.probs.len(), 15);
    for i in 0..3 {
        let s: f32 = oa.row(i).iter().sum();
        assert!((s - 1.0).abs() < 1e-5);
        assert!(oa.confidence(i) >= 1.0 / 5.0);
        assert_eq!(oa.row(i)[oa.argmax(i)], oa.confidence(i));
    }
    // A sample's answer depends only on that sample, not on its batch.
    let single = InputData { tensors: vec![Tensor::new("input", vec![1, 4], TensorData::F32(vec![1.0, 1.25, 1.5, 1.75]))] };
    a.set_inputs(&single).unwrap();
    assert_eq!(a.infer().unwrap().row(0), oa.row(1));
    // Different samples give different answers.
    assert_ne!(oa.row(0), oa.row(1));
}

#[test]
fn prepared_random_inputs_are_seeded_and_shaped_from_metadata() {
    let specs = vec![
        TensorSpec { name: "input_ids".into(), dtype: DType::I64, shape: vec![-1, -1] },
        TensorSpec { name: "attention_mask".into(), dtype: DType::I64, shape: vec![-1, -1] },
        TensorSpec { name: "extra".into(), dtype: DType::F32, shape: vec![-1, 3] },
    ];
    let opts = RandomInputs { seed: 7, vocab_size: 50, dynamic_dim: 6 };
    let a = InputData::random("bert", &specs, 4, &opts).unwrap();
    assert_eq!(a, InputData::random("bert", &specs, 4, &opts).unwrap());
    assert_ne!(a, InputData::random("bert", &specs, 4, &RandomInputs { seed: 8, ..opts.clone() }).unwrap());
    assert_eq!(a.validate("bert", &specs).unwrap(), 4);
    assert_eq!(a.tensors[0].shape, vec![4, 6]);
    let TensorData::I64(ids) = &a.tensors[0].data else { panic!("ids not INT64") };
    assert!(ids.iter().all(|&t| (0..50).contains(&t)));
    assert!(ids.iter().any(|&t| t != ids[0]));
    let TensorData::I64(mask) = &a.tensors[1].data else { panic!("mask not INT64") };
    assert!(mask.iter().all(|&m| m == 1));
    assert_eq!(a.tensors[2].shape, vec![4, 3]);
    // Unsupported dtypes and a zero batch are errors, not panics.
    let half = vec![TensorSpec { name: "x".into(), dtype: DType::F16, shape: vec![-1, 2] }];
    assert!(InputData::random("h", &half, 2, &opts).unwrap_err().to_string().contains("FP16"));
    assert!(InputData::random("h", &specs, 0, &opts).is_err());
    let fixed = vec![TensorSpec { name: "x".into(), dtype: DType::F32, shape: vec![1, 2] }];
    assert!(InputData::random("f", &fixed, 2, &opts).unwrap_err().to_string().contains("fixed"));
}

#[test]
fn mismatched_inputs_are_named_in_the_error() {
    let mut b = MockBackend::classifier("digits", 64, 10, MockLatency::Linear { base: Duration::ZERO, per_item: Duration::ZERO });
    let e = b.set_inputs(&row_data(2, 32, 0.0)).unwrap_err().to_string();
    assert_eq!(e, "model `digits` expects input `input` FP32 [-1,64], got FP32 [2,32]");
    let wrong_name = InputData { tensors: vec![Tensor::new("pixels", vec![1, 64], TensorData::F32(vec![0.0; 64]))] };
    let e = b.set_inputs(&wrong_name).unwrap_err().to_string();
    assert!(e.contains("unknown input `pixels`") && e.contains("`input` FP32 [-1,64]"), "{e}");
    let wrong_type = InputData { tensors: vec![Tensor::new("input", vec![1, 64], TensorData::I64(vec![0; 64]))] };
    assert!(b.set_inputs(&wrong_type).unwrap_err().to_string().contains("got INT64 [1,64]"));
    let short = InputData { tensors: vec![Tensor::new("input", vec![2, 64], TensorData::F32(vec![0.0; 100]))] };
    assert!(b.set_inputs(&short).unwrap_err().to_string().contains("100 elements instead of 128"));
    assert!(matches!(b.set_inputs(&InputData::default()), Err(BackendError::InputMismatch { .. })));
    // Nothing prepared yet: infer is an error.
    assert!(matches!(b.infer(), Err(BackendError::NotPrepared { .. })));
}

#[test]
fn injected_failures_and_probability_modes() {
    let mut b =
        MockBackend::classifier("m", 2, 2, MockLatency::Linear { base: Duration::ZERO, per_item: Duration::ZERO }).with_fail_every(3);
    b.prepare(1).unwrap();
    let results: Vec<bool> = (0..6).map(|_| b.infer().is_ok()).collect();
    assert_eq!(results, [true, true, false, true, true, false]);

    let dist = vec![0.2, 0.8, 0.5, 0.5];
    assert_eq!(to_probabilities(dist.clone(), 2, Probabilities::Auto), dist);
    let logits = to_probabilities(vec![0.0, 2.0f32.ln()], 2, Probabilities::Auto);
    assert!((logits[0] - 1.0 / 3.0).abs() < 1e-6 && (logits[1] - 2.0 / 3.0).abs() < 1e-6);
    assert_eq!(to_probabilities(vec![3.0, -1.0], 2, Probabilities::AsIs), vec![3.0, -1.0]);
    let info = serde_json::to_value(b.info()).unwrap();
    assert_eq!(info["backend"], "mock");
}

#[cfg(feature = "triton")]
mod triton_mock {
    use super::*;
    use basin::hw::backend::triton::*;
    use serde_json::{Value, json};
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::mpsc;
    use std::time::Instant;

    #[derive(Clone, Copy, PartialEq, Debug)]
    enum Mode {
        /// Serves a model `tiny` with input `input` FP32 [-1,4] and output `probs` FP32 [-1,3].
        Ok,
        /// Accepts the connection, then closes it without answering.
        Close,
        /// Reads the request and never answers.
        Stall,
        /// Answers every request with 500 and a KServe error body (readiness with 503).
        Error,
    }

    struct Mock {
        url: String,
        infers: Arc<AtomicU64>,
    }

    /// Method, path, lower-cased headers, body.
    type Request = (String, String, BTreeMap<String, String>, Vec<u8>);
    /// Extra headers and body of a 200 answer.
    type Answer = (Vec<(&'static str, String)>, Vec<u8>);

    fn read_request(r: &mut BufReader<TcpStream>) -> Option<Request> {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());
        let mut headers = BTreeMap::new();
        loop {
            let mut h = String::new();
            r.read_line(&mut h).ok()?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':')?;
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
        let len: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        let mut body = vec![0; len];
        r.read_exact(&mut body).ok()?;
        Some((method, path, headers, body))
    }

    fn respond(w: &mut TcpStream, status: u16, extra: &[(&str, String)], body: &[u8]) {
        let mut head = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n", body.len());
        for (k, v) in extra {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let _ = w.write_all(head.as_bytes());
        let _ = w.write_all(body);
    }

    fn err_body(msg: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({ "error": msg })).unwrap()
    }

    /// The mock model: class scores `c * mean(row)`; answers binary or JSON as asked.
    fn infer(body: &[u8], headers: &BTreeMap<String, String>) -> Result<Answer, String> {
        let n: usize = headers.get("inference-header-content-length").and_then(|v| v.parse().ok()).unwrap_or(body.len());
        let header: Value = serde_json::from_slice(&body[..n]).map_err(|e| format!("bad header: {e}"))?;
        let inp = &header["inputs"][0];
        if header["inputs"].as_array().map_or(0, |a| a.len()) != 1 || inp["name"] != "input" {
            return Err(format!("unexpected inference input '{}' for model 'tiny'", inp["name"].as_str().unwrap_or("")));
        }
        if inp["datatype"] != "FP32" {
            return Err(format!("inference input 'input' data-type is '{}', but model 'tiny' expects 'FP32'", inp["datatype"]));
        }
        let shape: Vec<usize> = inp["shape"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
        let data: Vec<f32> = if inp.pointer("/parameters/binary_data_size").is_some() {
            body[n..].chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
        } else {
            inp["data"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect()
        };
        if shape.len() != 2 || shape[1] != 4 || data.len() != shape[0] * 4 {
            return Err(format!("unexpected shape for input 'input' for model 'tiny'. Expected [-1,4], got {shape:?}"));
        }
        let probs: Vec<f32> = data
            .chunks(4)
            .flat_map(|row| {
                let m = row.iter().sum::<f32>() / 4.0;
                to_probabilities((0..3).map(|c| c as f32 * m).collect(), 3, Probabilities::Softmax)
            })
            .collect();
        let binary = header["outputs"][0].pointer("/parameters/binary_data") == Some(&json!(true));
        let mut out = json!({"name": "probs", "datatype": "FP32", "shape": [shape[0], 3]});
        if binary {
            out["parameters"] = json!({ "binary_data_size": probs.len() * 4 });
        } else {
            out["data"] = json!(probs);
        }
        let mut resp = serde_json::to_vec(&json!({"model_name": "tiny", "model_version": "1", "outputs": [out]})).unwrap();
        let hl = resp.len();
        if !binary {
            return Ok((vec![("Content-Type", "application/json".into())], resp));
        }
        probs.iter().for_each(|p| resp.extend_from_slice(&p.to_le_bytes()));
        Ok((vec![("Inference-Header-Content-Length", hl.to_string())], resp))
    }

    const METRICS: &str = "# HELP nv_inference_request_success Number of successful inference requests\n\
# TYPE nv_inference_request_success counter\n\
nv_inference_request_success{model=\"tiny\",version=\"1\"} 42\n\
nv_inference_request_success{model=\"other\",version=\"1\"} 5\n\
nv_inference_count{model=\"tiny\",version=\"1\"} 84\n\
nv_inference_exec_count{model=\"tiny\",version=\"1\"} 21\n\
nv_inference_queue_duration_us{model=\"tiny\",version=\"1\"} 1234.5\n\
nv_inference_compute_infer_duration_us{model=\"tiny\",version=\"1\"} 9000\n\
nv_energy_consumption{gpu_uuid=\"GPU-a\"} 100.5\n\
nv_energy_consumption{gpu_uuid=\"GPU-b\"} 50\n";

    fn serve(mut stream: TcpStream, mode: Mode, infers: Arc<AtomicU64>) {
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        while let Some((method, path, headers, body)) = read_request(&mut reader) {
            match mode {
                Mode::Close => return,
                Mode::Stall => {
                    std::thread::sleep(Duration::from_secs(60));
                    return;
                }
                Mode::Error => {
                    let status = if path.ends_with("/ready") { 503 } else { 500 };
                    respond(&mut stream, status, &[], &err_body("internal failure: out of memory"));
                }
                Mode::Ok => {
                    let ok = |s: &mut TcpStream, v: Value| respond(s, 200, &[], &serde_json::to_vec(&v).unwrap());
                    match (method.as_str(), path.as_str()) {
                        ("GET", "/v2/health/live" | "/v2/health/ready" | "/v2/models/tiny/ready") => respond(&mut stream, 200, &[], b""),
                        ("GET", "/v2") => ok(
                            &mut stream,
                            json!({"name": "triton", "version": "2.51.0", "extensions": ["binary_tensor_data", "statistics"]}),
                        ),
                        ("GET", "/v2/models/tiny") => ok(
                            &mut stream,
                            json!({"name": "tiny", "versions": ["1"], "platform": "python",
                                   "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}],
                                   "outputs": [{"name": "probs", "datatype": "FP32", "shape": [-1, 3]}]}),
                        ),
                        ("GET", "/v2/models/tiny/stats") => {
                            let n = infers.load(Ordering::SeqCst);
                            let sd = |c: u64, ns: u64| json!({"count": c, "ns": ns});
                            ok(
                                &mut stream,
                                json!({"model_stats": [{"name": "tiny", "version": "1", "last_inference": 1700000000000u64,
                                "inference_count": 2 * n, "execution_count": n,
                                "inference_stats": {"success": sd(n, 3_000_000 * n), "fail": sd(0, 0), "queue": sd(n, 500_000 * n),
                                    "compute_input": sd(n, 10_000 * n), "compute_infer": sd(n, 2_000_000 * n), "compute_output": sd(n, 5_000 * n),
                                    "cache_hit": sd(0, 0), "cache_miss": sd(0, 0)},
                                "batch_stats": [{"batch_size": 2, "compute_input": sd(n, 10_000 * n), "compute_infer": sd(n, 2_000_000 * n), "compute_output": sd(n, 5_000 * n)}]}]}),
                            )
                        }
                        ("GET", "/metrics") => respond(&mut stream, 200, &[], METRICS.as_bytes()),
                        ("POST", "/v2/models/tiny/infer") => match infer(&body, &headers) {
                            Ok((h, b)) => {
                                infers.fetch_add(1, Ordering::SeqCst);
                                respond(&mut stream, 200, &h, &b)
                            }
                            Err(m) => respond(&mut stream, 400, &[], &err_body(&m)),
                        },
                        (_, p) if p.starts_with("/v2/models/") => {
                            let name = p.trim_start_matches("/v2/models/").split('/').next().unwrap_or("");
                            respond(&mut stream, 400, &[], &err_body(&format!("Request for unknown model: '{name}' is not found")))
                        }
                        _ => respond(&mut stream, 404, &[], b"Not Found"),
                    }
                }
            }
        }
    }

    fn spawn(mode: Mode) -> Mock {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let infers = Arc::new(AtomicU64::new(0));
        let counter = infers.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let c = counter.clone();
                std::thread::spawn(move || serve(stream, mode, c));
            }
        });
        Mock { url, infers }
    }

    /// A URL on which nothing listens (bound, then released).
    fn refused_url() -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        drop(l);
        url
    }

    /// Runs `f` on a thread and fails the test if it does not return within 20 s (a hang).
    fn bounded<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(Duration::from_secs(20)).expect("the client hung instead of timing out")
    }

    fn short() -> Timeouts {
        Timeouts { connect: Duration::from_millis(500), request: Duration::from_millis(400) }
    }

    #[test]
    fn client_speaks_kserve_v2_binary_and_json() {
        let m = spawn(Mode::Ok);
        let c = TritonClient::new(&m.url, Timeouts::default()).unwrap();
        assert!(c.live().unwrap() && c.ready().unwrap() && c.model_ready("tiny").unwrap());
        assert!(!c.model_ready("nope").unwrap());
        assert_eq!(c.server_metadata().unwrap().version, "2.51.0");
        let meta = c.model_metadata("tiny").unwrap();
        assert_eq!(meta.inputs, vec![TensorSpec { name: "input".into(), dtype: DType::F32, shape: vec![-1, 4] }]);
        assert_eq!(meta.outputs[0].to_string(), "`probs` FP32 [-1,3]");

        let data = row_data(2, 4, 0.0);
        let outs = c.infer("tiny", &data, &["probs"]).unwrap();
        assert_eq!(outs[0].shape, vec![2, 3]);
        let TensorData::F32(p) = &outs[0].data else { panic!("not FP32") };
        // Row 1 has mean 1.375: softmax of [0, 1.375, 2.75].
        let want = to_probabilities(vec![0.0, 1.375, 2.75], 3, Probabilities::Softmax);
        assert!(p[3..].iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-6));
        // The JSON path decodes to the same numbers.
        let json_outs = c.infer_encoded("tiny", &EncodedRequest::new(&data, &["probs"], false)).unwrap();
        assert_eq!(json_outs[0].shape, outs[0].shape);
        let TensorData::F32(q) = &json_outs[0].data else { panic!("not FP32") };
        assert!(p.iter().zip(q).all(|(a, b)| (a - b).abs() < 1e-6));
    }

    #[test]
    fn backend_calibrates_and_replays_against_the_mock_server() {
        let m = spawn(Mode::Ok);
        for binary in [true, false] {
            let mut b = TritonBackend::open(&m.url, "tiny", TritonOptions { binary, ..Default::default() }).unwrap();
            assert_eq!(b.info().backend, "triton");
            assert_eq!(b.info().version, "triton 2.51.0");
            assert_eq!(b.inputs()[0].shape, vec![-1, 4]);
            b.prepare(4).unwrap();
            let first = b.infer().unwrap();
            assert_eq!((first.batch_size, first.num_classes), (4, 3));
            assert_eq!(b.infer().unwrap().probs, first.probs);
            b.set_inputs(&row_data(2, 4, 0.0)).unwrap();
            let out = b.infer().unwrap();
            assert_eq!(out.argmax(0), 2);
            assert!((out.row(1).iter().sum::<f32>() - 1.0).abs() < 1e-5);
            let e = b.set_inputs(&row_data(2, 5, 0.0)).unwrap_err().to_string();
            assert_eq!(e, "model `tiny` expects input `input` FP32 [-1,4], got FP32 [2,5]");
        }
        let before = TritonClient::new(&m.url, Timeouts::default()).unwrap().model_stats("tiny").unwrap();
        assert_eq!(before.execution_count, m.infers.load(Ordering::SeqCst));
        let mut b = TritonBackend::open(&m.url, "tiny", TritonOptions::default()).unwrap();
        b.prepare(2).unwrap();
        for _ in 0..3 {
            b.infer().unwrap();
        }
        let after = b.client().model_stats("tiny").unwrap();
        let d = after.since(&before);
        assert_eq!((d.execution_count, d.inference_count), (3, 6));
        assert_eq!(d.inference_stats.queue.mean_ms(), Some(0.5));
        assert_eq!(d.batch_stats[0].batch_size, 2);
        assert_eq!(d.batch_stats[0].compute_infer.mean_ms(), Some(2.0));
    }

    #[test]
    fn metrics_are_parsed_per_model() {
        let m = spawn(Mode::Ok);
        let c = TritonClient::new(&m.url, Timeouts::default()).unwrap();
        let metrics = c.metrics(&format!("{}/metrics", m.url)).unwrap();
        let t = metrics.model_counters("tiny");
        assert_eq!((t.request_success, t.inference_count, t.exec_count), (42.0, 84.0, 21.0));
        assert_eq!(t.queue_duration_us, 1234.5);
        assert_eq!(metrics.sum("nv_inference_request_success", &[]), Some(47.0));
        assert_eq!(metrics.gpu_energy_j(), Some(150.5));
        assert!(Metrics::parse("ok 1\nbroken{model=\"x\" 3\n").unwrap_err().starts_with("line 2"));
        assert!(Metrics::parse("x{a=\"q\\\"uote\"} NaNx").unwrap_err().contains("not a number"));
    }

    #[test]
    fn server_down_is_reported_as_unreachable() {
        let url = refused_url();
        let u = url.clone();
        let e = bounded(move || TritonClient::new(&u, short()).unwrap().ready().unwrap_err());
        assert!(matches!(e, BackendError::Unreachable { .. }), "{e:?}");
        assert_eq!(e.to_string(), format!("Triton at {url} is not reachable (connection refused)"));
        let u = url.clone();
        let e = bounded(move || TritonBackend::open(&u, "tiny", TritonOptions::default()).err().unwrap());
        assert!(e.to_string().contains("not reachable"), "{e}");
        assert!(TritonClient::new("127.0.0.1:8000", short()).is_err());
    }

    #[test]
    fn a_stalled_server_times_out_instead_of_hanging() {
        let m = spawn(Mode::Stall);
        let url = m.url.clone();
        let (e, elapsed) = bounded(move || {
            let t0 = Instant::now();
            let e = TritonClient::new(&url, short()).unwrap().model_metadata("tiny").unwrap_err();
            (e, t0.elapsed())
        });
        assert!(matches!(e, BackendError::Timeout { .. }), "{e:?}");
        assert_eq!(e.to_string(), format!("timed out after 0.4 s waiting for metadata of model `tiny` from {}", m.url));
        assert!(elapsed >= Duration::from_millis(400));
        let url = m.url.clone();
        let e = bounded(move || TritonClient::new(&url, short()).unwrap().infer("tiny", &row_data(1, 4, 0.0), &["probs"]).unwrap_err());
        assert!(e.to_string().contains("inference of model `tiny`"), "{e}");
    }

    #[test]
    fn a_server_that_closes_the_connection_is_an_error() {
        let m = spawn(Mode::Close);
        let url = m.url.clone();
        let e = bounded(move || TritonClient::new(&url, short()).unwrap().ready().unwrap_err());
        assert!(matches!(e, BackendError::Protocol { .. } | BackendError::Unreachable { .. }), "{e:?}");
        assert!(e.to_string().contains(&m.url), "{e}");
    }

    #[test]
    fn server_errors_carry_the_status_and_message() {
        let m = spawn(Mode::Error);
        let url = m.url.clone();
        let c = TritonClient::new(&url, short()).unwrap();
        assert!(!c.ready().unwrap());
        let e = c.model_metadata("tiny").unwrap_err();
        assert_eq!(e.to_string(), format!("server returned 500: internal failure: out of memory ({url})"));
        let e = c.model_stats("tiny").unwrap_err();
        assert!(matches!(e, BackendError::Http { status: 500, .. }));
        let e = TritonBackend::open(&url, "tiny", TritonOptions::default()).err().unwrap();
        assert!(e.to_string().starts_with("server returned 500"), "{e}");
    }

    #[test]
    fn unknown_models_and_wrong_inputs_are_rejected_clearly() {
        let m = spawn(Mode::Ok);
        let e = TritonBackend::open(&m.url, "nope", TritonOptions::default()).err().unwrap();
        assert_eq!(e.to_string(), format!("model `nope` is not ready on Triton at {}", m.url));
        let c = TritonClient::new(&m.url, Timeouts::default()).unwrap();
        let e = c.model_metadata("nope").unwrap_err().to_string();
        assert!(e.contains("400") && e.contains("'nope' is not found"), "{e}");
        // The raw client does not validate: the server's 400 message comes through.
        let wrong = InputData { tensors: vec![Tensor::new("pixels", vec![1, 4], TensorData::F32(vec![0.0; 4]))] };
        let e = c.infer("tiny", &wrong, &["probs"]).unwrap_err().to_string();
        assert_eq!(e, format!("server returned 400: unexpected inference input 'pixels' for model 'tiny' ({})", m.url));
        // The backend validates against the metadata before sending.
        let mut b = TritonBackend::open(&m.url, "tiny", TritonOptions::default()).unwrap();
        let e = b.set_inputs(&wrong).unwrap_err().to_string();
        assert!(e.starts_with("model `tiny` expects input") && e.contains("pixels"), "{e}");
        assert!(matches!(b.infer(), Err(BackendError::NotPrepared { .. })));
        let e = TritonBackend::open(&m.url, "tiny", TritonOptions { output: Some("logits".into()), ..Default::default() }).err().unwrap();
        assert!(e.to_string().contains("`probs` FP32 [-1,3]"), "{e}");
    }

    #[test]
    fn response_parsing_rejects_truncated_bodies() {
        let head = br#"{"outputs":[{"name":"p","datatype":"FP32","shape":[1,2],"parameters":{"binary_data_size":8}}]}"#;
        let mut body = head.to_vec();
        body.extend_from_slice(&1.0f32.to_le_bytes());
        let e = parse_infer_response(&body, Some(head.len())).unwrap_err();
        assert!(e.contains("claims 8 binary bytes, 4 left"), "{e}");
        body.extend_from_slice(&2.0f32.to_le_bytes());
        assert_eq!(parse_infer_response(&body, Some(head.len())).unwrap()[0].data, TensorData::F32(vec![1.0, 2.0]));
        assert!(parse_infer_response(b"{}", Some(10)).is_err());
        assert!(parse_infer_response(b"not json", None).is_err());
    }
}
