//! The KServe v2 inference protocol on the server side: parsing an infer request (JSON tensors,
//! or Triton's binary tensor extension) into the backends' [`InputData`], and writing the
//! answer. The client side lives in `hw::backend::triton`.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::hw::backend::{DType, InputData, Tensor, TensorData, TensorSpec};

/// The header that splits a binary request or response into its JSON part and its tensor bytes.
pub const HEADER_LENGTH: &str = "inference-header-content-length";

/// The one output a basin gateway answers with: the classifier's class probabilities.
pub const OUTPUT_NAME: &str = "probabilities";

#[derive(Debug, Deserialize)]
struct RequestJson {
    #[serde(default)]
    id: Option<String>,
    inputs: Vec<InputJson>,
    #[serde(default)]
    outputs: Vec<OutputJson>,
    #[serde(default)]
    parameters: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
struct InputJson {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    #[serde(default)]
    data: Option<Value>,
    #[serde(default)]
    parameters: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
struct OutputJson {
    name: String,
    #[serde(default)]
    parameters: Map<String, Value>,
}

/// A parsed infer request: one sample.
#[derive(Debug)]
pub struct InferRequest {
    pub id: Option<String>,
    pub inputs: InputData,
    /// The client asked for the output as binary data.
    pub binary_output: bool,
}

/// Parses `body` for a model taking `specs`; `header_len`: the JSON part's length when the
/// body uses the binary tensor extension. The error is the message a client gets with a 400.
pub fn parse_request(model: &str, body: &[u8], header_len: Option<usize>, specs: &[TensorSpec]) -> Result<InferRequest, String> {
    let (head, mut binary) = match header_len {
        Some(n) if n > body.len() => return Err(format!("{HEADER_LENGTH} is {n}, beyond the body's {} bytes", body.len())),
        Some(n) => body.split_at(n),
        None => (body, &[][..]),
    };
    let req: RequestJson = serde_json::from_slice(head).map_err(|e| format!("malformed infer request: {e}"))?;
    let mut tensors = Vec::with_capacity(req.inputs.len());
    for input in &req.inputs {
        let shape = input
            .shape
            .iter()
            .map(|&d| usize::try_from(d).map_err(|_| format!("input `{}`: negative dimension {d} in shape {:?}", input.name, input.shape)))
            .collect::<Result<Vec<usize>, String>>()?;
        let elements =
            shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)).ok_or_else(|| format!("input `{}`: shape too large", input.name))?;
        let dtype = DType::from_kserve(&input.datatype);
        let data = match input.parameters.get("binary_data_size") {
            Some(size) => {
                let size = size.as_u64().ok_or_else(|| format!("input `{}`: binary_data_size must be a byte count", input.name))? as usize;
                if size > binary.len() {
                    return Err(format!(
                        "input `{}`: binary_data_size {size} beyond the {} bytes left in the body",
                        input.name,
                        binary.len()
                    ));
                }
                let (bytes, rest) = binary.split_at(size);
                binary = rest;
                from_le_bytes(&input.name, &dtype, bytes, elements)?
            }
            None => from_json(&input.name, &dtype, input.data.as_ref(), elements)?,
        };
        tensors.push(Tensor::new(input.name.clone(), shape, data));
    }
    let inputs = InputData { tensors };
    let batch = inputs.validate(model, specs).map_err(|e| e.to_string())?;
    if batch != 1 {
        return Err(format!("one sample per request: the batch dimension is {batch}, not 1 (the gateway batches requests itself)"));
    }
    let wants_binary = |p: &Map<String, Value>, key: &str| p.get(key).and_then(Value::as_bool).unwrap_or(false);
    let binary_output = wants_binary(&req.parameters, "binary_data_output")
        || req.outputs.iter().any(|o| o.name == OUTPUT_NAME && wants_binary(&o.parameters, "binary_data"));
    if let Some(o) = req.outputs.iter().find(|o| o.name != OUTPUT_NAME) {
        return Err(format!("unknown output `{}` (the model's output is `{OUTPUT_NAME}`)", o.name));
    }
    Ok(InferRequest { id: req.id, inputs, binary_output })
}

fn unsupported(name: &str, dtype: &DType) -> String {
    format!("input `{name}`: datatype {dtype} is not supported (FP32, INT64, INT32)")
}

fn from_le_bytes(name: &str, dtype: &DType, bytes: &[u8], elements: usize) -> Result<TensorData, String> {
    let width = dtype.size_bytes().ok_or_else(|| unsupported(name, dtype))?;
    if bytes.len() != elements * width {
        return Err(format!("input `{name}`: {} bytes for {elements} {dtype} elements", bytes.len()));
    }
    let chunks = bytes.chunks_exact(width);
    Ok(match dtype {
        DType::F32 => TensorData::F32(chunks.map(|c| f32::from_le_bytes(c.try_into().expect("4-byte chunk"))).collect()),
        DType::I64 => TensorData::I64(chunks.map(|c| i64::from_le_bytes(c.try_into().expect("8-byte chunk"))).collect()),
        DType::I32 => TensorData::I32(chunks.map(|c| i32::from_le_bytes(c.try_into().expect("4-byte chunk"))).collect()),
        _ => return Err(unsupported(name, dtype)),
    })
}

fn from_json(name: &str, dtype: &DType, data: Option<&Value>, elements: usize) -> Result<TensorData, String> {
    let data = data.ok_or_else(|| format!("input `{name}`: no `data` (and no binary_data_size)"))?;
    let mut flat = Vec::with_capacity(elements);
    flatten(data, &mut flat);
    if flat.len() != elements {
        return Err(format!("input `{name}`: {} values for a shape of {elements} elements", flat.len()));
    }
    let bad = |v: &Value| format!("input `{name}`: {v} is not a {dtype} value");
    Ok(match dtype {
        DType::F32 => TensorData::F32(flat.iter().map(|v| v.as_f64().map(|x| x as f32).ok_or_else(|| bad(v))).collect::<Result<_, _>>()?),
        DType::I64 => TensorData::I64(flat.iter().map(|v| v.as_i64().ok_or_else(|| bad(v))).collect::<Result<_, _>>()?),
        DType::I32 => TensorData::I32(
            flat.iter().map(|v| v.as_i64().and_then(|x| i32::try_from(x).ok()).ok_or_else(|| bad(v))).collect::<Result<_, _>>()?,
        ),
        _ => return Err(unsupported(name, dtype)),
    })
}

/// KServe allows `data` flat or nested row-major.
fn flatten<'v>(v: &'v Value, out: &mut Vec<&'v Value>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| flatten(i, out)),
        other => out.push(other),
    }
}

/// How the gateway answered, as the response's parameters say it.
pub struct Answer<'p> {
    pub model: &'p str,
    pub id: Option<&'p str>,
    pub probabilities: &'p [f32],
    /// `admitted` (the full model answered) or `skipped` (the early-exit model answered).
    pub decision: &'p str,
    /// The model whose output this is.
    pub answered_by: &'p str,
    /// Time the backends spent on it (early exit and batch), µs.
    pub backend_us: u64,
}

/// The response body and, for the binary extension, its JSON part's length.
pub fn response(a: &Answer<'_>, binary: bool) -> (Vec<u8>, Option<usize>) {
    let shape = [1, a.probabilities.len()];
    let mut output = json!({ "name": OUTPUT_NAME, "datatype": "FP32", "shape": shape });
    if binary {
        output["parameters"] = json!({ "binary_data_size": a.probabilities.len() * 4 });
    } else {
        output["data"] = json!(a.probabilities);
    }
    let mut body = json!({
        "model_name": a.model,
        "model_version": "1",
        "parameters": { "basin_decision": a.decision, "basin_model": a.answered_by, "basin_backend_us": a.backend_us },
        "outputs": [output],
    });
    if let Some(id) = a.id {
        body["id"] = json!(id);
    }
    let mut bytes = serde_json::to_vec(&body).expect("a JSON value serializes");
    if !binary {
        return (bytes, None);
    }
    let head = bytes.len();
    TensorData::F32(a.probabilities.to_vec()).write_le_bytes(&mut bytes);
    (bytes, Some(head))
}

/// `GET /v2/models/{name}`: the model's inputs and its one output.
pub fn model_metadata(model: &str, inputs: &[TensorSpec], classes: usize) -> Value {
    let tensor = |t: &TensorSpec| json!({ "name": t.name, "datatype": t.dtype.to_string(), "shape": t.shape });
    json!({
        "name": model,
        "versions": ["1"],
        "platform": "basin",
        "inputs": inputs.iter().map(tensor).collect::<Vec<_>>(),
        "outputs": [{ "name": OUTPUT_NAME, "datatype": "FP32", "shape": [-1, classes as i64] }],
    })
}

/// A KServe error body.
pub fn error_body(message: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({ "error": message })).expect("a JSON value serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs() -> Vec<TensorSpec> {
        vec![TensorSpec { name: "x".into(), dtype: DType::F32, shape: vec![-1, 3] }]
    }

    #[test]
    fn json_and_binary_requests_give_the_same_tensor() {
        let json = br#"{"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data":[[1,2,3.5]]}]}"#;
        let a = parse_request("m", json, None, &specs()).unwrap();
        let head = br#"{"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","parameters":{"binary_data_size":12}}],"outputs":[{"name":"probabilities","parameters":{"binary_data":true}}]}"#;
        let mut body = head.to_vec();
        TensorData::F32(vec![1.0, 2.0, 3.5]).write_le_bytes(&mut body);
        let b = parse_request("m", &body, Some(head.len()), &specs()).unwrap();
        assert_eq!(a.inputs, b.inputs);
        assert!(!a.binary_output && b.binary_output);
    }

    #[test]
    fn wrong_shape_datatype_and_batch_are_refused_with_a_reason() {
        let bad = [
            (r#"{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[1,2]}]}"#, "expects"),
            (r#"{"inputs":[{"name":"x","shape":[1,3],"datatype":"FP64","data":[1,2,3]}]}"#, "not supported"),
            (r#"{"inputs":[{"name":"x","shape":[2,3],"datatype":"FP32","data":[1,2,3,4,5,6]}]}"#, "one sample"),
            (r#"{"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data":[1,2]}]}"#, "values for a shape"),
            (r#"{"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data":[1,"a",3]}]}"#, "not a FP32"),
            (r#"{"inputs":[{"name":"x","shape":[1,-3],"datatype":"FP32","data":[1,2,3]}]}"#, "negative"),
            (r#"{"inputs": 3}"#, "malformed"),
        ];
        for (body, why) in bad {
            let e = parse_request("m", body.as_bytes(), None, &specs()).unwrap_err();
            assert!(e.contains(why), "{body}: {e}");
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bodies_are_refused_without_panicking(
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256),
            header_len in proptest::option::of(0usize..300),
        ) {
            proptest::prop_assert!(parse_request("m", &body, header_len, &specs()).is_err());
        }
    }

    #[test]
    fn a_binary_response_splits_at_its_header_length() {
        let a = Answer { model: "m", id: Some("7"), probabilities: &[0.25, 0.75], decision: "skipped", answered_by: "tiny", backend_us: 3 };
        let (body, head) = response(&a, true);
        let head = head.unwrap();
        let v: Value = serde_json::from_slice(&body[..head]).unwrap();
        assert_eq!(v["parameters"]["basin_decision"], "skipped");
        assert_eq!(body.len() - head, 8);
    }
}
