//! The clients' tensors, kept by ticket while their requests are inside the gateway: the input
//! source `basin serve`'s workers read (a request's `sample` is its ticket, so the replay's
//! worker pools run unchanged on live inputs).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::hw::backend::{InputData, Tensor, TensorData, TensorSpec};
use crate::replay::InputSource;

#[derive(Default)]
pub struct Payloads {
    by_ticket: Mutex<HashMap<u32, InputData>>,
}

impl Payloads {
    pub fn insert(&self, ticket: u32, inputs: InputData) {
        self.lock().insert(ticket, inputs);
    }

    pub fn remove(&self, ticket: u32) {
        self.lock().remove(&ticket);
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u32, InputData>> {
        // a worker that panicked leaves the map as it was: keep serving
        self.by_ticket.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl InputSource for Payloads {
    /// The tickets' tensors stacked along the batch dimension, one tensor per model input.
    fn input_for(&self, specs: &[TensorSpec], samples: &[u32]) -> Option<InputData> {
        let map = self.lock();
        let requests: Vec<&InputData> = samples.iter().map(|s| map.get(s)).collect::<Option<_>>()?;
        let tensors = specs
            .iter()
            .map(|spec| {
                let parts: Vec<&Tensor> = requests.iter().map(|r| r.tensors.iter().find(|t| t.name == spec.name)).collect::<Option<_>>()?;
                stack(&parts)
            })
            .collect::<Option<_>>()?;
        Some(InputData { tensors })
    }
}

fn stack(parts: &[&Tensor]) -> Option<Tensor> {
    let first = parts.first()?;
    let mut shape = first.shape.clone();
    *shape.first_mut()? = parts.iter().map(|t| t.shape.first().copied().unwrap_or(1)).sum();
    let data = match &first.data {
        TensorData::F32(_) => TensorData::F32(concat(parts, |d| if let TensorData::F32(v) = d { Some(v) } else { None })?),
        TensorData::I64(_) => TensorData::I64(concat(parts, |d| if let TensorData::I64(v) = d { Some(v) } else { None })?),
        TensorData::I32(_) => TensorData::I32(concat(parts, |d| if let TensorData::I32(v) = d { Some(v) } else { None })?),
    };
    Some(Tensor::new(first.name.clone(), shape, data))
}

fn concat<T: Copy>(parts: &[&Tensor], values: impl Fn(&TensorData) -> Option<&Vec<T>>) -> Option<Vec<T>> {
    let mut out = Vec::new();
    for p in parts {
        out.extend_from_slice(values(&p.data)?);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hw::backend::DType;

    #[test]
    fn tickets_stack_in_the_order_asked() {
        let p = Payloads::default();
        let one = |x: f32| InputData { tensors: vec![Tensor::new("x", vec![1, 2], TensorData::F32(vec![x, x]))] };
        p.insert(4, one(4.0));
        p.insert(9, one(9.0));
        let spec = [TensorSpec { name: "x".into(), dtype: DType::F32, shape: vec![-1, 2] }];
        let b = p.input_for(&spec, &[9, 4]).unwrap();
        assert_eq!(b.tensors[0].shape, vec![2, 2]);
        assert_eq!(b.tensors[0].data, TensorData::F32(vec![9.0, 9.0, 4.0, 4.0]));
        p.remove(9);
        assert!(p.input_for(&spec, &[9]).is_none());
    }
}
