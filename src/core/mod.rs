//! The pure simulation kernel: time, units, seeded random streams and the event queue.
//! Nothing in `core` (or in `model`, `metrics` and `sim`) performs I/O or reads the wall clock.

pub mod engine;
pub mod rng;
pub mod time;
pub mod units;

pub use engine::Engine;
pub use rng::{RngStreams, StreamRng};
pub use time::{SimDuration, SimTime};
pub use units::{Grams, GramsPerKwh, Joules, Watts};
