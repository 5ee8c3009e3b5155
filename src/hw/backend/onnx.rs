//! ONNX Runtime backend through the `ort` crate, with the runtime loaded at run time.
//!
//! Nothing is downloaded at build or run time: the shared library is the one shipped in the
//! `onnxruntime` PyPI wheel (`onnxruntime/capi/libonnxruntime.so.1.31.1`, installed by
//! `scripts/setup-ort.sh` as `.cache/onnxruntime/libonnxruntime.so`), opened with
//! `ort::init_from`, which reports a missing or incompatible library as an error rather than a
//! panic. ONNX Runtime can be loaded once per process; [`init_runtime`] remembers the path and
//! refuses a second, different one.
//!
//! Inputs are kept in ONNX Runtime tensors allocated once per batch size; by default they are
//! bound to the session through the IoBinding API
//! (<https://onnxruntime.ai/docs/performance/tune-performance/iobinding.html>), so a
//! calibration loop of `infer` calls neither copies nor re-binds inputs, and the measured time
//! is `RunWithBinding` itself. On the CPU, outputs are bound to CPU memory and copied out once
//! per call (a `batch × classes` matrix).
//!
//! On CUDA the inputs are copied to the GPU once, when they are prepared, and the output is
//! bound to GPU memory: the timed `RunWithBinding` is the model on the device with no PCIe
//! transfer in it (`input_path = "io_binding: inputs and outputs on cuda:N"`). The output is
//! copied back to the host after the clock stops, for the probabilities.
//!
//! The CUDA execution provider needs the `cuda` feature (it forwards to `ort/cuda`) and the
//! library of the `onnxruntime-gpu` wheel with CUDA 13 and cuDNN 9 on the library path; when
//! asked for and unusable, opening fails with [`BackendError::ProviderUnavailable`] saying why.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use ort::environment::Environment;
use ort::memory::{AllocationDevice, AllocatorType, MemoryInfo, MemoryType};
use ort::session::{IoBinding, Session, SessionInputValue};
use ort::value::{DynTensorValueType, DynValue, Tensor as OrtTensor, TensorElementType, ValueType};
use serde::{Deserialize, Serialize};

use super::{
    BackendError, BackendInfo, DType, InferOutput, InferenceBackend, InputData, Probabilities, RandomInputs, TensorData, TensorSpec,
    to_probabilities,
};

/// Where the session runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Provider {
    #[default]
    Cpu,
    Cuda {
        device: i32,
    },
}

/// Options of [`OrtBackend::open`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OrtOptions {
    /// Intra-op threads; 0 leaves ONNX Runtime's default (one per physical core).
    pub threads: usize,
    pub provider: Provider,
    /// Bind inputs once through IoBinding (default) instead of passing them to every `run`.
    pub io_binding: bool,
    /// Output holding the class scores; `None` takes the first output.
    pub output: Option<String>,
    pub probabilities: Probabilities,
    pub random: RandomInputs,
}

impl Default for OrtOptions {
    fn default() -> Self {
        OrtOptions {
            threads: 0,
            provider: Provider::Cpu,
            io_binding: true,
            output: None,
            probabilities: Probabilities::Auto,
            random: RandomInputs::default(),
        }
    }
}

/// The loaded library: its canonical path, the process environment and its version.
static RUNTIME: Mutex<Option<(PathBuf, Environment, String)>> = Mutex::new(None);

/// Loads ONNX Runtime from `lib` (once per process) and returns the process environment.
/// Calling it again with the same library is free; with another library it is an error.
pub fn init_runtime(lib: &Path) -> Result<Environment, BackendError> {
    init(lib).map(|(env, _)| env)
}

fn init(lib: &Path) -> Result<(Environment, String), BackendError> {
    if !lib.is_file() {
        return Err(BackendError::LibraryNotFound { path: lib.to_path_buf() });
    }
    let canonical = lib.canonicalize().map_err(|e| BackendError::LibraryLoad { path: lib.to_path_buf(), message: e.to_string() })?;
    let mut guard = RUNTIME.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((loaded, env, version)) = guard.as_ref() {
        if *loaded == canonical {
            return Ok((env.clone(), version.clone()));
        }
        return Err(BackendError::LibraryConflict { loaded: loaded.clone(), requested: canonical });
    }
    let load_err = |message: String| BackendError::LibraryLoad { path: canonical.clone(), message };
    let env =
        ort::init_from(&canonical).map_err(|e| load_err(e.to_string()))?.with_name("basin").build().map_err(|e| load_err(e.to_string()))?;
    let version = runtime_version(&canonical);
    *guard = Some((canonical, env.clone(), version.clone()));
    Ok((env, version))
}

/// The version string of the library (e.g. `1.31.1`), from `OrtGetApiBase()->GetVersionString()`
/// (the build info string of the PyPI wheels says only `git-branch=HEAD`).
fn runtime_version(lib: &Path) -> String {
    #[repr(C)]
    struct ApiBase {
        get_api: unsafe extern "C" fn(u32) -> *const std::ffi::c_void,
        get_version_string: unsafe extern "C" fn() -> *const std::ffi::c_char,
    }
    // SAFETY: the library is already loaded and validated by `ort::init_from` (dlopen only takes
    // another reference); `OrtGetApiBase` has this signature in every ONNX Runtime release and
    // returns a pointer to a static struct whose version string is a static NUL-terminated buffer.
    unsafe {
        let Ok(handle) = libloading::Library::new(lib) else { return "unknown".into() };
        let Ok(get_base) = handle.get::<unsafe extern "C" fn() -> *const ApiBase>(b"OrtGetApiBase") else { return "unknown".into() };
        let base = get_base();
        if base.is_null() {
            return "unknown".into();
        }
        let v = ((*base).get_version_string)();
        if v.is_null() { "unknown".into() } else { std::ffi::CStr::from_ptr(v).to_string_lossy().into_owned() }
    }
}

fn dtype_of(ty: TensorElementType) -> DType {
    match ty {
        TensorElementType::Float32 => DType::F32,
        TensorElementType::Float16 => DType::F16,
        TensorElementType::Float64 => DType::F64,
        TensorElementType::Int64 => DType::I64,
        TensorElementType::Int32 => DType::I32,
        TensorElementType::Int8 => DType::I8,
        TensorElementType::Uint8 => DType::U8,
        TensorElementType::Bool => DType::Bool,
        other => DType::Other(format!("{other:?}")),
    }
}

fn spec_of(model: &str, name: &str, ty: &ValueType) -> Result<TensorSpec, BackendError> {
    match ty {
        ValueType::Tensor { ty, shape, .. } => Ok(TensorSpec { name: name.to_string(), dtype: dtype_of(*ty), shape: shape.to_vec() }),
        other => Err(BackendError::InvalidRequest {
            model: model.into(),
            message: format!("`{name}` is a {other:?}, only tensors are supported"),
        }),
    }
}

/// A session on one ONNX model with inputs kept between calls.
pub struct OrtBackend {
    session: Session,
    binding: Option<IoBinding>,
    info: BackendInfo,
    specs: Vec<TensorSpec>,
    output: String,
    opts: OrtOptions,
    /// Random inputs per batch size, in `specs` order.
    prepared: HashMap<usize, Vec<DynValue>>,
    /// Inputs given by `set_inputs`.
    provided: Option<Vec<DynValue>>,
    /// Which inputs `infer` runs on: `Some(b)` = prepared[b], `None` = provided.
    current: Option<Option<usize>>,
    bound: Option<Option<usize>>,
}

impl OrtBackend {
    /// Loads the runtime from `lib` (see [`init_runtime`]) and opens `model` on the provider.
    pub fn open(lib: &Path, model: &Path, opts: OrtOptions) -> Result<Self, BackendError> {
        let (env, version) = init(lib)?;
        if !model.is_file() {
            return Err(BackendError::ModelNotFound { path: model.to_path_buf() });
        }
        let name = model.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| model.display().to_string());
        let load_err = |message: String| BackendError::ModelLoad { path: model.to_path_buf(), message };
        let mut builder = Session::builder(&env).map_err(|e| load_err(e.to_string()))?;
        if opts.threads > 0 {
            builder = builder.with_intra_threads(opts.threads).map_err(|e| load_err(e.to_string()))?;
        }
        let (device, provider) = match opts.provider {
            Provider::Cpu => ("cpu".to_string(), "CPUExecutionProvider".to_string()),
            Provider::Cuda { device } => {
                builder = register_cuda(builder, device, lib)?;
                (format!("cuda:{device}"), "CUDAExecutionProvider".to_string())
            }
        };
        let session = builder.commit_from_file(model).map_err(|e| load_err(e.to_string()))?;
        let specs = session.inputs().iter().map(|o| spec_of(&name, o.name(), o.dtype())).collect::<Result<Vec<_>, _>>()?;
        let outputs = session.outputs().iter().map(|o| spec_of(&name, o.name(), o.dtype())).collect::<Result<Vec<_>, _>>()?;
        let out = match &opts.output {
            Some(want) => outputs.iter().find(|o| &o.name == want),
            None => outputs.first(),
        };
        let Some(out) = out else {
            let have: Vec<String> = outputs.iter().map(|o| o.to_string()).collect();
            return Err(BackendError::Output {
                model: name,
                message: format!("no output {:?} (outputs: {})", opts.output.as_deref().unwrap_or("<first>"), have.join(", ")),
            });
        };
        if out.dtype != DType::F32 {
            return Err(BackendError::Output { model: name, message: format!("output {out} is not FP32") });
        }
        let output = out.name.clone();
        let binding = if opts.io_binding { Some(session.create_binding().map_err(|e| load_err(e.to_string()))?) } else { None };
        let info = BackendInfo {
            backend: crate::spec::BackendKind::OnnxRuntime.name().into(),
            model: name,
            device,
            provider,
            version: format!("onnxruntime {version}"),
            input_path: match (opts.io_binding, opts.provider) {
                (false, _) => "preallocated".into(),
                (true, Provider::Cpu) => "io_binding".into(),
                (true, Provider::Cuda { device }) => format!("io_binding: inputs and outputs on cuda:{device}"),
            },
        };
        Ok(OrtBackend { session, binding, info, specs, output, opts, prepared: HashMap::new(), provided: None, current: None, bound: None })
    }

    /// The model's outputs as the session describes them.
    pub fn outputs(&self) -> Vec<TensorSpec> {
        self.session.outputs().iter().filter_map(|o| spec_of(&self.info.model, o.name(), o.dtype()).ok()).collect()
    }

    fn to_values(&self, data: &InputData) -> Result<Vec<DynValue>, BackendError> {
        let rt = |e: ort::Error| BackendError::Runtime { model: self.info.model.clone(), message: e.to_string() };
        self.specs
            .iter()
            .map(|spec| {
                let t = data.tensors.iter().find(|t| t.name == spec.name).ok_or_else(|| BackendError::InputMismatch {
                    model: self.info.model.clone(),
                    expected: spec.to_string(),
                    got: "no such tensor".into(),
                })?;
                let shape = t.shape.clone();
                let host = match &t.data {
                    TensorData::F32(v) => OrtTensor::from_array((shape, v.clone())).map_err(rt)?.upcast(),
                    TensorData::I64(v) => OrtTensor::from_array((shape, v.clone())).map_err(rt)?.upcast(),
                    TensorData::I32(v) => OrtTensor::from_array((shape, v.clone())).map_err(rt)?.upcast(),
                };
                // Bound inputs live where the model runs (see the module docs).
                Ok(match self.device_memory() {
                    Some((dev, id)) => host.to(dev, id).map_err(rt)?.into_dyn(),
                    None => host.into_dyn(),
                })
            })
            .collect()
    }

    /// The GPU memory inputs and outputs are bound to: CUDA with IoBinding; `None`: host memory.
    fn device_memory(&self) -> Option<(AllocationDevice<'static>, i32)> {
        match self.opts.provider {
            Provider::Cuda { device } if self.opts.io_binding => Some((AllocationDevice::CUDA, device)),
            _ => None,
        }
    }
}

#[cfg(feature = "cuda")]
fn register_cuda(
    builder: ort::session::builder::SessionBuilder,
    device: i32,
    lib: &Path,
) -> Result<ort::session::builder::SessionBuilder, BackendError> {
    use ort::ep::ExecutionProvider;
    let unavailable = |reason: String| BackendError::ProviderUnavailable { provider: "CUDA".into(), reason };
    match ort::ep::CUDA::is_available() {
        Ok(true) => {}
        Ok(false) => {
            return Err(unavailable(format!(
                "the ONNX Runtime library at {} was built without CUDA; use the library of the onnxruntime-gpu wheel",
                lib.display()
            )));
        }
        Err(e) => return Err(unavailable(e.to_string())),
    }
    builder.with_execution_providers([ort::ep::CUDA::default().with_device_id(device).build().error_on_failure()]).map_err(|e| {
        unavailable(format!("registering it for device {device} failed: {e} (it needs a GPU, CUDA 13 and cuDNN 9 on the library path)"))
    })
}

#[cfg(not(feature = "cuda"))]
fn register_cuda(
    _: ort::session::builder::SessionBuilder,
    _: i32,
    _: &Path,
) -> Result<ort::session::builder::SessionBuilder, BackendError> {
    Err(BackendError::ProviderUnavailable {
        provider: "CUDA".into(),
        reason: "basin was built without the `cuda` feature (rebuild with --features cuda)".into(),
    })
}

impl InferenceBackend for OrtBackend {
    fn info(&self) -> &BackendInfo {
        &self.info
    }
    fn inputs(&self) -> &[TensorSpec] {
        &self.specs
    }

    fn prepare(&mut self, batch_size: usize) -> Result<(), BackendError> {
        if !self.prepared.contains_key(&batch_size) {
            let data = InputData::random(&self.info.model, &self.specs, batch_size, &self.opts.random)?;
            let values = self.to_values(&data)?;
            self.prepared.insert(batch_size, values);
        }
        self.current = Some(Some(batch_size));
        Ok(())
    }

    fn set_inputs(&mut self, data: &InputData) -> Result<(), BackendError> {
        data.validate(&self.info.model, &self.specs)?;
        self.provided = Some(self.to_values(data)?);
        self.current = Some(None);
        self.bound = None;
        Ok(())
    }

    fn infer(&mut self) -> Result<InferOutput, BackendError> {
        let model = self.info.model.clone();
        let which = self.current.ok_or_else(|| BackendError::NotPrepared { model: model.clone() })?;
        let rt = |e: ort::Error| BackendError::Runtime { model: model.clone(), message: e.to_string() };
        if let Some(binding) = self.binding.as_mut()
            && self.bound != Some(which)
        {
            let values: &[DynValue] = match which {
                Some(b) => &self.prepared[&b],
                None => self.provided.as_deref().unwrap_or(&[]),
            };
            for (spec, v) in self.specs.iter().zip(values) {
                binding.bind_input(spec.name.as_str(), v).map_err(rt)?;
            }
            // ONNX Runtime keeps the output it allocated in the binding and reuses it on the
            // next run; a new input shape needs a fresh one.
            let memory = match self.opts.provider {
                Provider::Cuda { device } => {
                    MemoryInfo::new(AllocationDevice::CUDA, device, AllocatorType::Device, MemoryType::Default).map_err(rt)?
                }
                Provider::Cpu => MemoryInfo::default(),
            };
            binding.bind_output_to_device(self.output.as_str(), &memory).map_err(rt)?;
            self.bound = Some(which);
        }
        let on_device = self.device_memory().is_some();
        let t0 = Instant::now();
        let mut outputs = match self.binding.as_ref() {
            Some(binding) => self.session.run_binding(binding).map_err(rt)?,
            None => {
                let values: &[DynValue] = match which {
                    Some(b) => &self.prepared[&b],
                    None => self.provided.as_deref().unwrap_or(&[]),
                };
                let views: Vec<SessionInputValue<'_>> = values.iter().map(SessionInputValue::from).collect();
                self.session.run(&views[..]).map_err(rt)?
            }
        };
        let elapsed_ms = t0.elapsed().as_secs_f64() * 1e3;
        let out_err = |message: String| BackendError::Output { model: model.clone(), message };
        let value = outputs.remove(&self.output).ok_or_else(|| out_err(format!("output `{}` missing from the run", self.output)))?;
        // A device-side output comes back to the host now, after the clock stopped.
        let value = if on_device {
            value
                .downcast::<DynTensorValueType>()
                .and_then(|t| t.to(AllocationDevice::CPU, 0))
                .map_err(|e| out_err(format!("copying the output to the host: {e}")))?
                .into_dyn()
        } else {
            value
        };
        let (shape, raw) = value.try_extract_tensor::<f32>().map_err(|e| out_err(e.to_string()))?;
        let batch = shape.first().copied().unwrap_or(0).max(0) as usize;
        if batch == 0 || raw.len() % batch != 0 {
            return Err(out_err(format!("output `{}` has shape {:?}, expected [batch, classes]", self.output, shape.to_vec())));
        }
        let classes = raw.len() / batch;
        let probs = to_probabilities(raw.to_vec(), classes, self.opts.probabilities);
        Ok(InferOutput { batch_size: batch, num_classes: classes, probs, elapsed_ms })
    }
}
