//! basin
pub mod analysis;
pub mod calibrate;
pub mod cli;
pub mod config;
pub mod core;
pub mod hw;
pub mod io;
pub mod metrics;
pub mod model;
pub mod plot;
pub mod replay;
pub mod sim;
pub mod sweep;
pub mod traces;
