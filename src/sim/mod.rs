//! The simulation driver: the [gateway](crate::gateway) on simulated time, with every batch
//! executed in modelled time from the cost table.
//!
//! A run is a pure function of its [`SimSpec`] and seed: nothing here performs I/O or reads the
//! wall clock, so the same spec and seed give bit-identical outputs on any machine and thread.
//! The gateway keeps its agenda in the event engine (integer nanoseconds, FIFO ties); the
//! driver pops it until it is empty or a controller tick finds nothing left to do.

use crate::gateway::{CostTable, Flow, Gateway};
use crate::metrics::RunOutput;
use crate::spec::SimSpec;

/// Runs `spec` once with `seed`.
pub fn run(spec: &SimSpec, seed: u64) -> RunOutput {
    let mut backends = CostTable;
    let mut gateway = Gateway::new(spec, seed, false, &backends).expect("routing is validated when the spec is built");
    while let Some((now, wake)) = gateway.pop() {
        if gateway.handle(now, now, wake, &mut backends) == Flow::Finished {
            break;
        }
    }
    // the run ends with its last arrival or answer (or the workload's end), not with a
    // controller tick that found nothing left to do
    let end = gateway.last_activity().max(spec.arrivals.end());
    let mut out = gateway.finish(end, "simulate", None, false).output;
    out.summary.seed = seed;
    out
}
