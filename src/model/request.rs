//! A request's lifecycle as the simulator and the replay driver see it.

use serde::{Deserialize, Serialize};

use crate::core::SimTime;

/// A request waiting in (or served from) a server queue.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QueuedRequest {
    pub id: u64,
    /// When the request reached the gateway.
    pub arrival: SimTime,
    /// When it entered the server queue (after the early-exit model, if any).
    pub enqueued: SimTime,
    /// Index of the quality-table sample this request carries (0 without a table).
    pub sample: u32,
    /// Energy already spent on it before the queue (the early-exit model), in joules.
    pub pre_energy_j: f64,
}

/// What finally happened to a request (SPEC `decision` column).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Admitted,
    Skipped,
    Rejected,
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Admitted => "admitted",
            Outcome::Skipped => "skipped",
            Outcome::Rejected => "rejected",
            Outcome::Failed => "failed",
        }
    }
}
