//! Real ONNX Runtime inference through the `ort` backend.
//!
//! The library comes from `BASIN_ORT_LIB` or `.cache/onnxruntime/libonnxruntime.so` (written by
//! `scripts/setup-ort.sh`), the project's models from `BASIN_MODELS_DIR` or `.cache/models`
//! (`scripts/build_models.py`). When they are missing the tests print a notice and pass, unless
//! `BASIN_REQUIRE_HW=1` (CI), where they fail. Two tiny models are written by the tests
//! themselves (ONNX protobuf encoded below), so the runtime is exercised whenever the library
//! is present, and their outputs are checked against the same maths done in Rust.
#![cfg(feature = "ort")]

use std::path::{Path, PathBuf};

use basin::hw::backend::onnx::{OrtBackend, OrtOptions, Provider, init_runtime};
use basin::hw::backend::*;

fn require_hw() -> bool {
    std::env::var("BASIN_REQUIRE_HW").is_ok_and(|v| v == "1")
}

fn from_env_or_cache(var: &str, rel: &str) -> PathBuf {
    std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(rel))
}

/// The ONNX Runtime library, or None (after a notice) when it is absent and not required.
fn ort_lib() -> Option<PathBuf> {
    let p = from_env_or_cache("BASIN_ORT_LIB", ".cache/onnxruntime/libonnxruntime.so");
    if p.is_file() {
        return Some(p);
    }
    let msg = format!("ONNX Runtime library not found at {} (set BASIN_ORT_LIB or run scripts/setup-ort.sh)", p.display());
    assert!(!require_hw(), "BASIN_REQUIRE_HW=1: {msg}");
    eprintln!("skipping: {msg}");
    None
}

// ---- a minimal ONNX (protobuf) writer: just the fields these models need -----------------

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}
fn int_field(out: &mut Vec<u8>, field: u64, v: i64) {
    varint(out, field << 3);
    varint(out, v as u64);
}
fn bytes_field(out: &mut Vec<u8>, field: u64, b: &[u8]) {
    varint(out, (field << 3) | 2);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

const FLOAT: i64 = 1;
const INT64: i64 = 7;

enum Dim<'a> {
    Fixed(i64),
    Param(&'a str),
}

/// TensorProto with raw little-endian data.
fn initializer(name: &str, dims: &[i64], elem: i64, raw: &[u8]) -> Vec<u8> {
    let mut t = Vec::new();
    dims.iter().for_each(|&d| int_field(&mut t, 1, d));
    int_field(&mut t, 2, elem);
    bytes_field(&mut t, 8, name.as_bytes());
    bytes_field(&mut t, 9, raw);
    t
}

/// ValueInfoProto of a tensor.
fn value_info(name: &str, elem: i64, dims: &[Dim]) -> Vec<u8> {
    let mut shape = Vec::new();
    for d in dims {
        let mut dim = Vec::new();
        match d {
            Dim::Fixed(v) => int_field(&mut dim, 1, *v),
            Dim::Param(p) => bytes_field(&mut dim, 2, p.as_bytes()),
        }
        bytes_field(&mut shape, 1, &dim);
    }
    let mut tensor = Vec::new();
    int_field(&mut tensor, 1, elem);
    bytes_field(&mut tensor, 2, &shape);
    let mut ty = Vec::new();
    bytes_field(&mut ty, 1, &tensor);
    let mut vi = Vec::new();
    bytes_field(&mut vi, 1, name.as_bytes());
    bytes_field(&mut vi, 2, &ty);
    vi
}

/// NodeProto with integer attributes.
fn node(op: &str, inputs: &[&str], outputs: &[&str], int_attrs: &[(&str, i64)]) -> Vec<u8> {
    let mut n = Vec::new();
    inputs.iter().for_each(|i| bytes_field(&mut n, 1, i.as_bytes()));
    outputs.iter().for_each(|o| bytes_field(&mut n, 2, o.as_bytes()));
    bytes_field(&mut n, 4, op.as_bytes());
    for (name, v) in int_attrs {
        let mut a = Vec::new();
        bytes_field(&mut a, 1, name.as_bytes());
        int_field(&mut a, 3, *v);
        int_field(&mut a, 20, 2); // AttributeProto.INT
        bytes_field(&mut n, 5, &a);
    }
    n
}

/// ModelProto (IR 8, opset 13) around a graph.
fn model(nodes: &[Vec<u8>], inits: &[Vec<u8>], inputs: &[Vec<u8>], outputs: &[Vec<u8>]) -> Vec<u8> {
    let mut g = Vec::new();
    nodes.iter().for_each(|n| bytes_field(&mut g, 1, n));
    bytes_field(&mut g, 2, b"g");
    inits.iter().for_each(|t| bytes_field(&mut g, 5, t));
    inputs.iter().for_each(|v| bytes_field(&mut g, 11, v));
    outputs.iter().for_each(|v| bytes_field(&mut g, 12, v));
    let mut opset = Vec::new();
    bytes_field(&mut opset, 1, b"");
    int_field(&mut opset, 2, 13);
    let mut m = Vec::new();
    int_field(&mut m, 1, 8);
    bytes_field(&mut m, 2, b"basin-test");
    bytes_field(&mut m, 7, &g);
    bytes_field(&mut m, 8, &opset);
    m
}

fn le_f32(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

const FEATURES: usize = 16;
const CLASSES: usize = 4;

fn weights() -> Vec<f32> {
    (0..FEATURES * CLASSES).map(|i| ((i * 7 % 11) as f32 - 5.0) / 10.0).collect()
}

/// `probs = softmax(input[N,16] · W[16,4])`.
fn classifier_onnx() -> Vec<u8> {
    model(
        &[node("MatMul", &["input", "W"], &["logits"], &[]), node("Softmax", &["logits"], &["probs"], &[("axis", -1)])],
        &[initializer("W", &[FEATURES as i64, CLASSES as i64], FLOAT, &le_f32(&weights()))],
        &[value_info("input", FLOAT, &[Dim::Param("batch"), Dim::Fixed(FEATURES as i64)])],
        &[value_info("probs", FLOAT, &[Dim::Param("batch"), Dim::Fixed(CLASSES as i64)])],
    )
}

const VOCAB: usize = 50;
const TOKEN_CLASSES: usize = 3;

fn embedding() -> Vec<f32> {
    (0..VOCAB * TOKEN_CLASSES).map(|i| ((i * 13 % 17) as f32 - 8.0) / 8.0).collect()
}

/// `logits = Σ_t E[ids[t]] · mask[t]` over a dynamic sequence: two INT64 inputs, no softmax.
fn tokens_onnx() -> Vec<u8> {
    let dims = || [Dim::Param("batch"), Dim::Param("seq")];
    model(
        &[
            node("Gather", &["E", "input_ids"], &["emb"], &[]),
            node("Cast", &["attention_mask"], &["m"], &[("to", FLOAT)]),
            node("Unsqueeze", &["m", "last"], &["m3"], &[]),
            node("Mul", &["emb", "m3"], &["masked"], &[]),
            node("ReduceSum", &["masked", "seq_axis"], &["logits"], &[("keepdims", 0)]),
        ],
        &[
            initializer("E", &[VOCAB as i64, TOKEN_CLASSES as i64], FLOAT, &le_f32(&embedding())),
            initializer("last", &[1], INT64, &(-1i64).to_le_bytes()),
            initializer("seq_axis", &[1], INT64, &1i64.to_le_bytes()),
        ],
        &[value_info("input_ids", INT64, &dims()), value_info("attention_mask", INT64, &dims())],
        &[value_info("logits", FLOAT, &[Dim::Param("batch"), Dim::Fixed(TOKEN_CLASSES as i64)])],
    )
}

fn softmax(v: &[f32]) -> Vec<f32> {
    let m = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = v.iter().map(|x| (x - m).exp()).collect();
    let s: f32 = e.iter().sum();
    e.iter().map(|x| x / s).collect()
}

fn write_model(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn assert_close(a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() < 1e-5, "{a:?} vs {b:?}");
    }
}

// ---- tests ---------------------------------------------------------------------------------

#[test]
fn missing_library_is_a_clear_error() {
    let e = init_runtime(Path::new("/nonexistent/libonnxruntime.so")).unwrap_err().to_string();
    assert_eq!(e, "ONNX Runtime library not found at /nonexistent/libonnxruntime.so; run scripts/setup-ort.sh (or set BASIN_ORT_LIB)");
    let e = OrtBackend::open(Path::new("/nonexistent/lib.so"), Path::new("m.onnx"), OrtOptions::default()).err().unwrap();
    assert!(matches!(e, BackendError::LibraryNotFound { .. }));
}

#[test]
fn classifier_matches_the_reference_maths() {
    let Some(lib) = ort_lib() else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = write_model(dir.path(), "tiny.onnx", &classifier_onnx());
    for io_binding in [true, false] {
        let mut b = OrtBackend::open(&lib, &path, OrtOptions { threads: 1, io_binding, ..Default::default() }).unwrap();
        let info = b.info().clone();
        assert_eq!((info.backend.as_str(), info.model.as_str(), info.device.as_str()), ("onnxruntime", "tiny", "cpu"));
        assert_eq!(info.provider, "CPUExecutionProvider");
        assert!(info.version.starts_with("onnxruntime 1.") && info.version.split('.').count() == 3, "{}", info.version);
        assert_eq!(info.input_path, if io_binding { "io_binding" } else { "preallocated" });
        assert_eq!(b.inputs(), &[TensorSpec { name: "input".into(), dtype: DType::F32, shape: vec![-1, FEATURES as i64] }]);
        assert_eq!(b.outputs()[0].name, "probs");

        // Real rows: compare with softmax(x · W) computed here.
        let rows = 3;
        let x: Vec<f32> = (0..rows * FEATURES).map(|i| ((i * 5 % 9) as f32 - 4.0) / 4.0).collect();
        b.set_inputs(&InputData { tensors: vec![Tensor::new("input", vec![rows, FEATURES], TensorData::F32(x.clone()))] }).unwrap();
        let out = b.infer().unwrap();
        assert_eq!((out.batch_size, out.num_classes), (rows, CLASSES));
        assert!(out.elapsed_ms > 0.0);
        let w = weights();
        for r in 0..rows {
            let logits: Vec<f32> = (0..CLASSES).map(|c| (0..FEATURES).map(|k| x[r * FEATURES + k] * w[k * CLASSES + c]).sum()).collect();
            assert_close(out.row(r), &softmax(&logits));
        }

        // Prepared random inputs: repeated calls give identical answers, batch sizes switch.
        for bs in [1, 8, 1] {
            b.prepare(bs).unwrap();
            let a = b.infer().unwrap();
            assert_eq!(a.batch_size, bs);
            assert_eq!(b.infer().unwrap().probs, a.probs);
            for i in 0..bs {
                assert!((a.row(i).iter().sum::<f32>() - 1.0).abs() < 1e-5);
            }
        }
    }
}

#[test]
fn token_model_with_int64_inputs_and_logits_output() {
    let Some(lib) = ort_lib() else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = write_model(dir.path(), "tokens.onnx", &tokens_onnx());
    let random = RandomInputs { seed: 3, vocab_size: VOCAB as i64, dynamic_dim: 5 };
    let mut b = OrtBackend::open(&lib, &path, OrtOptions { random, ..Default::default() }).unwrap();
    assert_eq!(b.inputs().len(), 2);
    assert_eq!(b.inputs()[0].to_string(), "`input_ids` INT64 [-1,-1]");
    b.prepare(4).unwrap();
    let out = b.infer().unwrap();
    assert_eq!((out.batch_size, out.num_classes), (4, TOKEN_CLASSES));

    let ids: Vec<i64> = vec![1, 7, 49, 0, 3, 3];
    let mask: Vec<i64> = vec![1, 1, 0, 1, 1, 1];
    let data = InputData {
        tensors: vec![
            Tensor::new("attention_mask", vec![2, 3], TensorData::I64(mask.clone())),
            Tensor::new("input_ids", vec![2, 3], TensorData::I64(ids.clone())),
        ],
    };
    b.set_inputs(&data).unwrap();
    let out = b.infer().unwrap();
    let e = embedding();
    for r in 0..2 {
        let logits: Vec<f32> = (0..TOKEN_CLASSES)
            .map(|c| (0..3).map(|t| e[ids[r * 3 + t] as usize * TOKEN_CLASSES + c] * mask[r * 3 + t] as f32).sum())
            .collect();
        // The model emits logits; the backend turns them into probabilities.
        assert_close(out.row(r), &softmax(&logits));
    }
}

#[test]
fn missing_and_corrupt_models_are_clear_errors() {
    let Some(lib) = ort_lib() else { return };
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent.onnx");
    let e = OrtBackend::open(&lib, &missing, OrtOptions::default()).err().unwrap();
    assert_eq!(e.to_string(), format!("ONNX model not found: {}", missing.display()));

    let garbage = write_model(dir.path(), "garbage.onnx", b"this is not a protobuf \xff\xfe");
    let mut truncated = classifier_onnx();
    truncated.truncate(truncated.len() / 2);
    let truncated = write_model(dir.path(), "truncated.onnx", &truncated);
    let empty = write_model(dir.path(), "empty.onnx", b"");
    for p in [garbage, truncated, empty] {
        let e = OrtBackend::open(&lib, &p, OrtOptions::default()).err().unwrap();
        assert!(matches!(e, BackendError::ModelLoad { .. }), "{e:?}");
        assert!(e.to_string().starts_with(&format!("cannot load ONNX model {}", p.display())), "{e}");
    }
}

#[test]
fn mismatched_inputs_are_rejected_before_running() {
    let Some(lib) = ort_lib() else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = write_model(dir.path(), "tiny.onnx", &classifier_onnx());
    let mut b = OrtBackend::open(&lib, &path, OrtOptions::default()).unwrap();
    assert!(matches!(b.infer(), Err(BackendError::NotPrepared { .. })));
    let narrow = InputData { tensors: vec![Tensor::new("input", vec![2, 8], TensorData::F32(vec![0.0; 16]))] };
    assert_eq!(b.set_inputs(&narrow).unwrap_err().to_string(), "model `tiny` expects input `input` FP32 [-1,16], got FP32 [2,8]");
    let ints = InputData { tensors: vec![Tensor::new("input", vec![1, 16], TensorData::I64(vec![0; 16]))] };
    assert!(b.set_inputs(&ints).unwrap_err().to_string().contains("got INT64 [1,16]"));
    let renamed = InputData { tensors: vec![Tensor::new("x", vec![1, 16], TensorData::F32(vec![0.0; 16]))] };
    assert!(b.set_inputs(&renamed).unwrap_err().to_string().contains("unknown input `x`"));
    let e = OrtBackend::open(&lib, &path, OrtOptions { output: Some("nope".into()), ..Default::default() }).err().unwrap();
    assert!(e.to_string().contains("`probs` FP32"), "{e}");
}

#[test]
fn a_second_library_path_is_refused() {
    let Some(lib) = ort_lib() else { return };
    init_runtime(&lib).unwrap();
    init_runtime(&lib).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let other = write_model(dir.path(), "libother.so", b"");
    let e = init_runtime(&other).unwrap_err();
    assert!(matches!(e, BackendError::LibraryConflict { .. }), "{e:?}");
    assert!(e.to_string().contains("already loaded"), "{e}");
}

#[test]
fn cuda_when_unavailable_says_why() {
    let Some(lib) = ort_lib() else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = write_model(dir.path(), "tiny.onnx", &classifier_onnx());
    match OrtBackend::open(&lib, &path, OrtOptions { provider: Provider::Cuda { device: 0 }, ..Default::default() }) {
        Ok(mut b) => {
            // A GPU build of the library on a machine with a GPU: it must work.
            assert_eq!(b.info().device, "cuda:0");
            b.prepare(2).unwrap();
            assert_eq!(b.infer().unwrap().batch_size, 2);
        }
        Err(e) => {
            assert!(matches!(e, BackendError::ProviderUnavailable { .. }), "{e:?}");
            let msg = e.to_string();
            if cfg!(feature = "cuda") {
                assert!(msg.contains("built without CUDA") || msg.contains("registering"), "{msg}");
            } else {
                assert!(msg.contains("without the `cuda` feature"), "{msg}");
            }
            eprintln!("{msg}");
        }
    }
}

#[test]
fn project_models_run_when_built() {
    let Some(lib) = ort_lib() else { return };
    let dir = from_env_or_cache("BASIN_MODELS_DIR", ".cache/models");
    let mut models: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| rd.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "onnx")).collect())
        .unwrap_or_default();
    if models.is_empty() {
        let msg = format!("no .onnx models in {} (set BASIN_MODELS_DIR or run scripts/build_models.py)", dir.display());
        assert!(!require_hw(), "BASIN_REQUIRE_HW=1: {msg}");
        eprintln!("skipping: {msg}");
        return;
    }
    models.sort();
    for path in models {
        let mut b = OrtBackend::open(&lib, &path, OrtOptions { threads: 2, ..Default::default() }).unwrap();
        b.prepare(2).unwrap();
        let out = b.infer().unwrap();
        assert_eq!(out.batch_size, 2, "{}", path.display());
        assert!(out.num_classes >= 2, "{}", path.display());
        for i in 0..2 {
            assert!((out.row(i).iter().sum::<f32>() - 1.0).abs() < 1e-4, "{}", path.display());
        }
        // An input of the wrong rank is refused with the model's own metadata.
        let spec = b.inputs()[0].clone();
        let mut shape: Vec<usize> = spec.shape.iter().map(|&d| if d < 0 { 1 } else { d as usize }).collect();
        shape.push(1);
        let n = shape.iter().product();
        let data = match spec.dtype {
            DType::I64 => TensorData::I64(vec![0; n]),
            _ => TensorData::F32(vec![0.0; n]),
        };
        let e = b.set_inputs(&InputData { tensors: vec![Tensor::new(spec.name.clone(), shape, data)] }).unwrap_err();
        assert!(matches!(e, BackendError::InputMismatch { .. }), "{}: {e:?}", path.display());
        eprintln!("{}: {} classes, {:.3} ms for a batch of 2", path.display(), out.num_classes, out.elapsed_ms);
    }
}
