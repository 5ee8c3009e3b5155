//! Admission controllers: the policies users come to study.
//!
//! A controller sees only what a real gateway could see (the types below are the whole of its
//! view): the arriving request's id, arrival time and, when a cascade's early-exit model ran,
//! that model's uncertainty on it; the state of every server queue; observations of past
//! completions (latency, batch size, energy share); the clock and the grid's carbon intensity.
//! It never sees whether an answer is correct, nor anything about the future. The same
//! controller code drives the simulator and the real-time replay.
//!
//! Per request it returns a [`Decision`]; every [`Controller::tick_interval`] it may return
//! [`Reconfig`] actions (model variant, batch size, instance count).
//!
//! Policies are configured by a serde-tagged enum ([`ControllerConfig`], `kind = "..."` in the
//! experiment file), one file per policy.

pub mod baselines;
pub mod bio;
pub mod carbon;
pub mod defaults;
pub mod ipa;
pub mod open_loop;
pub mod qlearn;
pub mod static_threshold;

use serde::{Deserialize, Serialize};

use crate::core::{RngStreams, SimDuration, SimTime};

pub use baselines::{Fa2HighConfig, Fa2LowConfig, RimHighConfig};
pub use bio::{BioThresholdConfig, FeedbackConfig};
pub use carbon::CarbonConfig;
pub use ipa::IpaConfig;
pub use open_loop::OpenLoopConfig;
pub use qlearn::QLearnConfig;
pub use static_threshold::StaticThresholdConfig;

/// A request as the gateway sees it when deciding.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RequestView {
    pub id: u64,
    pub arrival: SimTime,
    /// 1 − the early-exit model's confidence on this request, when a cascade is configured and
    /// the quality table has confidences.
    pub uncertainty: Option<f64>,
}

/// A server's externally observable state.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerView {
    pub name: String,
    pub queue_len: usize,
    pub in_service: u32,
    pub busy_instances: u32,
    pub instances: u32,
    pub max_batch_size: u32,
    pub variant: usize,
    /// Mean service time of a full batch of the current variant (from the cost table the
    /// operator has measured).
    pub batch_service_s: f64,
}

/// Everything a controller may look at besides the request.
#[derive(Clone, Debug)]
pub struct GatewayView<'a> {
    pub now: SimTime,
    pub servers: &'a [ServerView],
    /// Grid carbon intensity now (the signal a carbon-aware operator subscribes to).
    pub carbon_g_per_kwh: f64,
    /// IT power the devices draw now (what a power meter reads).
    pub power_w: f64,
    pub slo: SimDuration,
}

/// What the operator knows about one model variant before the run: its offline accuracy and
/// the cost table's mean latency and energy per batch size (all measured in calibration).
#[derive(Clone, Debug, PartialEq)]
pub struct VariantProfile {
    pub model: String,
    /// Offline accuracy on the evaluation set (None without a quality table).
    pub accuracy: Option<f64>,
    /// `latency_s[b - 1]`: mean service time of a batch of b.
    pub latency_s: Vec<f64>,
    /// `energy_j[b - 1]`: mean energy of a batch of b.
    pub energy_j: Vec<f64>,
}

/// Static facts about a server a controller may plan with.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerProfile {
    pub name: String,
    pub variants: Vec<VariantProfile>,
    pub initial_variant: usize,
    pub instances: u32,
    pub max_batch_size: u32,
    /// Idle power of the server's device.
    pub idle_power_w: f64,
    /// Power each live instance draws while not serving a batch.
    pub instance_standby_power_w: f64,
    /// Warm-up time and energy of a newly added instance.
    pub warmup_s: f64,
    pub warmup_energy_j: f64,
}

/// Passed to [`ControllerConfig::build`]: the deployment as the operator knows it.
#[derive(Clone, Debug, PartialEq)]
pub struct ControllerContext {
    pub servers: Vec<ServerProfile>,
    pub early_exit: Option<VariantProfile>,
    pub slo: SimDuration,
}

/// A finished request, as the gateway observes it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CompletionView {
    pub server: usize,
    pub arrival: SimTime,
    pub completion: SimTime,
    pub batch_size: u32,
    /// This request's share of its batch's energy (what a meter read around the batch gives).
    pub energy_j: f64,
}

impl CompletionView {
    pub fn latency(&self) -> SimDuration {
        self.completion.since(self.arrival)
    }
}

/// What happens to a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Serve it with the full model on the server the router picks.
    Admit,
    /// Serve it with the full model on this server.
    AdmitTo(usize),
    /// Answer it with the early-exit model's result (cascade exit).
    Skip,
    /// Do not answer it.
    Reject,
}

/// A periodic reconfiguration of one server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reconfig {
    SetVariant { server: usize, variant: usize },
    SetMaxBatchSize { server: usize, max_batch_size: u32 },
    SetInstances { server: usize, instances: u32 },
}

/// An admission / adaptation policy.
pub trait Controller: Send {
    /// Decides what to do with a request.
    fn decide(&mut self, req: &RequestView, view: &GatewayView<'_>) -> Decision;
    /// Observes a completed request; called only for a controller that
    /// [observes completions](Controller::observes_completions).
    fn on_completion(&mut self, _done: &CompletionView, _view: &GatewayView<'_>) {}
    /// Whether [`Controller::on_completion`] is implemented: the gateway builds a completion's
    /// view (for every answered request) only for a controller that returns `true`.
    fn observes_completions(&self) -> bool {
        false
    }
    /// How often [`Controller::on_tick`] runs (`None`: never).
    fn tick_interval(&self) -> Option<SimDuration> {
        None
    }
    /// Periodic reconfiguration.
    fn on_tick(&mut self, _view: &GatewayView<'_>, _out: &mut Vec<Reconfig>) {}
    /// The current admission threshold, for the time series (`None`: the policy has none).
    fn tau(&self, _now: SimTime) -> Option<f64> {
        None
    }
}

/// One policy's `[controller]` table: its checks and the controller it builds. Each policy's
/// file implements it for its config.
pub trait PolicyConfig {
    /// Checks parameter ranges; the message names the key.
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }
    /// Checks what the config names (servers, variants, batch sizes) against the deployment.
    fn check_context(&self, _ctx: &ControllerContext) -> Result<(), String> {
        Ok(())
    }
    /// A fresh controller for one run; `streams` are the run's seeded streams (a policy that
    /// draws random numbers takes a named stream from them).
    fn build_controller(&self, ctx: &ControllerContext, streams: &RngStreams) -> Box<dyn Controller>;
}

/// The list of policies, written once: the `[controller]` enum, its `kind` names and the
/// dispatch to each policy's [`PolicyConfig`].
macro_rules! policies {
    ($($variant:ident($config:ty) = $kind:literal),* $(,)?) => {
        /// `[controller]` in an experiment file.
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "kind")]
        pub enum ControllerConfig {
            $(#[serde(rename = $kind)] $variant($config),)*
        }

        impl ControllerConfig {
            /// The names users write in `kind = "..."`.
            pub const KINDS: &'static [&'static str] = &[$($kind),*];

            pub fn kind(&self) -> &'static str {
                match self {
                    $(ControllerConfig::$variant(_) => $kind,)*
                }
            }

            fn policy(&self) -> &dyn PolicyConfig {
                match self {
                    $(ControllerConfig::$variant(c) => c,)*
                }
            }

            /// Re-reads a `[controller]` table that failed to parse as its own kind's struct, to
            /// name the failing key (serde's tagged enums lose the path): `(path inside the
            /// table, message)`.
            pub fn explain_error(table: &toml::Table) -> Option<(String, String)> {
                fn de<T: serde::de::DeserializeOwned>(t: toml::Table) -> Option<(String, String)> {
                    serde_path_to_error::deserialize::<_, T>(toml::Value::Table(t)).err().map(|e| (e.path().to_string(), e.into_inner().to_string()))
                }
                let kind = table.get("kind")?.as_str()?;
                let mut t = table.clone();
                t.remove("kind");
                match kind {
                    $($kind => de::<$config>(t),)*
                    _ => None,
                }
            }
        }
    };
}

policies! {
    OpenLoop(OpenLoopConfig) = "open_loop",
    StaticThreshold(StaticThresholdConfig) = "static_threshold",
    BioThreshold(BioThresholdConfig) = "bio_threshold",
    Ipa(IpaConfig) = "ipa",
    Fa2Low(Fa2LowConfig) = "fa2_low",
    Fa2High(Fa2HighConfig) = "fa2_high",
    RimHigh(RimHighConfig) = "rim_high",
    QLearn(QLearnConfig) = "qlearn",
    Carbon(CarbonConfig) = "carbon",
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig::OpenLoop(OpenLoopConfig::default())
    }
}

impl ControllerConfig {
    /// Whether this policy needs a cascade's early-exit model (it skips requests).
    pub fn needs_early_exit(&self) -> bool {
        matches!(self, ControllerConfig::StaticThreshold(_) | ControllerConfig::BioThreshold(_))
    }

    /// Checks parameter ranges; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        self.policy().validate()
    }

    /// Checks what the config names (servers, variants, batch sizes) against the deployment.
    pub fn check_context(&self, ctx: &ControllerContext) -> Result<(), String> {
        self.policy().check_context(ctx)
    }

    /// A fresh controller for one run with the run's seeded streams.
    pub fn build(&self, ctx: &ControllerContext, streams: &RngStreams) -> Box<dyn Controller> {
        self.policy().build_controller(ctx, streams)
    }
}
