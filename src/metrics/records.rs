//! Per-request and per-batch records (`requests.parquet`, docs/src/metrics.md; `batches.parquet` is an
//! extension), stored by column. Paths and models are small indices into name tables, so a
//! record costs a few dozen bytes.

use crate::model::request::Outcome;

/// One row per request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RequestRecords {
    /// Names the `path` column's indices refer to (server names, then "early_exit").
    pub path_names: Vec<String>,
    /// Names the `model` column's indices refer to.
    pub model_names: Vec<String>,
    pub id: Vec<u64>,
    pub arrival_s: Vec<f64>,
    pub decision: Vec<Outcome>,
    pub path: Vec<Option<u16>>,
    pub model: Vec<Option<u16>>,
    pub batch_size: Vec<Option<u32>>,
    pub start_s: Vec<Option<f64>>,
    pub end_s: Vec<Option<f64>>,
    pub latency_ms: Vec<Option<f64>>,
    pub energy_j: Vec<Option<f64>>,
    pub correct: Vec<Option<bool>>,
    /// Why a request failed or was rejected (`queue_full`, `controller`, a backend error...).
    pub reason: Vec<Option<String>>,
}

/// A request's record, pushed as one row.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestRow {
    pub id: u64,
    pub arrival_s: f64,
    pub decision: Outcome,
    pub path: Option<u16>,
    pub model: Option<u16>,
    pub batch_size: Option<u32>,
    pub start_s: Option<f64>,
    pub end_s: Option<f64>,
    pub latency_ms: Option<f64>,
    pub energy_j: Option<f64>,
    pub correct: Option<bool>,
    pub reason: Option<String>,
}

impl RequestRecords {
    pub fn len(&self) -> usize {
        self.id.len()
    }
    pub fn is_empty(&self) -> bool {
        self.id.is_empty()
    }

    pub fn push(&mut self, r: RequestRow) {
        self.id.push(r.id);
        self.arrival_s.push(r.arrival_s);
        self.decision.push(r.decision);
        self.path.push(r.path);
        self.model.push(r.model);
        self.batch_size.push(r.batch_size);
        self.start_s.push(r.start_s);
        self.end_s.push(r.end_s);
        self.latency_ms.push(r.latency_ms);
        self.energy_j.push(r.energy_j);
        self.correct.push(r.correct);
        self.reason.push(r.reason);
    }

    /// Sorts rows by request id (completion order differs from arrival order).
    pub fn sort_by_id(&mut self) {
        let mut idx: Vec<usize> = (0..self.len()).collect();
        idx.sort_by_key(|&i| self.id[i]);
        fn perm<T: Clone>(v: &mut Vec<T>, idx: &[usize]) {
            *v = idx.iter().map(|&i| v[i].clone()).collect();
        }
        perm(&mut self.id, &idx);
        perm(&mut self.arrival_s, &idx);
        perm(&mut self.decision, &idx);
        perm(&mut self.path, &idx);
        perm(&mut self.model, &idx);
        perm(&mut self.batch_size, &idx);
        perm(&mut self.start_s, &idx);
        perm(&mut self.end_s, &idx);
        perm(&mut self.latency_ms, &idx);
        perm(&mut self.energy_j, &idx);
        perm(&mut self.correct, &idx);
        perm(&mut self.reason, &idx);
    }
}

/// One row per dispatched batch.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BatchRecords {
    pub server_names: Vec<String>,
    pub server: Vec<u16>,
    pub instance: Vec<u32>,
    pub start_s: Vec<f64>,
    pub end_s: Vec<f64>,
    pub size: Vec<u32>,
    pub energy_j: Vec<f64>,
}

impl BatchRecords {
    pub fn len(&self) -> usize {
        self.start_s.len()
    }
    pub fn is_empty(&self) -> bool {
        self.start_s.is_empty()
    }
    pub fn push(&mut self, server: u16, instance: u32, start_s: f64, end_s: f64, size: u32, energy_j: f64) {
        self.server.push(server);
        self.instance.push(instance);
        self.start_s.push(start_s);
        self.end_s.push(end_s);
        self.size.push(size);
        self.energy_j.push(energy_j);
    }
}
