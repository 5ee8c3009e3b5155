//! Hardware edge of basin: everything that touches real devices lives here, behind narrow
//! traits, each with a deterministic test double.
//!
//! The simulator (`core`, `model`, `sim`, `metrics`, `analysis`) never depends on this module:
//! it consumes plain numbers (joules, watts, milliseconds) that the replay driver and the
//! calibration harness obtain through these traits. Backends that need drivers or native
//! libraries sit behind cargo features (`nvml`, `ort`, `triton`) so a default build runs
//! anywhere, and asking for a backend that is not compiled in or not present is a typed error,
//! never a panic.

// Energy meters (NVML, RAPL, perf-stat logs, CPU-time estimate, mock). Inference backends are
// added beside it by the lead.
pub mod backend;
pub mod meter;
pub mod probe;
