//! The real backends of a replay: ONNX Runtime in process (Path A, feature `ort`) and Triton
//! through the KServe v2 client (Path B, feature `triton`). Where they are found comes from the
//! experiment's optional `[replay]` section (extension keys) or the defaults below.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::BackendFactory;
use crate::hw::backend::{BackendError, InferenceBackend};
use crate::spec::BackendKind;

fn default_model_dir() -> String {
    ".cache/models".into()
}
fn default_triton() -> String {
    "http://127.0.0.1:8000".into()
}
fn default_ort_lib() -> String {
    std::env::var("BASIN_ORT_LIB").unwrap_or_else(|_| ".cache/onnxruntime/libonnxruntime.so".into())
}
fn default_threads() -> usize {
    1
}
fn default_timeout() -> f64 {
    10.0
}
fn default_drain() -> f64 {
    30.0
}

/// `[replay]` in an experiment file (all optional).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplaySection {
    /// Where `<model>.onnx` files are (relative paths: to the working directory).
    #[serde(default = "default_model_dir")]
    pub model_dir: String,
    /// The labelled data set (default `<model_dir>/digits_test.csv`, when it exists).
    #[serde(default)]
    pub dataset: Option<String>,
    #[serde(default = "default_triton")]
    pub triton_url: String,
    /// Where Triton's statistics come from (default: `triton_url`).
    #[serde(default)]
    pub triton_stats_url: Option<String>,
    #[serde(default = "default_ort_lib")]
    pub ort_lib: String,
    /// Intra-op threads of every in-process ONNX Runtime session.
    #[serde(default = "default_threads")]
    pub ort_threads: usize,
    /// Per-request timeout towards Triton (seconds): a stalled server fails requests after it.
    #[serde(default = "default_timeout")]
    pub request_timeout_s: f64,
    /// Time in-flight requests get after the last arrival (seconds).
    #[serde(default = "default_drain")]
    pub drain_timeout_s: f64,
    /// Client threads per Triton server (default 2 × instances × max_batch_size, at least 8).
    #[serde(default)]
    pub client_threads: Option<usize>,
    /// The energy meter (`kind = "auto" | "rapl" | "nvml" | "estimate"`, as `hw::meter::MeterChoice`).
    #[serde(default)]
    pub meter: crate::hw::meter::MeterChoice,
    /// The Triton server's pid file (`scripts/start-triton.sh` writes
    /// `$BASIN_CACHE/triton/triton.pid`): with the CPU-time estimate meter, the CPU time of the
    /// server's whole session is charged too, as `basin calibrate` does for Triton points (so
    /// that replay energy and cost-table energy cover the same processes). Default: not set
    /// (this process only).
    #[serde(default)]
    pub server_pid_file: Option<String>,
}

impl Default for ReplaySection {
    fn default() -> Self {
        toml::from_str("").expect("all keys have defaults")
    }
}

/// Opens real backends.
pub struct RealBackends {
    pub model_dir: PathBuf,
    pub triton_url: String,
    pub triton_stats_url: String,
    pub ort_lib: PathBuf,
    pub ort_threads: usize,
    pub request_timeout: Duration,
}

impl RealBackends {
    pub fn new(sec: &ReplaySection, base: &Path) -> Self {
        let abs = |p: &str| {
            let p = PathBuf::from(p);
            if p.is_absolute() { p } else { base.join(p) }
        };
        RealBackends {
            model_dir: abs(&sec.model_dir),
            triton_url: sec.triton_url.clone(),
            triton_stats_url: sec.triton_stats_url.clone().unwrap_or_else(|| sec.triton_url.clone()),
            ort_lib: abs(&sec.ort_lib),
            ort_threads: sec.ort_threads,
            request_timeout: Duration::from_secs_f64(sec.request_timeout_s.max(0.001)),
        }
    }

    #[cfg(feature = "ort")]
    fn open_ort(&self, model: &str) -> Result<Box<dyn InferenceBackend>, BackendError> {
        use crate::hw::backend::onnx::{OrtBackend, OrtOptions};
        let opts = OrtOptions { threads: self.ort_threads, io_binding: false, ..OrtOptions::default() };
        Ok(Box::new(OrtBackend::open(&self.ort_lib, &self.model_dir.join(format!("{model}.onnx")), opts)?))
    }

    #[cfg(not(feature = "ort"))]
    fn open_ort(&self, model: &str) -> Result<Box<dyn InferenceBackend>, BackendError> {
        Err(BackendError::Runtime {
            model: model.into(),
            message: "basin was built without the `ort` feature (rebuild with --features ort,triton)".into(),
        })
    }

    #[cfg(feature = "triton")]
    fn open_triton(&self, model: &str) -> Result<Box<dyn InferenceBackend>, BackendError> {
        use crate::hw::backend::triton::{Timeouts, TritonBackend, TritonOptions};
        let opts = TritonOptions {
            timeouts: Timeouts { connect: Duration::from_secs(2), request: self.request_timeout },
            ..TritonOptions::default()
        };
        Ok(Box::new(TritonBackend::open(&self.triton_url, model, opts)?))
    }

    #[cfg(not(feature = "triton"))]
    fn open_triton(&self, model: &str) -> Result<Box<dyn InferenceBackend>, BackendError> {
        Err(BackendError::Runtime {
            model: model.into(),
            message: "basin was built without the `triton` feature (rebuild with --features ort,triton)".into(),
        })
    }
}

impl BackendFactory for RealBackends {
    fn open(&self, model: &str, backend: &str) -> Result<Box<dyn InferenceBackend>, BackendError> {
        match BackendKind::of(backend) {
            Some(BackendKind::OnnxRuntime) => self.open_ort(model),
            Some(BackendKind::Triton) => self.open_triton(model),
            None => Err(BackendError::InvalidRequest {
                model: model.into(),
                message: format!("replay has no backend `{backend}` (use {})", BackendKind::ALLOWED),
            }),
        }
    }

    #[cfg(feature = "triton")]
    fn server_snapshot(&self, model: &str, backend: &str) -> Option<crate::hw::backend::stats::ServerSnapshot> {
        use crate::hw::backend::triton::{Timeouts, TritonClient};
        if !BackendKind::is_triton(backend) {
            return None;
        }
        let c = TritonClient::new(&self.triton_stats_url, Timeouts { connect: Duration::from_secs(2), request: Duration::from_secs(5) })
            .ok()?;
        match c.model_stats(model) {
            Ok(s) => Some((&s).into()),
            Err(e) => {
                tracing::warn!("Triton statistics of `{model}` unavailable: {e}");
                None
            }
        }
    }
}
