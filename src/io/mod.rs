//! Every file read and write: traces, tables, experiment files and run outputs.

pub mod experiment;
pub mod manifest;
pub mod outputs;
pub mod sweep;
pub mod tables;
pub mod traces;
