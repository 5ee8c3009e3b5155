//! # basin — energy-aware ML inference serving, simulated and replayed
//!
//! basin answers: *what does this admission or batching policy cost in joules, grams of CO₂,
//! latency and accuracy, on this workload, on this hardware?* Most users drive it through the
//! `basin` command (see the README); this page shows the library underneath.
//!
//! ## 1. An experiment is data
//!
//! An experiment file (TOML, the contract in docs/src/experiment-file.md) is resolved against its input files into
//! a [`spec::SimSpec`]: arrivals, devices, servers with their cost tables, an optional cascade and
//! quality table, a controller, routing, energy and carbon. Resolution is where every check
//! happens (unknown keys, missing cost rows, unknown devices) and where every file is read.
//!
//! ```
//! # fn main() -> anyhow::Result<()> {
//! let dir = tempfile::tempdir()?;
//! let file = dir.path().join("exp.toml");
//! std::fs::write(&file, r#"
//!     name = "tutorial"
//!     slo_ms = 20
//!     [workload]
//!     rate_rps = 400          # constant-rate Poisson arrivals...
//!     duration_s = 60         # ...for one minute
//!     [[device]]
//!     name = "gpu0"
//!     idle_power_w = 60
//!     [[cost]]
//!     model = "m"
//!     backend = "triton"
//!     device = "gpu0"
//!     batch_size = 1
//!     latency_ms = 2.0
//!     energy_j = 0.3
//!     [[cost]]
//!     model = "m"
//!     backend = "triton"
//!     device = "gpu0"
//!     batch_size = 2
//!     latency_ms = 2.5
//!     energy_j = 0.4
//!     [[server]]
//!     name = "batched"
//!     kind = "batched"
//!     model = "m"
//!     backend = "triton"
//!     device = "gpu0"
//!     max_batch_size = 2
//!     max_queue_delay_us = 1000
//!     [energy]
//!     carbon_g_per_kwh = 300
//! "#)?;
//! // `--set` overrides work on the table before it is typed:
//! let loaded = basin::io::experiment::load(&file, &["energy.pue=1.1".to_string()], None)?;
//! # let _ = loaded.inputs.len();
//! # Ok(()) }
//! ```
//!
//! ## 2. A run is a pure function of (spec, seed)
//!
//! [`sim::run`] executes the spec on an integer-nanosecond event queue with FIFO ties
//! ([`core::Engine`]); every random draw comes from a named stream derived from the seed
//! ([`core::RngStreams`]). Nothing in [`core`], [`model`], [`metrics`], [`sim`] or [`analysis`]
//! reads a file or the clock, so the same seed gives bit-identical outputs on any machine or
//! thread, and sweeps can run one simulation per thread.
//!
//! ```
//! # fn main() -> anyhow::Result<()> {
//! # let dir = tempfile::tempdir()?;
//! # let file = dir.path().join("exp.toml");
//! # std::fs::write(&file, "name='t'\nslo_ms=20\n[workload]\nrate_rps=400\nduration_s=60\n[[device]]\nname='gpu0'\nidle_power_w=60\n[[cost]]\nmodel='m'\nbackend='triton'\ndevice='gpu0'\nbatch_size=1\nlatency_ms=2.0\nenergy_j=0.3\n[[cost]]\nmodel='m'\nbackend='triton'\ndevice='gpu0'\nbatch_size=2\nlatency_ms=2.5\nenergy_j=0.4\n[[server]]\nname='b'\nkind='batched'\nmodel='m'\nbackend='triton'\ndevice='gpu0'\nmax_batch_size=2\nmax_queue_delay_us=1000\n[energy]\ncarbon_g_per_kwh=300\n")?;
//! # let loaded = basin::io::experiment::load(&file, &[], None)?;
//! let out = basin::sim::run(&loaded.spec, 7);
//! let s = &out.summary;
//! assert_eq!(s.requests, s.completed);                  // open loop: everyone is served
//! assert!(s.mean_batch_size.unwrap() > 1.0);            // the batcher does form batches
//! // the energy of docs/src/experiment-file.md: batch energy + idle power × idle time
//! assert!((s.energy_j - (s.energy.active_j + s.energy.idle_j)).abs() < 1e-6 * s.energy_j);
//! assert_eq!(basin::sim::run(&loaded.spec, 7).summary, out.summary); // deterministic
//! # Ok(()) }
//! ```
//!
//! The [`metrics::RunOutput`] holds the run summary, the per-interval time series and,
//! when asked for, per-request and per-batch records — the one schema that `basin replay`
//! also writes. [`io::outputs`] writes them (Parquet via polars, JSON), atomically.
//!
//! ## 3. Policies are small state machines
//!
//! A controller implements [`model::controller::Controller`]: it decides per request
//! (admit, admit to a given server, skip to the cascade's early exit, reject), observes
//! completions, and may reconfigure servers on a tick. It sees only what a real gateway sees
//! (the request, queue states, completions, the clock, metered power and the carbon signal),
//! which is why the same code drives the real-time replay. Each policy is one file in
//! `model/controller/` and one variant of the serde-tagged [`model::controller::ControllerConfig`].
//!
//! ## 4. Around the core
//!
//! [`sweep`] expands parameter designs; [`analysis`] finds Pareto fronts; [`plot`] draws
//! publication figures from recorded outputs; [`hw`] puts energy meters and inference backends
//! behind narrow traits (each with a deterministic test double); [`calibrate`] measures cost and
//! quality tables on real hardware; [`replay`] runs an experiment against real backends on the
//! wall clock.

pub mod analysis;
pub mod calibrate;
pub mod cli;
pub mod config;
pub mod core;
pub mod gateway;
pub mod hw;
pub mod io;
pub mod metrics;
pub mod model;
pub mod plot;
pub mod replay;
#[cfg(feature = "serve")]
pub mod serve;
pub mod sim;
pub mod spec;
pub mod sweep;
pub mod traces;
pub mod validate;
