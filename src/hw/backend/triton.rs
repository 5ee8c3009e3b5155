//! A client of NVIDIA Triton Inference Server over the KServe v2 HTTP protocol, and a
//! [`TritonBackend`] on top of it.
//!
//! Protocol: <https://kserve.github.io/website/latest/modelserving/data_plane/v2_protocol/>
//! (health, metadata, `POST /v2/models/{m}/infer`) with Triton's binary tensor extension
//! (<https://github.com/triton-inference-server/server/blob/main/docs/protocol/extension_binary_data.md>):
//! the request body is a JSON header followed by the raw little-endian tensor bytes, the
//! header's length in `Inference-Header-Content-Length`; outputs requested with
//! `binary_data: true` come back the same way. Calibration also reads Triton's statistics
//! extension (`GET /v2/models/{m}/stats`: cumulative queue and compute durations, overall and
//! per batch size; see `extension_statistics.md`) and its Prometheus metrics
//! (`nv_inference_*`, `nv_energy_consumption`; see `docs/user_guide/metrics.md`).
//!
//! No maintained Rust KServe v2 client crate exists, so this is a small blocking client on
//! `ureq` 3 with a connection pool (keep-alive). Every call has a connect timeout and an
//! overall deadline ([`Timeouts`]), so a server that is down, refuses or stalls gives an
//! error, never a hang. gRPC was measured at ~1.4 ms lower p50 on a CPU Triton when the
//! project chose its stack, but is not implemented here.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{
    BackendError, BackendInfo, DType, InferOutput, InferenceBackend, InputData, Probabilities, RandomInputs, TensorData, TensorSpec,
    to_probabilities,
};

/// Connect timeout and overall deadline of every call.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Timeouts {
    pub connect: Duration,
    pub request: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts { connect: Duration::from_secs(2), request: Duration::from_secs(10) }
    }
}

/// `GET /v2`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerMetadata {
    pub name: String,
    pub version: String,
    pub extensions: Vec<String>,
}

/// `GET /v2/models/{name}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ModelMetadata {
    pub name: String,
    pub versions: Vec<String>,
    pub platform: String,
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
}

/// One output tensor of an inference response.
#[derive(Clone, Debug, PartialEq)]
pub struct OutputTensor {
    pub name: String,
    pub shape: Vec<i64>,
    pub data: TensorData,
}

/// A cumulative count and duration, as in Triton's statistics extension.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StatDuration {
    pub count: u64,
    pub ns: u64,
}

impl StatDuration {
    /// Mean duration in milliseconds (None when `count` is 0).
    pub fn mean_ms(&self) -> Option<f64> {
        (self.count > 0).then(|| self.ns as f64 / self.count as f64 / 1e6)
    }
    fn minus(&self, e: &StatDuration) -> StatDuration {
        StatDuration { count: self.count.saturating_sub(e.count), ns: self.ns.saturating_sub(e.ns) }
    }
}

/// Request-level statistics: `queue` is time in the scheduler (the dynamic batcher), the
/// `compute_*` parts are input copy, execution and output copy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct InferenceStats {
    pub success: StatDuration,
    pub fail: StatDuration,
    pub queue: StatDuration,
    pub compute_input: StatDuration,
    pub compute_infer: StatDuration,
    pub compute_output: StatDuration,
}

/// Statistics of the executions of one batch size (counts are batches, not requests).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BatchStats {
    pub batch_size: u64,
    pub compute_input: StatDuration,
    pub compute_infer: StatDuration,
    pub compute_output: StatDuration,
}

/// `GET /v2/models/{name}/stats`, summed over the model's versions.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelStats {
    pub name: String,
    pub version: String,
    pub last_inference: u64,
    /// Requests (samples) inferred.
    pub inference_count: u64,
    /// Model executions (batches).
    pub execution_count: u64,
    pub inference_stats: InferenceStats,
    pub batch_stats: Vec<BatchStats>,
}

impl ModelStats {
    /// Counters accumulated since `earlier` (a snapshot of the same model).
    pub fn since(&self, earlier: &ModelStats) -> ModelStats {
        let (a, b) = (&self.inference_stats, &earlier.inference_stats);
        let batch_stats = self
            .batch_stats
            .iter()
            .map(|s| {
                let e = earlier.batch_stats.iter().find(|e| e.batch_size == s.batch_size).cloned().unwrap_or_default();
                BatchStats {
                    batch_size: s.batch_size,
                    compute_input: s.compute_input.minus(&e.compute_input),
                    compute_infer: s.compute_infer.minus(&e.compute_infer),
                    compute_output: s.compute_output.minus(&e.compute_output),
                }
            })
            .filter(|s| s.compute_infer.count > 0)
            .collect();
        ModelStats {
            name: self.name.clone(),
            version: self.version.clone(),
            last_inference: self.last_inference,
            inference_count: self.inference_count.saturating_sub(earlier.inference_count),
            execution_count: self.execution_count.saturating_sub(earlier.execution_count),
            inference_stats: InferenceStats {
                success: a.success.minus(&b.success),
                fail: a.fail.minus(&b.fail),
                queue: a.queue.minus(&b.queue),
                compute_input: a.compute_input.minus(&b.compute_input),
                compute_infer: a.compute_infer.minus(&b.compute_infer),
                compute_output: a.compute_output.minus(&b.compute_output),
            },
            batch_stats,
        }
    }

    fn add(&mut self, o: &ModelStats) {
        let add = |a: &mut StatDuration, b: &StatDuration| {
            a.count += b.count;
            a.ns += b.ns;
        };
        self.last_inference = self.last_inference.max(o.last_inference);
        self.inference_count += o.inference_count;
        self.execution_count += o.execution_count;
        let (a, b) = (&mut self.inference_stats, &o.inference_stats);
        for (x, y) in [
            (&mut a.success, &b.success),
            (&mut a.fail, &b.fail),
            (&mut a.queue, &b.queue),
            (&mut a.compute_input, &b.compute_input),
            (&mut a.compute_infer, &b.compute_infer),
            (&mut a.compute_output, &b.compute_output),
        ] {
            add(x, y);
        }
        for s in &o.batch_stats {
            match self.batch_stats.iter_mut().find(|e| e.batch_size == s.batch_size) {
                Some(e) => {
                    add(&mut e.compute_input, &s.compute_input);
                    add(&mut e.compute_infer, &s.compute_infer);
                    add(&mut e.compute_output, &s.compute_output);
                }
                None => self.batch_stats.push(s.clone()),
            }
        }
    }
}

/// One Prometheus sample: `name{labels} value`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MetricSample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// A scrape of Triton's metrics endpoint.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Metrics {
    pub samples: Vec<MetricSample>,
}

/// Triton's per-model counters from the metrics endpoint (cumulative; durations in µs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelCounters {
    pub request_success: f64,
    pub request_failure: f64,
    pub inference_count: f64,
    pub exec_count: f64,
    pub request_duration_us: f64,
    pub queue_duration_us: f64,
    pub compute_input_duration_us: f64,
    pub compute_infer_duration_us: f64,
    pub compute_output_duration_us: f64,
}

impl Metrics {
    /// Parses the Prometheus text exposition format; errors name the line.
    pub fn parse(text: &str) -> Result<Metrics, String> {
        let mut samples = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: &str| format!("line {}: {why}: {line:?}", i + 1);
            let (name, rest) = match line.find(['{', ' ']) {
                Some(p) => line.split_at(p),
                None => return Err(bad("no value")),
            };
            let mut labels = Vec::new();
            let rest = if let Some(body) = rest.strip_prefix('{') {
                let mut chars = body.char_indices().peekable();
                let end = loop {
                    while chars.peek().is_some_and(|(_, c)| *c == ',' || c.is_whitespace()) {
                        chars.next();
                    }
                    match chars.peek() {
                        Some((p, '}')) => break *p,
                        None => return Err(bad("unterminated labels")),
                        _ => {}
                    }
                    let key: String = std::iter::from_fn(|| chars.next_if(|(_, c)| *c != '=')).map(|(_, c)| c).collect();
                    if chars.next().map(|(_, c)| c) != Some('=') || chars.next().map(|(_, c)| c) != Some('"') {
                        return Err(bad("malformed label"));
                    }
                    let mut val = String::new();
                    loop {
                        match chars.next() {
                            Some((_, '"')) => break,
                            Some((_, '\\')) => match chars.next() {
                                Some((_, 'n')) => val.push('\n'),
                                Some((_, c)) => val.push(c),
                                None => return Err(bad("unterminated label value")),
                            },
                            Some((_, c)) => val.push(c),
                            None => return Err(bad("unterminated label value")),
                        }
                    }
                    labels.push((key.trim().to_string(), val));
                };
                &body[end + 1..]
            } else {
                rest
            };
            let value_str = rest.split_whitespace().next().ok_or_else(|| bad("no value"))?;
            let value = match value_str {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse::<f64>().map_err(|_| bad("value is not a number"))?,
            };
            samples.push(MetricSample { name: name.to_string(), labels, value });
        }
        Ok(Metrics { samples })
    }

    /// Sum of the samples called `name` whose labels include all of `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut hit = None;
        for s in self.samples.iter().filter(|s| s.name == name) {
            if labels.iter().all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v)) {
                *hit.get_or_insert(0.0) += s.value;
            }
        }
        hit
    }

    /// The `nv_inference_*` counters of `model` (all versions).
    pub fn model_counters(&self, model: &str) -> ModelCounters {
        let g = |n: &str| self.sum(n, &[("model", model)]).unwrap_or(0.0);
        ModelCounters {
            request_success: g("nv_inference_request_success"),
            request_failure: g("nv_inference_request_failure"),
            inference_count: g("nv_inference_count"),
            exec_count: g("nv_inference_exec_count"),
            request_duration_us: g("nv_inference_request_duration_us"),
            queue_duration_us: g("nv_inference_queue_duration_us"),
            compute_input_duration_us: g("nv_inference_compute_input_duration_us"),
            compute_infer_duration_us: g("nv_inference_compute_infer_duration_us"),
            compute_output_duration_us: g("nv_inference_compute_output_duration_us"),
        }
    }

    /// GPU energy since Triton started, summed over GPUs (`nv_energy_consumption`, joules).
    pub fn gpu_energy_j(&self) -> Option<f64> {
        self.sum("nv_energy_consumption", &[])
    }
}

/// A request body encoded once and sent as often as needed.
#[derive(Clone, Debug, PartialEq)]
pub struct EncodedRequest {
    pub batch_size: usize,
    /// Length of the JSON header (`Some` for the binary extension).
    pub header_len: Option<usize>,
    pub body: Vec<u8>,
}

impl EncodedRequest {
    /// Encodes `inputs`, asking for `outputs` (binary when `binary`).
    pub fn new(inputs: &InputData, outputs: &[&str], binary: bool) -> EncodedRequest {
        let outs: Vec<Value> = outputs
            .iter()
            .map(|n| if binary { json!({"name": n, "parameters": {"binary_data": true}}) } else { json!({"name": n}) })
            .collect();
        let ins: Vec<Value> = inputs
            .tensors
            .iter()
            .map(|t| {
                let mut v = json!({"name": t.name, "shape": t.shape, "datatype": t.data.dtype().as_str()});
                if binary {
                    v["parameters"] = json!({"binary_data_size": t.data.len() * t.data.dtype().size_bytes().unwrap_or(0)});
                } else {
                    v["data"] = match &t.data {
                        TensorData::F32(d) => json!(d),
                        TensorData::I64(d) => json!(d),
                        TensorData::I32(d) => json!(d),
                    };
                }
                v
            })
            .collect();
        let mut body = serde_json::to_vec(&json!({"inputs": ins, "outputs": outs})).unwrap_or_default();
        let header_len = binary.then_some(body.len());
        if binary {
            inputs.tensors.iter().for_each(|t| t.data.write_le_bytes(&mut body));
        }
        EncodedRequest { batch_size: inputs.batch_size(), header_len, body }
    }

    /// The same request carrying KServe v2's `id` (Triton logs it in its trace).
    pub fn with_id(&self, id: u64) -> EncodedRequest {
        let field = format!("{{\"id\":\"{id}\",");
        let mut body = Vec::with_capacity(self.body.len() + field.len());
        body.extend_from_slice(field.as_bytes());
        // the encoded header is a JSON object with at least "inputs": its `{` gives way to the field's
        body.extend_from_slice(&self.body[1..]);
        EncodedRequest { batch_size: self.batch_size, header_len: self.header_len.map(|n| n + field.len() - 1), body }
    }
}

/// A blocking KServe v2 client with connect/overall timeouts on every call.
pub struct TritonClient {
    base: String,
    agent: ureq::Agent,
    timeouts: Timeouts,
}

#[derive(Deserialize)]
struct RawSpec {
    name: String,
    datatype: String,
    #[serde(default)]
    shape: Vec<i64>,
}

impl RawSpec {
    fn spec(self) -> TensorSpec {
        TensorSpec { name: self.name, dtype: DType::from_kserve(&self.datatype), shape: self.shape }
    }
}

const BODY_LIMIT: u64 = 1 << 30;

impl TritonClient {
    /// A client of the server at `base_url` (e.g. `http://127.0.0.1:8000`); nothing is sent yet.
    pub fn new(base_url: &str, timeouts: Timeouts) -> Result<Self, BackendError> {
        let base = base_url.trim_end_matches('/').to_string();
        if !base.starts_with("http://") && !base.starts_with("https://") {
            return Err(BackendError::Unreachable { url: base, reason: "the URL must start with http://".into() });
        }
        let agent = ureq::Agent::config_builder()
            .timeout_connect(Some(timeouts.connect))
            .timeout_global(Some(timeouts.request))
            .http_status_as_error(false)
            .build()
            .new_agent();
        Ok(TritonClient { base, agent, timeouts })
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn net_error(&self, what: &str, e: ureq::Error) -> BackendError {
        let url = self.base.clone();
        let timeout = |after| BackendError::Timeout { url: url.clone(), what: what.into(), after };
        match e {
            ureq::Error::Timeout(ureq::Timeout::Connect) => timeout(self.timeouts.connect),
            ureq::Error::Timeout(_) => timeout(self.timeouts.request),
            ureq::Error::Io(io) => match io.kind() {
                ErrorKind::ConnectionRefused => BackendError::Unreachable { url, reason: "connection refused".into() },
                ErrorKind::TimedOut | ErrorKind::WouldBlock => timeout(self.timeouts.request),
                ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::UnexpectedEof | ErrorKind::BrokenPipe => {
                    BackendError::Protocol { url, message: format!("connection closed by the server while waiting for {what} ({io})") }
                }
                _ => BackendError::Unreachable { url, reason: io.to_string() },
            },
            ureq::Error::HostNotFound => BackendError::Unreachable { url, reason: "host not found".into() },
            ureq::Error::ConnectionFailed => BackendError::Unreachable { url, reason: "connection failed".into() },
            other => BackendError::Protocol { url, message: format!("{what}: {other}") },
        }
    }

    /// Sends a request; returns status, the `Inference-Header-Content-Length` header and the body.
    fn call(&self, what: &str, path: &str, post: Option<(&[u8], Option<usize>)>) -> Result<(u16, Option<usize>, Vec<u8>), BackendError> {
        let url = format!("{}{}", self.base, path);
        let result = match post {
            None => self.agent.get(&url).call(),
            Some((body, header_len)) => {
                let mut req = self.agent.post(&url);
                match header_len {
                    Some(n) => {
                        req =
                            req.header("Content-Type", "application/octet-stream").header("Inference-Header-Content-Length", n.to_string())
                    }
                    None => req = req.header("Content-Type", "application/json"),
                }
                req.send(body)
            }
        };
        let mut resp = result.map_err(|e| self.net_error(what, e))?;
        let status = resp.status().as_u16();
        let header_len =
            resp.headers().get("Inference-Header-Content-Length").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok());
        let body = resp.body_mut().with_config().limit(BODY_LIMIT).read_to_vec().map_err(|e| self.net_error(what, e))?;
        Ok((status, header_len, body))
    }

    fn http_error(&self, status: u16, body: &[u8]) -> BackendError {
        let message = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(body).trim().chars().take(500).collect());
        BackendError::Http { url: self.base.clone(), status, message }
    }

    fn get_json<T: for<'de> Deserialize<'de>>(&self, what: &str, path: &str) -> Result<T, BackendError> {
        let (status, _, body) = self.call(what, path, None)?;
        if status != 200 {
            return Err(self.http_error(status, &body));
        }
        serde_json::from_slice(&body).map_err(|e| BackendError::Protocol { url: self.base.clone(), message: format!("{what}: {e}") })
    }

    fn probe(&self, what: &str, path: &str) -> Result<bool, BackendError> {
        Ok(self.call(what, path, None)?.0 == 200)
    }

    /// `GET /v2/health/live`: Ok(false) when the server answers but is not live.
    pub fn live(&self) -> Result<bool, BackendError> {
        self.probe("the liveness probe", "/v2/health/live")
    }
    /// `GET /v2/health/ready`.
    pub fn ready(&self) -> Result<bool, BackendError> {
        self.probe("the readiness probe", "/v2/health/ready")
    }
    /// `GET /v2/models/{name}/ready`.
    pub fn model_ready(&self, name: &str) -> Result<bool, BackendError> {
        self.probe(&format!("readiness of model `{name}`"), &format!("/v2/models/{name}/ready"))
    }

    /// `GET /v2`.
    pub fn server_metadata(&self) -> Result<ServerMetadata, BackendError> {
        self.get_json("server metadata", "/v2")
    }

    /// `GET /v2/models/{name}`.
    pub fn model_metadata(&self, name: &str) -> Result<ModelMetadata, BackendError> {
        #[derive(Deserialize)]
        struct Raw {
            #[serde(default)]
            name: String,
            #[serde(default)]
            versions: Vec<String>,
            #[serde(default)]
            platform: String,
            #[serde(default)]
            inputs: Vec<RawSpec>,
            #[serde(default)]
            outputs: Vec<RawSpec>,
        }
        let raw: Raw = self.get_json(&format!("metadata of model `{name}`"), &format!("/v2/models/{name}"))?;
        Ok(ModelMetadata {
            name: raw.name,
            versions: raw.versions,
            platform: raw.platform,
            inputs: raw.inputs.into_iter().map(RawSpec::spec).collect(),
            outputs: raw.outputs.into_iter().map(RawSpec::spec).collect(),
        })
    }

    /// `GET /v2/models/{name}/stats`, summed over versions.
    pub fn model_stats(&self, name: &str) -> Result<ModelStats, BackendError> {
        #[derive(Deserialize)]
        struct Raw {
            #[serde(default)]
            model_stats: Vec<ModelStats>,
        }
        let raw: Raw = self.get_json(&format!("statistics of model `{name}`"), &format!("/v2/models/{name}/stats"))?;
        let mut it = raw.model_stats.into_iter();
        let mut total = it
            .next()
            .ok_or_else(|| BackendError::Protocol { url: self.base.clone(), message: format!("no statistics for model `{name}`") })?;
        it.for_each(|s| total.add(&s));
        Ok(total)
    }

    /// `POST /v2/trace/setting` (Triton's trace extension): updates the named settings, e.g.
    /// `{"log_frequency": "1"}`, and returns the settings now in force.
    pub fn update_trace_setting(&self, settings: &Value) -> Result<Value, BackendError> {
        let what = "the trace setting";
        let body = serde_json::to_vec(settings).unwrap_or_default();
        let (status, _, body) = self.call(what, "/v2/trace/setting", Some((&body, None)))?;
        if status != 200 {
            return Err(self.http_error(status, &body));
        }
        serde_json::from_slice(&body).map_err(|e| BackendError::Protocol { url: self.base.clone(), message: format!("{what}: {e}") })
    }

    /// Scrapes a Prometheus metrics endpoint (Triton's is `http://host:8002/metrics`).
    pub fn metrics(&self, metrics_url: &str) -> Result<Metrics, BackendError> {
        let resp = self.agent.get(metrics_url).call();
        let url = metrics_url.to_string();
        let fix = |e: BackendError| match e {
            BackendError::Unreachable { reason, .. } => BackendError::Unreachable { url: url.clone(), reason },
            BackendError::Timeout { what, after, .. } => BackendError::Timeout { url: url.clone(), what, after },
            BackendError::Protocol { message, .. } => BackendError::Protocol { url: url.clone(), message },
            other => other,
        };
        let mut resp = resp.map_err(|e| fix(self.net_error("metrics", e)))?;
        let status = resp.status().as_u16();
        let text = resp.body_mut().with_config().limit(BODY_LIMIT).read_to_string().map_err(|e| fix(self.net_error("metrics", e)))?;
        if status != 200 {
            return Err(BackendError::Http { url, status, message: text.trim().chars().take(500).collect() });
        }
        Metrics::parse(&text).map_err(|message| BackendError::Protocol { url, message })
    }

    /// Validates and encodes `inputs`, sends them and parses the outputs.
    pub fn infer(&self, model: &str, inputs: &InputData, outputs: &[&str]) -> Result<Vec<OutputTensor>, BackendError> {
        self.infer_encoded(model, &EncodedRequest::new(inputs, outputs, true))
    }

    /// Sends a pre-encoded request (`POST /v2/models/{model}/infer`).
    pub fn infer_encoded(&self, model: &str, req: &EncodedRequest) -> Result<Vec<OutputTensor>, BackendError> {
        let what = format!("inference of model `{model}`");
        let (status, header_len, body) = self.call(&what, &format!("/v2/models/{model}/infer"), Some((&req.body, req.header_len)))?;
        if status != 200 {
            return Err(self.http_error(status, &body));
        }
        parse_infer_response(&body, header_len)
            .map_err(|message| BackendError::Protocol { url: self.base.clone(), message: format!("{what}: {message}") })
    }
}

/// Parses an inference response (JSON, or JSON header + binary outputs).
pub fn parse_infer_response(body: &[u8], header_len: Option<usize>) -> Result<Vec<OutputTensor>, String> {
    let n = header_len.unwrap_or(body.len());
    if n > body.len() {
        return Err(format!("Inference-Header-Content-Length {n} exceeds the body of {} bytes", body.len()));
    }
    let header: Value = serde_json::from_slice(&body[..n]).map_err(|e| format!("bad JSON header: {e}"))?;
    let mut binary = &body[n..];
    let outs = header.get("outputs").and_then(Value::as_array).ok_or("response has no `outputs`")?;
    let mut result = Vec::with_capacity(outs.len());
    for o in outs {
        let name = o.get("name").and_then(Value::as_str).ok_or("output without a name")?.to_string();
        let dtype = DType::from_kserve(o.get("datatype").and_then(Value::as_str).unwrap_or(""));
        let shape: Vec<i64> =
            o.get("shape").and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_i64).collect()).unwrap_or_default();
        let count: usize = shape.iter().map(|&d| d.max(0) as usize).product();
        let data = if let Some(size) = o.pointer("/parameters/binary_data_size").and_then(Value::as_u64) {
            let size = size as usize;
            if size > binary.len() {
                return Err(format!("output `{name}` claims {size} binary bytes, {} left", binary.len()));
            }
            let (bytes, rest) = binary.split_at(size);
            binary = rest;
            match dtype {
                DType::F32 => {
                    TensorData::F32(bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap_or_default())).collect())
                }
                DType::F64 => {
                    TensorData::F32(bytes.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap_or_default()) as f32).collect())
                }
                DType::I64 => {
                    TensorData::I64(bytes.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap_or_default())).collect())
                }
                DType::I32 => {
                    TensorData::I32(bytes.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().unwrap_or_default())).collect())
                }
                other => return Err(format!("output `{name}` has unsupported datatype {other}")),
            }
        } else {
            let arr =
                o.get("data").and_then(Value::as_array).ok_or_else(|| format!("output `{name}` has neither data nor binary_data_size"))?;
            match dtype {
                DType::F32 | DType::F64 => TensorData::F32(arr.iter().map(|v| v.as_f64().unwrap_or(f64::NAN) as f32).collect()),
                DType::I64 => TensorData::I64(arr.iter().map(|v| v.as_i64().unwrap_or(0)).collect()),
                DType::I32 => TensorData::I32(arr.iter().map(|v| v.as_i64().unwrap_or(0) as i32).collect()),
                other => return Err(format!("output `{name}` has unsupported datatype {other}")),
            }
        };
        if data.len() != count {
            return Err(format!("output `{name}` has {} elements for shape {shape:?}", data.len()));
        }
        result.push(OutputTensor { name, shape, data });
    }
    Ok(result)
}

/// Options of [`TritonBackend::open`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TritonOptions {
    pub timeouts: Timeouts,
    /// Output holding the class scores; `None` takes the first output in the metadata.
    pub output: Option<String>,
    pub probabilities: Probabilities,
    pub random: RandomInputs,
    /// Binary tensor extension (default) or plain JSON.
    pub binary: bool,
}

impl Default for TritonOptions {
    fn default() -> Self {
        TritonOptions {
            timeouts: Timeouts::default(),
            output: None,
            probabilities: Probabilities::Auto,
            random: RandomInputs::default(),
            binary: true,
        }
    }
}

/// One model served by Triton, as an [`InferenceBackend`]. Request bodies are encoded once
/// per batch size (or per `set_inputs`), so `infer` measures the round trip alone.
pub struct TritonBackend {
    client: TritonClient,
    info: BackendInfo,
    specs: Vec<TensorSpec>,
    output: String,
    opts: TritonOptions,
    prepared: HashMap<usize, EncodedRequest>,
    provided: Option<EncodedRequest>,
    current: Option<Option<usize>>,
    request_id: Option<u64>,
}

impl TritonBackend {
    /// Connects to `base_url`, checks that `model` is ready and reads its metadata.
    pub fn open(base_url: &str, model: &str, opts: TritonOptions) -> Result<Self, BackendError> {
        let client = TritonClient::new(base_url, opts.timeouts)?;
        let server = client.server_metadata()?;
        if !client.model_ready(model)? {
            return Err(BackendError::ModelNotReady { url: client.base.clone(), model: model.into() });
        }
        let meta = client.model_metadata(model)?;
        let out = match &opts.output {
            Some(want) => meta.outputs.iter().find(|o| &o.name == want),
            None => meta.outputs.first(),
        };
        let Some(out) = out else {
            let have: Vec<String> = meta.outputs.iter().map(|o| o.to_string()).collect();
            return Err(BackendError::Output {
                model: model.into(),
                message: format!("no output {:?} (outputs: {})", opts.output.as_deref().unwrap_or("<first>"), have.join(", ")),
            });
        };
        let output = out.name.clone();
        let info = BackendInfo {
            backend: crate::spec::BackendKind::Triton.name().into(),
            model: model.into(),
            device: "remote".into(),
            provider: if opts.binary { "http+binary" } else { "http+json" }.into(),
            version: format!("{} {}", if server.name.is_empty() { "triton" } else { &server.name }, server.version),
            input_path: "pre_encoded".into(),
        };
        Ok(TritonBackend {
            client,
            info,
            specs: meta.inputs,
            output,
            opts,
            prepared: HashMap::new(),
            provided: None,
            current: None,
            request_id: None,
        })
    }

    /// The underlying client (statistics, metrics).
    pub fn client(&self) -> &TritonClient {
        &self.client
    }
}

impl InferenceBackend for TritonBackend {
    fn info(&self) -> &BackendInfo {
        &self.info
    }
    fn inputs(&self) -> &[TensorSpec] {
        &self.specs
    }

    fn prepare(&mut self, batch_size: usize) -> Result<(), BackendError> {
        if !self.prepared.contains_key(&batch_size) {
            let data = InputData::random(&self.info.model, &self.specs, batch_size, &self.opts.random)?;
            self.prepared.insert(batch_size, EncodedRequest::new(&data, &[&self.output], self.opts.binary));
        }
        self.current = Some(Some(batch_size));
        Ok(())
    }

    fn set_inputs(&mut self, data: &InputData) -> Result<(), BackendError> {
        data.validate(&self.info.model, &self.specs)?;
        self.provided = Some(EncodedRequest::new(data, &[&self.output], self.opts.binary));
        self.current = Some(None);
        Ok(())
    }

    fn set_request_id(&mut self, id: Option<u64>) {
        self.request_id = id;
    }

    fn infer(&mut self) -> Result<InferOutput, BackendError> {
        let model = &self.info.model;
        let req = match self.current {
            Some(Some(b)) => self.prepared.get(&b),
            Some(None) => self.provided.as_ref(),
            None => None,
        }
        .ok_or_else(|| BackendError::NotPrepared { model: model.clone() })?;
        let tagged = self.request_id.take().map(|id| req.with_id(id));
        let t0 = Instant::now();
        let outputs = self.client.infer_encoded(model, tagged.as_ref().unwrap_or(req))?;
        let elapsed_ms = t0.elapsed().as_secs_f64() * 1e3;
        let out_err = |message: String| BackendError::Output { model: model.clone(), message };
        let out = outputs
            .into_iter()
            .find(|o| o.name == self.output)
            .ok_or_else(|| out_err(format!("output `{}` missing from the response", self.output)))?;
        let TensorData::F32(raw) = out.data else {
            return Err(out_err(format!("output `{}` is {}, expected FP32", out.name, out.data.dtype())));
        };
        let batch = out.shape.first().copied().unwrap_or(0).max(0) as usize;
        if batch != req.batch_size || raw.len() % batch.max(1) != 0 {
            return Err(out_err(format!("output `{}` has shape {:?} for a batch of {}", out.name, out.shape, req.batch_size)));
        }
        let classes = raw.len() / batch;
        Ok(InferOutput {
            batch_size: batch,
            num_classes: classes,
            probs: to_probabilities(raw, classes, self.opts.probabilities),
            elapsed_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hw::backend::Tensor;

    #[test]
    fn a_request_id_goes_into_the_json_header_and_keeps_the_binary_tensors() {
        let inputs = InputData { tensors: vec![Tensor { name: "x".into(), shape: vec![1, 2], data: TensorData::F32(vec![0.5, 1.5]) }] };
        for binary in [false, true] {
            let plain = EncodedRequest::new(&inputs, &["y"], binary);
            let tagged = plain.with_id(42);
            let header_end = tagged.header_len.unwrap_or(tagged.body.len());
            let header: Value = serde_json::from_slice(&tagged.body[..header_end]).unwrap();
            assert_eq!(header["id"], "42");
            assert_eq!(
                header["inputs"],
                serde_json::from_slice::<Value>(&plain.body[..plain.header_len.unwrap_or(plain.body.len())]).unwrap()["inputs"]
            );
            assert_eq!(&tagged.body[header_end..], &plain.body[plain.header_len.unwrap_or(plain.body.len())..]);
        }
    }
}
