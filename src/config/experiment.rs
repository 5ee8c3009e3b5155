//! The experiment file (docs/src/experiment-file.md), as serde types.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::arrivals::ArrivalProcess;
use crate::model::controller::ControllerConfig;
use crate::model::cost::CostRow;
use crate::model::routing::RoutingConfig;
use crate::model::server::ServerKind;
use crate::traces::{Shape, TraceFormat};

fn one() -> f64 {
    1.0
}
fn one_u32() -> u32 {
    1
}
fn default_seed() -> u64 {
    1
}
fn default_damping() -> u64 {
    1
}

/// A whole experiment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default = "default_seed")]
    pub seed: u64,
    pub slo_ms: f64,
    pub workload: WorkloadConfig,
    #[serde(rename = "device")]
    pub devices: Vec<DeviceConfig>,
    #[serde(default, rename = "cost", skip_serializing_if = "Vec::is_empty")]
    pub cost: Vec<CostRow>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_table: Option<CostTableConfig>,
    #[serde(rename = "server")]
    pub servers: Vec<ServerConfig>,
    #[serde(default)]
    pub controller: ControllerConfig,
    #[serde(default)]
    pub routing: RoutingConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_exit: Option<EarlyExitConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<QualityConfig>,
    #[serde(default)]
    pub energy: EnergyConfig,
    #[serde(default)]
    pub output: OutputConfig,
    /// `[replay]`: where `basin replay` finds the real backends (extension keys, read by
    /// `replay::real::ReplaySection`; ignored by the simulator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<toml::Table>,
}

/// `[workload]`: exactly one of `trace`, `rate_rps` or `generate`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadConfig {
    /// A trace file, relative to the experiment file. `${BASIN_TRACES_DIR}` is expanded: the
    /// variable if set, else the nearest `traces/` folder above the experiment file (the
    /// repository's own, bundled traces), else the one of the source tree basin was built from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
    /// rate_csv | ipa_raw | request_csv (default: detected from the file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<TraceFormat>,
    /// Multiplies every rate (request traces: divides every arrival time).
    #[serde(default = "one")]
    pub rate_scale: f64,
    /// IPA raw series: `[start, end]` seconds of the raw series (half-open).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<[usize; 2]>,
    /// IPA raw series: `rate = raw / damping` (integer division).
    #[serde(default = "default_damping")]
    pub damping: u64,
    /// Request CSV: the arrival-time column (default `arrival_s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// How arrivals are placed inside each second of a rate trace: poisson | uniform.
    #[serde(default)]
    pub process: ArrivalProcess,
    /// A constant-rate Poisson workload instead of a trace (needs `duration_s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_rps: Option<f64>,
    /// A synthetic Twitter-style trace instead of a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate: Option<GenerateConfig>,
    /// Keep only the first `duration_s` seconds of the workload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    /// Stop after this many requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_requests: Option<u64>,
}

/// `[workload.generate]`: see `basin trace gen`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateConfig {
    pub shape: Shape,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_rps: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burstiness: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<u64>,
    /// Seed of the generated trace (default: the run seed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// `[[device]]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    pub name: String,
    pub idle_power_w: f64,
    /// Where `idle_power_w` comes from when it is not measured, starting with `assumed:`
    /// (`"assumed: half the 85 W TDP ..."`); recorded in the manifest's `assumptions` and
    /// printed after the run, like the CPU-time energy estimate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_power_source: Option<String>,
}

/// `[cost_table]`: a cost CSV (columns as `[[cost]]` keys).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CostTableConfig {
    pub path: String,
    /// Fill batch sizes missing from the table by linear interpolation between the nearest
    /// measured sizes (never extrapolated). Off by default: a missing size is an error.
    #[serde(default)]
    pub interpolate: bool,
}

/// `[[server]]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub name: String,
    pub kind: ServerKind,
    /// The model it serves first.
    pub model: String,
    /// Further model variants a controller may switch to (IPA, Clover).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variants: Vec<String>,
    /// Take answers' correctness from this model's rows of the quality table instead of
    /// `model`'s (a declared stand-in, e.g. a cost-only model with random weights answered as a
    /// real model of the same role). Only for servers without `variants`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality_model: Option<String>,
    pub backend: String,
    pub device: String,
    /// Model instances (batched) or workers (local).
    #[serde(default = "one_u32")]
    pub instances: u32,
    /// Batched: the largest batch. Local: same as `batch_size`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_batch_size: Option<u32>,
    /// Local: the fixed small batch a free worker takes (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preferred_batch_sizes: Vec<u32>,
    #[serde(default)]
    pub max_queue_delay_us: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_queue_size: Option<usize>,
    /// Largest batch a controller may choose (cost rows must cover it; default max_batch_size).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_batch_size_limit: Option<u32>,
    /// Warm-up of an instance added at run time.
    #[serde(default)]
    pub warmup_s: f64,
    #[serde(default)]
    pub warmup_energy_j: f64,
    /// Power each live instance draws while not serving a batch (default 0).
    #[serde(default)]
    pub instance_standby_power_w: f64,
    /// Per-request transport overhead added on the response path (e.g. measured by `basin
    /// calibrate` as Triton's client round trip minus its queue and compute time). Default 0.
    #[serde(default)]
    pub request_overhead_ms: f64,
    /// A load profile (`basin load-profile` writes one): CSV with columns `rps,
    /// service_factor, overhead_ms` (others ignored), relative to the experiment file. The
    /// service time of each batch is multiplied by the factor at the server's current arrival
    /// rate and the overhead at that rate replaces `request_overhead_ms` (see `model::load`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_profile: Option<String>,
    /// The sliding window over which the server's arrival rate is estimated for the load
    /// profile (default 200 ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_window_ms: Option<f64>,
}

/// `[early_exit]`: the cascade's cheap model (its cost is the `batch_size = 1` row).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EarlyExitConfig {
    pub model: String,
    pub backend: String,
    pub device: String,
    /// As `[[server]] quality_model`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality_model: Option<String>,
    /// Energy per request besides the model's execution: the gateway's and the serving
    /// driver's own work per arrival (`basin load-profile --gateway-rates` measures it). Default 0.
    #[serde(default)]
    pub overhead_energy_j: f64,
}

/// `[quality]`: a per-sample table (`path`, columns sample,model,confidence,correct) or
/// per-model accuracies (`[quality.accuracy] model = 0.91`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QualityConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<BTreeMap<String, f64>>,
}

/// `[energy]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnergyConfig {
    #[serde(default = "one")]
    pub pue: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carbon_g_per_kwh: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carbon_trace: Option<CarbonTraceConfig>,
}

impl Default for EnergyConfig {
    fn default() -> Self {
        EnergyConfig { pue: 1.0, carbon_g_per_kwh: None, carbon_trace: None }
    }
}

/// `[energy.carbon_trace]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CarbonTraceConfig {
    pub path: String,
    pub time_column: String,
    pub value_column: String,
    /// Simulation time 0 is this many seconds into the trace.
    #[serde(default)]
    pub offset_s: f64,
}

/// `[output]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// Time-series interval.
    #[serde(default = "one")]
    pub interval_s: f64,
    /// Write requests.parquet (one row per request; memory grows with the run).
    #[serde(default)]
    pub requests: bool,
    /// Write batches.parquet (one row per batch).
    #[serde(default)]
    pub batches: bool,
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig { interval_s: 1.0, requests: false, batches: false }
    }
}
