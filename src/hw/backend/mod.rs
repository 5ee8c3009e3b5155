//! Inference backends: one narrow interface over ONNX Runtime (in process), NVIDIA Triton
//! (a KServe v2 client) and a deterministic mock.
//!
//! The interface serves two callers:
//! - **calibration** prepares inputs once per batch size ([`InferenceBackend::prepare`]: seeded
//!   random data shaped from the model's own metadata) and then calls
//!   [`InferenceBackend::infer`] repeatedly on those inputs, so that what is measured is the
//!   model, not the copying of inputs (ONNX Runtime binds the tensors once through its
//!   IoBinding API; Triton encodes the binary request body once);
//! - **replay** sends real samples ([`InferenceBackend::set_inputs`]) and gets class
//!   probabilities back ([`InferOutput`]) to score correctness and confidence.
//!
//! Tensor metadata follows the KServe v2 inference protocol
//! (<https://kserve.github.io/website/latest/modelserving/data_plane/v2_protocol/>): a name, a
//! datatype spelled as in the protocol (`FP32`, `INT64`, ...) and a shape in which `-1` marks a
//! dynamic dimension. The first dimension is the batch dimension.
//!
//! Every backend reports the duration it measured itself in [`InferOutput::elapsed_ms`] (wall
//! clock around the run for real backends; the configured latency for the mock, whose waiting
//! goes through a [`Sleeper`] so tests never depend on the wall clock).

pub mod controlled;
#[cfg(feature = "ort")]
pub mod onnx;
pub mod stats;
#[cfg(feature = "triton")]
pub mod triton;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use rand::RngExt;
use serde::{Deserialize, Serialize};

use crate::core::rng::{RngStreams, splitmix64};

/// What a backend runs and where; recorded next to every calibration table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendInfo {
    /// `onnxruntime`, `triton` or `mock`.
    pub backend: String,
    /// Model name (file stem for ONNX files, the served name for Triton).
    pub model: String,
    /// `cpu`, `cuda:0`, or `remote` for a server whose placement the client cannot see.
    pub device: String,
    /// Execution provider or transport, e.g. `CPUExecutionProvider`, `http+binary`.
    pub provider: String,
    /// Runtime version, e.g. `onnxruntime 1.31.1`, `triton 2.51.0`.
    pub version: String,
    /// How inputs are kept between calls: `io_binding`, `preallocated`, `pre_encoded`.
    pub input_path: String,
}

/// Element type of a tensor, named as in the KServe v2 protocol.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DType {
    F32,
    F16,
    F64,
    I64,
    I32,
    I8,
    U8,
    Bool,
    /// Any other type, with the name the runtime gave it; inputs of such types are rejected.
    Other(String),
}

impl DType {
    /// The KServe v2 name (`FP32`, `INT64`, ...).
    pub fn as_str(&self) -> &str {
        match self {
            DType::F32 => "FP32",
            DType::F16 => "FP16",
            DType::F64 => "FP64",
            DType::I64 => "INT64",
            DType::I32 => "INT32",
            DType::I8 => "INT8",
            DType::U8 => "UINT8",
            DType::Bool => "BOOL",
            DType::Other(s) => s,
        }
    }

    /// Parses a KServe v2 datatype name.
    pub fn from_kserve(name: &str) -> DType {
        match name {
            "FP32" => DType::F32,
            "FP16" => DType::F16,
            "FP64" => DType::F64,
            "INT64" => DType::I64,
            "INT32" => DType::I32,
            "INT8" => DType::I8,
            "UINT8" => DType::U8,
            "BOOL" => DType::Bool,
            other => DType::Other(other.to_string()),
        }
    }

    /// Bytes per element (None for variable-size or unknown types).
    pub fn size_bytes(&self) -> Option<usize> {
        match self {
            DType::F64 | DType::I64 => Some(8),
            DType::F32 | DType::I32 => Some(4),
            DType::F16 => Some(2),
            DType::I8 | DType::U8 | DType::Bool => Some(1),
            DType::Other(_) => None,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A model input or output as the runtime describes it; `-1` marks a dynamic dimension.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorSpec {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<i64>,
}

fn fmt_dims<T: fmt::Display>(dims: &[T]) -> String {
    let inner: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    format!("[{}]", inner.join(","))
}

impl fmt::Display for TensorSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` {} {}", self.name, self.dtype, fmt_dims(&self.shape))
    }
}

/// Tensor contents, row-major.
#[derive(Clone, Debug, PartialEq)]
pub enum TensorData {
    F32(Vec<f32>),
    I64(Vec<i64>),
    I32(Vec<i32>),
}

impl TensorData {
    pub fn dtype(&self) -> DType {
        match self {
            TensorData::F32(_) => DType::F32,
            TensorData::I64(_) => DType::I64,
            TensorData::I32(_) => DType::I32,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            TensorData::F32(v) => v.len(),
            TensorData::I64(v) => v.len(),
            TensorData::I32(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends the elements as little-endian bytes (the KServe binary tensor layout).
    pub fn write_le_bytes(&self, out: &mut Vec<u8>) {
        match self {
            TensorData::F32(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            TensorData::I64(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            TensorData::I32(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        }
    }
}

/// One named input tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: TensorData,
}

impl Tensor {
    pub fn new(name: impl Into<String>, shape: Vec<usize>, data: TensorData) -> Self {
        Tensor { name: name.into(), shape, data }
    }
}

/// One batch of inputs: a tensor per model input, all with the same first (batch) dimension.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InputData {
    pub tensors: Vec<Tensor>,
}

/// How random inputs are drawn by [`InferenceBackend::prepare`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RandomInputs {
    /// Seed of the `backend.inputs` stream (indexed by batch size, so every batch size gets
    /// its own reproducible data).
    pub seed: u64,
    /// Integer inputs (token ids) are drawn uniformly from `0..vocab_size`; inputs whose name
    /// contains `mask` are all ones and `token_type` all zeros.
    pub vocab_size: i64,
    /// Size used for dynamic dimensions other than the batch dimension (e.g. sequence length).
    pub dynamic_dim: usize,
}

impl Default for RandomInputs {
    fn default() -> Self {
        RandomInputs { seed: 0, vocab_size: 1000, dynamic_dim: 32 }
    }
}

impl InputData {
    /// Seeded random inputs of `batch_size` rows shaped from the model's input specs.
    pub fn random(model: &str, specs: &[TensorSpec], batch_size: usize, opts: &RandomInputs) -> Result<InputData, BackendError> {
        if batch_size == 0 {
            return Err(BackendError::InvalidRequest { model: model.into(), message: "batch size must be at least 1".into() });
        }
        let mut rng = RngStreams::new(opts.seed).stream_indexed("backend.inputs", batch_size as u64);
        let mut tensors = Vec::with_capacity(specs.len());
        for spec in specs {
            let mut shape = Vec::with_capacity(spec.shape.len());
            for (i, &d) in spec.shape.iter().enumerate() {
                shape.push(match (i, d) {
                    (0, d) if d < 0 => batch_size,
                    (_, d) if d < 0 => opts.dynamic_dim,
                    (0, d) if d as usize != batch_size => {
                        return Err(BackendError::InputMismatch {
                            model: model.into(),
                            expected: spec.to_string(),
                            got: format!("batch size {batch_size} (the batch dimension is fixed)"),
                        });
                    }
                    (_, d) => d as usize,
                });
            }
            let n: usize = shape.iter().product();
            let lname = spec.name.to_ascii_lowercase();
            let int_value = |rng: &mut crate::core::rng::StreamRng| -> i64 {
                if lname.contains("mask") {
                    1
                } else if lname.contains("token_type") {
                    0
                } else {
                    rng.random_range(0..opts.vocab_size.max(1))
                }
            };
            let data = match spec.dtype {
                DType::F32 => TensorData::F32((0..n).map(|_| rng.random::<f32>()).collect()),
                DType::I64 => TensorData::I64((0..n).map(|_| int_value(&mut rng)).collect()),
                DType::I32 => TensorData::I32((0..n).map(|_| int_value(&mut rng) as i32).collect()),
                ref other => {
                    return Err(BackendError::InputMismatch {
                        model: model.into(),
                        expected: spec.to_string(),
                        got: format!("no way to generate {other} data (supported: FP32, INT64, INT32)"),
                    });
                }
            };
            tensors.push(Tensor { name: spec.name.clone(), shape, data });
        }
        Ok(InputData { tensors })
    }

    /// The batch size (first dimension of the first tensor), 0 when empty.
    pub fn batch_size(&self) -> usize {
        self.tensors.first().and_then(|t| t.shape.first().copied()).unwrap_or(0)
    }

    /// Checks the tensors against the model's input specs (names, types, ranks, fixed
    /// dimensions, element counts, one batch size) and returns the batch size.
    pub fn validate(&self, model: &str, specs: &[TensorSpec]) -> Result<usize, BackendError> {
        let given = || {
            let v: Vec<String> = self.tensors.iter().map(|t| format!("`{}` {} {}", t.name, t.data.dtype(), fmt_dims(&t.shape))).collect();
            if v.is_empty() { "no tensors".to_string() } else { v.join(", ") }
        };
        for t in &self.tensors {
            if !specs.iter().any(|s| s.name == t.name) {
                let expected: Vec<String> = specs.iter().map(|s| s.to_string()).collect();
                return Err(BackendError::InputMismatch {
                    model: model.into(),
                    expected: expected.join(", "),
                    got: format!("unknown input `{}` (given: {})", t.name, given()),
                });
            }
        }
        let mut batch = None;
        for spec in specs {
            let Some(t) = self.tensors.iter().find(|t| t.name == spec.name) else {
                return Err(BackendError::InputMismatch {
                    model: model.into(),
                    expected: spec.to_string(),
                    got: format!("no such tensor (given: {})", given()),
                });
            };
            let mismatch = |why: &str| BackendError::InputMismatch {
                model: model.into(),
                expected: spec.to_string(),
                got: format!("{} {}{}", t.data.dtype(), fmt_dims(&t.shape), why),
            };
            if t.data.dtype() != spec.dtype || t.shape.len() != spec.shape.len() {
                return Err(mismatch(""));
            }
            if spec.shape.iter().zip(&t.shape).any(|(&s, &g)| s >= 0 && s as usize != g) {
                return Err(mismatch(""));
            }
            let n: usize = t.shape.iter().product();
            if n != t.data.len() {
                return Err(mismatch(&format!(" with {} elements instead of {n}", t.data.len())));
            }
            let b = t.shape.first().copied().unwrap_or(1);
            if b == 0 {
                return Err(mismatch(" (empty batch)"));
            }
            match batch {
                None => batch = Some(b),
                Some(b0) if b0 != b => return Err(mismatch(&format!(" (batch size {b} differs from {b0} of the other inputs)"))),
                _ => {}
            }
        }
        batch.ok_or_else(|| BackendError::InvalidRequest { model: model.into(), message: "the model has no inputs".into() })
    }
}

/// How raw model outputs become class probabilities.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Probabilities {
    /// Rows that already are distributions (entries in [0,1] summing to 1 ± 1e-3) are kept,
    /// anything else goes through a softmax.
    #[default]
    Auto,
    /// Always apply a softmax (the model emits logits).
    Softmax,
    /// Use the output as is.
    AsIs,
}

/// Turns a row-major `rows × cols` output into per-row class probabilities.
pub fn to_probabilities(mut raw: Vec<f32>, cols: usize, mode: Probabilities) -> Vec<f32> {
    if cols == 0 {
        return raw;
    }
    for row in raw.chunks_mut(cols) {
        let is_dist = || row.iter().all(|&p| (0.0..=1.0).contains(&p)) && (row.iter().map(|&p| p as f64).sum::<f64>() - 1.0).abs() <= 1e-3;
        let soft = match mode {
            Probabilities::Softmax => true,
            Probabilities::AsIs => false,
            Probabilities::Auto => !is_dist(),
        };
        if soft {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0f64;
            for x in row.iter_mut() {
                *x = (*x - max).exp();
                sum += *x as f64;
            }
            row.iter_mut().for_each(|x| *x = (*x as f64 / sum) as f32);
        }
    }
    raw
}

/// Result of one batch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InferOutput {
    pub batch_size: usize,
    pub num_classes: usize,
    /// Row-major `batch_size × num_classes` class probabilities.
    pub probs: Vec<f32>,
    /// Duration of the call as the backend measured it (see the module docs).
    pub elapsed_ms: f64,
}

impl InferOutput {
    /// Class probabilities of sample `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.probs[i * self.num_classes..(i + 1) * self.num_classes]
    }
    /// Predicted class of sample `i` (first maximum).
    pub fn argmax(&self, i: usize) -> usize {
        let row = self.row(i);
        (0..row.len()).fold(0, |best, j| if row[j] > row[best] { j } else { best })
    }
    /// Probability of the predicted class of sample `i`.
    pub fn confidence(&self, i: usize) -> f32 {
        self.row(i)[self.argmax(i)]
    }
}

/// Errors of all backends. Messages name the library, file, URL or model involved.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("ONNX Runtime library not found at {}; run scripts/setup-ort.sh (or set BASIN_ORT_LIB)", path.display())]
    LibraryNotFound { path: PathBuf },
    #[error("cannot load the ONNX Runtime library {}: {message}", path.display())]
    LibraryLoad { path: PathBuf, message: String },
    #[error("ONNX Runtime is already loaded from {} in this process; cannot also load {}", loaded.display(), requested.display())]
    LibraryConflict { loaded: PathBuf, requested: PathBuf },
    #[error("ONNX model not found: {}", path.display())]
    ModelNotFound { path: PathBuf },
    #[error("cannot load ONNX model {} (missing or corrupt?): {message}", path.display())]
    ModelLoad { path: PathBuf, message: String },
    #[error("{provider} execution provider unavailable: {reason}")]
    ProviderUnavailable { provider: String, reason: String },
    #[error("model `{model}` expects input {expected}, got {got}")]
    InputMismatch { model: String, expected: String, got: String },
    #[error("model `{model}`: {message}")]
    InvalidRequest { model: String, message: String },
    #[error("model `{model}`: infer called before prepare or set_inputs")]
    NotPrepared { model: String },
    #[error("model `{model}` failed: {message}")]
    Runtime { model: String, message: String },
    #[error("model `{model}` returned an unusable output: {message}")]
    Output { model: String, message: String },
    #[error("Triton at {url} is not reachable ({reason})")]
    Unreachable { url: String, reason: String },
    #[error("timed out after {} waiting for {what} from {url}", fmt_secs(*.after))]
    Timeout { url: String, what: String, after: Duration },
    #[error("server returned {status}: {message} ({url})")]
    Http { url: String, status: u16, message: String },
    #[error("invalid response from {url}: {message}")]
    Protocol { url: String, message: String },
    #[error("model `{model}` is not ready on Triton at {url}")]
    ModelNotReady { url: String, model: String },
}

fn fmt_secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 { format!("{s:.0} s") } else { format!("{s} s") }
}

/// Waits on behalf of the [`MockBackend`]; tests pass [`NoSleep`], demos [`ThreadSleep`].
pub trait Sleeper: Send {
    fn sleep(&mut self, d: Duration);
}

/// Does not wait at all (the reported latency is still the configured one).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoSleep;
impl Sleeper for NoSleep {
    fn sleep(&mut self, _: Duration) {}
}

/// Waits with `std::thread::sleep`.
#[derive(Clone, Copy, Debug, Default)]
pub struct ThreadSleep;
impl Sleeper for ThreadSleep {
    fn sleep(&mut self, d: Duration) {
        std::thread::sleep(d)
    }
}

/// Latency model of the [`MockBackend`].
#[derive(Clone, Debug, PartialEq)]
pub enum MockLatency {
    /// `base + per_item × batch_size`.
    Linear { base: Duration, per_item: Duration },
    /// Exact latency per batch size; other batch sizes are an error.
    Table(BTreeMap<usize, Duration>),
}

impl MockLatency {
    fn for_batch(&self, b: usize) -> Option<Duration> {
        match self {
            MockLatency::Linear { base, per_item } => Some(*base + *per_item * b as u32),
            MockLatency::Table(t) => t.get(&b).copied(),
        }
    }
}

/// A deterministic backend: latency from a [`MockLatency`], probabilities a fixed function of
/// the input bytes of each row (so equal samples always get equal answers).
pub struct MockBackend {
    info: BackendInfo,
    specs: Vec<TensorSpec>,
    num_classes: usize,
    latency: MockLatency,
    sleeper: Box<dyn Sleeper>,
    random: RandomInputs,
    inputs: Option<InputData>,
    fail_every: Option<u64>,
    calls: u64,
}

impl MockBackend {
    /// A mock of `model` with the given inputs and `num_classes` output classes.
    pub fn new(model: &str, specs: Vec<TensorSpec>, num_classes: usize, latency: MockLatency) -> Self {
        MockBackend {
            info: BackendInfo {
                backend: "mock".into(),
                model: model.into(),
                device: "cpu".into(),
                provider: "mock".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                input_path: "preallocated".into(),
            },
            specs,
            num_classes: num_classes.max(1),
            latency,
            sleeper: Box::new(NoSleep),
            random: RandomInputs::default(),
            inputs: None,
            fail_every: None,
            calls: 0,
        }
    }

    /// A classifier with one `input` FP32 `[-1, features]`.
    pub fn classifier(model: &str, features: usize, num_classes: usize, latency: MockLatency) -> Self {
        let spec = TensorSpec { name: "input".into(), dtype: DType::F32, shape: vec![-1, features as i64] };
        Self::new(model, vec![spec], num_classes, latency)
    }

    pub fn with_sleeper(mut self, sleeper: Box<dyn Sleeper>) -> Self {
        self.sleeper = sleeper;
        self
    }

    pub fn with_random_inputs(mut self, random: RandomInputs) -> Self {
        self.random = random;
        self
    }

    /// Every `n`-th call to `infer` fails with [`BackendError::Runtime`] (for error paths).
    pub fn with_fail_every(mut self, n: u64) -> Self {
        self.fail_every = Some(n.max(1));
        self
    }

    /// Number of `infer` calls so far.
    pub fn calls(&self) -> u64 {
        self.calls
    }
}

fn fnv1a64(h: &mut u64, bytes: &[u8]) {
    for b in bytes {
        *h ^= *b as u64;
        *h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
}

impl InferenceBackend for MockBackend {
    fn info(&self) -> &BackendInfo {
        &self.info
    }
    fn inputs(&self) -> &[TensorSpec] {
        &self.specs
    }

    fn prepare(&mut self, batch_size: usize) -> Result<(), BackendError> {
        self.inputs = Some(InputData::random(&self.info.model, &self.specs, batch_size, &self.random)?);
        Ok(())
    }

    fn set_inputs(&mut self, data: &InputData) -> Result<(), BackendError> {
        data.validate(&self.info.model, &self.specs)?;
        self.inputs = Some(data.clone());
        Ok(())
    }

    fn infer(&mut self) -> Result<InferOutput, BackendError> {
        let model = &self.info.model;
        let inputs = self.inputs.as_ref().ok_or_else(|| BackendError::NotPrepared { model: model.clone() })?;
        self.calls += 1;
        if self.fail_every.is_some_and(|n| self.calls.is_multiple_of(n)) {
            return Err(BackendError::Runtime { model: model.clone(), message: format!("injected failure on call {}", self.calls) });
        }
        let b = inputs.batch_size();
        let latency = self.latency.for_batch(b).ok_or_else(|| BackendError::InvalidRequest {
            model: model.clone(),
            message: format!("the mock latency table has no entry for batch size {b}"),
        })?;
        let mut logits = Vec::with_capacity(b * self.num_classes);
        for i in 0..b {
            let mut h = 0xcbf2_9ce4_8422_2325u64;
            for t in &inputs.tensors {
                let mut bytes = Vec::new();
                t.data.write_le_bytes(&mut bytes);
                let row = bytes.len() / b.max(1);
                fnv1a64(&mut h, &bytes[i * row..(i + 1) * row]);
            }
            for c in 0..self.num_classes {
                let z = splitmix64(h ^ splitmix64(c as u64));
                logits.push(((z >> 40) as f32 / (1u64 << 24) as f32) * 4.0);
            }
        }
        self.sleeper.sleep(latency);
        Ok(InferOutput {
            batch_size: b,
            num_classes: self.num_classes,
            probs: to_probabilities(logits, self.num_classes, Probabilities::Softmax),
            elapsed_ms: latency.as_secs_f64() * 1e3,
        })
    }
}

/// A model runtime that runs one batch at a time on inputs it keeps between calls.
pub trait InferenceBackend: Send {
    /// What runs where.
    fn info(&self) -> &BackendInfo;
    /// The model's inputs (names, types, shapes with `-1` for dynamic dimensions).
    fn inputs(&self) -> &[TensorSpec];
    /// Allocates seeded random inputs of `batch_size` rows and keeps them for `infer`.
    fn prepare(&mut self, batch_size: usize) -> Result<(), BackendError>;
    /// Replaces the kept inputs with real samples (validated against [`Self::inputs`]).
    fn set_inputs(&mut self, data: &InputData) -> Result<(), BackendError>;
    /// Runs one batch on the kept inputs.
    fn infer(&mut self) -> Result<InferOutput, BackendError>;
    /// Names the next `infer` with the gateway's request id, for a server that logs it (KServe
    /// v2's `id`, in Triton's per-request trace); backends without one ignore it.
    fn set_request_id(&mut self, _id: Option<u64>) {}
}
