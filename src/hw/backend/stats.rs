//! A model server's cumulative statistics (Triton's statistics extension, or a test double's):
//! one snapshot type for the calibration's transport rounds, the load profile and the replay.

/// Cumulative server counters of one model (Triton's statistics extension, or a mock's).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServerSnapshot {
    pub inference_count: u64,
    pub execution_count: u64,
    /// Sum over requests of their queue time (ns).
    pub queue_ns: u64,
    /// Sum over requests of compute_input + compute_infer + compute_output (ns).
    pub compute_ns: u64,
    /// Per batch size: (size, executions, sum of compute_input + infer + output ns).
    pub batches: Vec<(u64, u64, u64)>,
}

#[cfg(feature = "triton")]
impl From<&super::triton::ModelStats> for ServerSnapshot {
    fn from(s: &super::triton::ModelStats) -> Self {
        let i = &s.inference_stats;
        ServerSnapshot {
            inference_count: s.inference_count,
            execution_count: s.execution_count,
            queue_ns: i.queue.ns,
            compute_ns: i.compute_input.ns + i.compute_infer.ns + i.compute_output.ns,
            batches: s
                .batch_stats
                .iter()
                .map(|b| (b.batch_size, b.compute_infer.count, b.compute_input.ns + b.compute_infer.ns + b.compute_output.ns))
                .collect(),
        }
    }
}

/// Counters accumulated between snapshot `e` (earlier) and `a`.
pub fn diff(a: &ServerSnapshot, e: &ServerSnapshot) -> ServerSnapshot {
    ServerSnapshot {
        inference_count: a.inference_count.saturating_sub(e.inference_count),
        execution_count: a.execution_count.saturating_sub(e.execution_count),
        queue_ns: a.queue_ns.saturating_sub(e.queue_ns),
        compute_ns: a.compute_ns.saturating_sub(e.compute_ns),
        batches: a
            .batches
            .iter()
            .map(|&(s, c, ns)| {
                let (c0, ns0) = e.batches.iter().find(|x| x.0 == s).map_or((0, 0), |x| (x.1, x.2));
                (s, c.saturating_sub(c0), ns.saturating_sub(ns0))
            })
            .filter(|x| x.1 > 0)
            .collect(),
    }
}

impl ServerSnapshot {
    /// Executions per batch size: (size, executions).
    pub fn executions_by_size(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.batches.iter().map(|&(size, n, _)| (size, n))
    }

    /// Mean time a request spent in the server (queue + compute), ms.
    pub fn mean_server_ms(&self) -> Option<f64> {
        (self.inference_count > 0).then(|| (self.queue_ns + self.compute_ns) as f64 / self.inference_count as f64 / 1e6)
    }

    /// Mean compute time of one execution (compute_input + infer + output), ms.
    pub fn mean_execution_ms(&self) -> Option<f64> {
        let (n, ns) = self.batches.iter().fold((0u64, 0u64), |(n, ns), b| (n + b.1, ns + b.2));
        (n > 0).then(|| ns as f64 / n as f64 / 1e6)
    }
}
