//! The labelled data set a replay feeds to the real models (`digits_test.csv` from
//! scripts/build-models.sh): one row per sample, `sample,dataset_index,label,px0..pxN`.
//!
//! Sample `i` of the quality table (`quality.csv`) is row `i` of this file, so a request that
//! draws sample `i` from the "quality" stream (as the simulator does) sends the real features of
//! row `i` and is scored against the real label.

use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::hw::backend::{DType, InputData, Tensor, TensorData, TensorSpec};

/// Features (row-major, `rows × dim`) and labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pub dim: usize,
    pub features: Vec<f32>,
    pub labels: Vec<u32>,
}

impl Dataset {
    pub fn rows(&self) -> usize {
        self.labels.len()
    }

    /// The row a quality-table sample maps to.
    pub fn row_of(&self, sample: u32) -> usize {
        sample as usize % self.rows().max(1)
    }

    pub fn label(&self, sample: u32) -> u32 {
        self.labels[self.row_of(sample)]
    }

    /// Reads a CSV with a `label` column and feature columns named `px*` (or every column after
    /// `label`).
    pub fn load_csv(path: &Path) -> Result<Dataset> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read the data set {}", path.display()))?;
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap_or("").split(',').map(str::trim).collect();
        let Some(li) = header.iter().position(|h| *h == "label") else {
            bail!("{}: no `label` column in the header", path.display());
        };
        let feat: Vec<usize> = {
            let px: Vec<usize> = header.iter().enumerate().filter(|(_, h)| h.starts_with("px")).map(|(i, _)| i).collect();
            if px.is_empty() { (li + 1..header.len()).collect() } else { px }
        };
        if feat.is_empty() {
            bail!("{}: no feature columns", path.display());
        }
        let mut features = Vec::new();
        let mut labels = Vec::new();
        for (n, line) in lines.enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let cells: Vec<&str> = line.split(',').collect();
            let bad = |what: &str| anyhow::anyhow!("{}, line {}: {what}", path.display(), n + 2);
            let label: f64 = cells.get(li).and_then(|c| c.trim().parse().ok()).ok_or_else(|| bad("bad `label`"))?;
            labels.push(label as u32);
            for &i in &feat {
                let v: f32 = cells.get(i).and_then(|c| c.trim().parse().ok()).ok_or_else(|| bad("bad feature value"))?;
                features.push(v);
            }
        }
        if labels.is_empty() {
            bail!("{}: the data set has no rows", path.display());
        }
        Ok(Dataset { dim: feat.len(), features, labels })
    }

    /// The input batch for `samples` when the model has one FP32 input of shape `[-1, dim]`.
    pub fn input_for(&self, specs: &[TensorSpec], samples: &[u32]) -> Option<InputData> {
        let [spec] = specs else { return None };
        if spec.dtype != DType::F32 || spec.shape.len() != 2 || spec.shape[1] != self.dim as i64 {
            return None;
        }
        let mut v = Vec::with_capacity(samples.len() * self.dim);
        for &s in samples {
            let r = self.row_of(s);
            v.extend_from_slice(&self.features[r * self.dim..(r + 1) * self.dim]);
        }
        Some(InputData { tensors: vec![Tensor::new(spec.name.clone(), vec![samples.len(), self.dim], TensorData::F32(v))] })
    }
}
