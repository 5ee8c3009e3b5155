//! Quality: whether a request's answer is correct, and how confident each model is on it.
//!
//! A request carries one *sample*: a row of a real evaluation set on which every model of the
//! table was run (joint per sample, so a cascade's early-exit confidence and the full model's
//! correctness refer to the same input). The simulator draws the sample uniformly when the
//! request arrives. Without a per-sample table, a per-model accuracy can be given instead; then
//! one uniform number u per request decides correctness for every model (`correct = u < acc`),
//! so a more accurate model is right whenever a less accurate one is.

use std::collections::BTreeMap;

/// Per-sample confidence and correctness of each model.
#[derive(Clone, Debug, PartialEq)]
pub struct QualityTable {
    models: Vec<String>,
    /// `confidence[m][s]` in [0, 1].
    confidence: Vec<Vec<f32>>,
    /// `correct[m][s]`.
    correct: Vec<Vec<bool>>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum QualityError {
    #[error("model `{model}` has {got} samples but `{first}` has {expected}: every model needs a row for every sample")]
    Ragged { model: String, got: usize, first: String, expected: usize },
    #[error("the quality table is empty")]
    Empty,
    #[error("confidence {value} of model `{model}` is outside [0, 1]")]
    BadConfidence { model: String, value: f64 },
}

impl QualityTable {
    /// Builds a table from `(model, sample, confidence, correct)` rows in any order.
    pub fn from_rows(rows: impl IntoIterator<Item = (String, u32, f64, bool)>) -> Result<Self, QualityError> {
        let mut by_model: BTreeMap<String, BTreeMap<u32, (f32, bool)>> = BTreeMap::new();
        for (m, s, c, ok) in rows {
            if !(0.0..=1.0).contains(&c) {
                return Err(QualityError::BadConfidence { model: m, value: c });
            }
            by_model.entry(m).or_default().insert(s, (c as f32, ok));
        }
        let mut it = by_model.iter();
        let (first, first_rows) = it.next().ok_or(QualityError::Empty)?;
        let expected = first_rows.len();
        for (m, r) in it {
            if r.len() != expected || r.keys().ne(first_rows.keys()) {
                return Err(QualityError::Ragged { model: m.clone(), got: r.len(), first: first.clone(), expected });
            }
        }
        let mut t = QualityTable { models: vec![], confidence: vec![], correct: vec![] };
        for (m, r) in by_model {
            t.models.push(m);
            t.confidence.push(r.values().map(|v| v.0).collect());
            t.correct.push(r.values().map(|v| v.1).collect());
        }
        Ok(t)
    }

    pub fn models(&self) -> &[String] {
        &self.models
    }
    pub fn index_of(&self, model: &str) -> Option<usize> {
        self.models.iter().position(|m| m == model)
    }
    pub fn samples(&self) -> usize {
        self.correct[0].len()
    }
    pub fn correct(&self, model: usize, sample: u32) -> bool {
        self.correct[model][sample as usize]
    }
    pub fn confidence(&self, model: usize, sample: u32) -> f64 {
        self.confidence[model][sample as usize] as f64
    }
    /// Share of samples the model gets right.
    pub fn accuracy(&self, model: usize) -> f64 {
        self.correct[model].iter().filter(|&&c| c).count() as f64 / self.samples() as f64
    }
    /// Mean confidence of the model over the table.
    pub fn mean_confidence(&self, model: usize) -> f64 {
        self.confidence[model].iter().map(|&c| c as f64).sum::<f64>() / self.samples() as f64
    }
}

/// Where correctness comes from in a run.
#[derive(Clone, Debug, PartialEq)]
pub enum Quality {
    /// Per-sample table: requests draw a sample index.
    Table(QualityTable),
    /// Per-model accuracy only (no confidences): requests draw u ∈ [0, 1).
    Accuracy(BTreeMap<String, f64>),
}

impl Quality {
    /// Index of `model` for [`Quality::correct`] (its position in the table or the map).
    pub fn index_of(&self, model: &str) -> Option<usize> {
        match self {
            Quality::Table(t) => t.index_of(model),
            Quality::Accuracy(m) => m.keys().position(|k| k == model),
        }
    }

    /// Whether `model` answers a request carrying `sample` correctly.
    #[inline]
    pub fn correct(&self, model: usize, sample: u32) -> bool {
        match self {
            Quality::Table(t) => t.correct(model, sample),
            Quality::Accuracy(m) => {
                let acc = *m.values().nth(model).expect("model index from index_of");
                (sample as f64) / 4_294_967_296.0 < acc
            }
        }
    }

    /// The model's confidence on the sample, when the table has it.
    #[inline]
    pub fn confidence(&self, model: usize, sample: u32) -> Option<f64> {
        match self {
            Quality::Table(t) => Some(t.confidence(model, sample)),
            Quality::Accuracy(_) => None,
        }
    }

    /// The model's offline accuracy.
    pub fn accuracy(&self, model: usize) -> f64 {
        match self {
            Quality::Table(t) => t.accuracy(model),
            Quality::Accuracy(m) => *m.values().nth(model).expect("model index from index_of"),
        }
    }

    /// Number of distinct samples to draw from (`None`: draw a full-range u32).
    pub fn samples(&self) -> Option<usize> {
        match self {
            Quality::Table(t) => Some(t.samples()),
            Quality::Accuracy(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joint_table_and_errors() {
        let rows = vec![
            ("big".to_string(), 0, 0.9, true),
            ("big".into(), 1, 0.8, true),
            ("small".into(), 1, 0.4, false),
            ("small".into(), 0, 0.7, true),
        ];
        let t = QualityTable::from_rows(rows).unwrap();
        let s = t.index_of("small").unwrap();
        assert_eq!(t.samples(), 2);
        assert!(!t.correct(s, 1));
        assert_eq!(t.accuracy(s), 0.5);
        assert!((t.confidence(s, 1) - 0.4).abs() < 1e-6);
        let ragged = QualityTable::from_rows(vec![("a".to_string(), 0, 0.5, true), ("b".into(), 1, 0.5, true)]);
        assert!(matches!(ragged, Err(QualityError::Ragged { .. })));
    }
}
