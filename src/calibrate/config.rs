//! The calibration file (`CAL.toml`): which models, backends, batch sizes, how long to
//! measure, which energy meter, and which quality tables to recompute. Unknown keys are errors.
//!
//! Paths are relative to the calibration file. `${BASIN_MODELS_DIR}` expands to that variable,
//! else to the nearest `.cache/models` directory above the calibration file (where
//! `scripts/build-models.sh` puts the models), else `./.cache/models`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{self, ConfigError};
use crate::hw::meter::{EstimateConfig, MeterChoice};

fn yes() -> bool {
    true
}
fn default_url() -> String {
    "http://127.0.0.1:8000".into()
}
fn default_connect() -> f64 {
    2.0
}
fn default_request() -> f64 {
    10.0
}
fn default_cpu() -> String {
    "cpu".into()
}
fn default_idle_s() -> f64 {
    2.0
}
fn default_test_csv() -> String {
    "${BASIN_MODELS_DIR}/digits_test.csv".into()
}

/// A whole calibration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalConfig {
    /// Output folder name under `calibration/`; default: hostname slug + CPU slug.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Seed of the random inputs.
    #[serde(default)]
    pub seed: u64,
    /// Model name → ONNX file (the name is also the Triton model name).
    pub models: BTreeMap<String, String>,
    pub backends: BackendsConfig,
    pub batch_sizes: Vec<u32>,
    #[serde(default)]
    pub measure: MeasureConfig,
    /// Per-model overrides of `[measure]` (slow models get fewer repetitions).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub limits: BTreeMap<String, LimitsConfig>,
    #[serde(default)]
    pub meter: MeterConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<QualityConfig>,
    /// `[transport]`: measure Triton models as the replay uses them (concurrent one-row
    /// requests; see [`super::transport`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<super::transport::TransportConfig>,
}

/// `[backends]`: at least one of them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendsConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onnxruntime: Option<OrtConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triton: Option<TritonConfig>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderName {
    #[default]
    Cpu,
    Cuda,
}

/// `[backends.onnxruntime]`: ONNX Runtime in process.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrtConfig {
    /// Intra-op threads (0: ONNX Runtime's default, one per physical core).
    #[serde(default)]
    pub threads: usize,
    #[serde(default)]
    pub provider: ProviderName,
    /// CUDA device index.
    #[serde(default)]
    pub device: i32,
    /// The shared library; default `BASIN_ORT_LIB`, else `.cache/onnxruntime/libonnxruntime.so`
    /// above the calibration file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub library: Option<String>,
    /// Subset of `models` to run (default: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models: Option<Vec<String>>,
}

/// `[backends.triton]`: a running Triton server (KServe v2 over HTTP).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TritonConfig {
    #[serde(default = "default_url")]
    pub url: String,
    #[serde(default = "default_connect")]
    pub connect_timeout_s: f64,
    /// Deadline of every request (a stalled server is an error after this long).
    #[serde(default = "default_request")]
    pub request_timeout_s: f64,
    /// Binary tensor extension (default) or JSON.
    #[serde(default = "yes")]
    pub binary: bool,
    /// Device name written in the cost table (the server's placement is invisible to a client).
    #[serde(default = "default_cpu")]
    pub device: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models: Option<Vec<String>>,
    /// The server's pid file (`scripts/start-triton.sh` writes `.cache/triton/triton.pid`): with
    /// the CPU-time estimate meter, the CPU time of the server's whole session is charged too.
    /// Default: `.cache/triton/triton.pid` above the calibration file, when it exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_pid_file: Option<String>,
}

impl Default for TritonConfig {
    fn default() -> Self {
        TritonConfig {
            url: default_url(),
            connect_timeout_s: default_connect(),
            request_timeout_s: default_request(),
            binary: true,
            device: default_cpu(),
            models: None,
            server_pid_file: None,
        }
    }
}

/// How latencies are taken.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Timing {
    /// `Instant` around each `infer` call (the default; what a server spends per batch).
    #[default]
    Wall,
    /// The duration the backend reports itself (deterministic for the mock).
    Backend,
}

/// `[measure]`: the measurement loop and its stop rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MeasureConfig {
    /// Batches run before measuring (fewer when `warmup_max_s` runs out first).
    pub warmup: u32,
    pub warmup_max_s: f64,
    pub min_repetitions: u32,
    pub max_repetitions: u32,
    /// A window (one meter reading) holds at least this many batches ...
    pub window_batches: u32,
    /// ... and lasts at least this long, so meter reads stay a tiny share of the time.
    pub window_s: f64,
    /// Stop when the p50 and p99 at the end of the last `stable_windows` windows are all within
    /// ±`tolerance` (relative) of their mean.
    pub stable_windows: u32,
    pub tolerance: f64,
    /// Measured time per (model, backend, batch size), warm-up excluded.
    pub max_time_s: f64,
    /// The stop rule needs at least this much measured time too (energy resolution: the
    /// CPU-time estimate ticks every 10 ms, RAPL every ~1 ms, NVML every ~20-100 ms).
    pub min_time_s: f64,
    pub timing: Timing,
    /// At most this many latencies are written to each samples file (evenly thinned in time
    /// order; the table's quantiles use all of them).
    pub samples_max: usize,
}

impl Default for MeasureConfig {
    fn default() -> Self {
        MeasureConfig {
            warmup: 5,
            warmup_max_s: 2.0,
            min_repetitions: 30,
            max_repetitions: 1_000_000,
            window_batches: 5,
            window_s: 0.25,
            stable_windows: 3,
            tolerance: 0.05,
            max_time_s: 10.0,
            min_time_s: 1.0,
            timing: Timing::Wall,
            samples_max: 1000,
        }
    }
}

/// `[limits.<model>]`: overrides of `[measure]` for one model.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_repetitions: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_repetitions: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_time_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_time_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_batches: Option<u32>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MeterKindName {
    #[default]
    Auto,
    Estimate,
    Rapl,
    Nvml,
    PerfLog,
}

/// `[meter]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeterConfig {
    #[serde(default)]
    pub kind: MeterKindName,
    /// NVML device index.
    #[serde(default)]
    pub device: u32,
    /// RAPL powercap root (default `/sys/class/powercap`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
    /// perf-stat log (kind `perf_log`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Estimate: package TDP (default: CodeCarbon's table, else 85 W).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tdp_w: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logical_cpus: Option<u32>,
    /// Estimate: idle power charged over wall time (0: not modelled).
    #[serde(default)]
    pub idle_w: f64,
    /// Length of the idle-power measurement before the first point (0: skip).
    #[serde(default = "default_idle_s")]
    pub idle_s: f64,
}

impl Default for MeterConfig {
    fn default() -> Self {
        MeterConfig {
            kind: MeterKindName::Auto,
            device: 0,
            root: None,
            path: None,
            tdp_w: None,
            logical_cpus: None,
            idle_w: 0.0,
            idle_s: default_idle_s(),
        }
    }
}

impl MeterConfig {
    pub fn estimate_config(&self) -> EstimateConfig {
        EstimateConfig { tdp_w: self.tdp_w, logical_cpus: self.logical_cpus, idle_w: self.idle_w, ..EstimateConfig::default() }
    }

    /// The meter to open (paths resolved against the calibration file).
    pub fn choice(&self, file: &Path) -> Result<MeterChoice, ConfigError> {
        Ok(match self.kind {
            MeterKindName::Auto => MeterChoice::Auto,
            MeterKindName::Estimate => MeterChoice::Estimate { config: self.estimate_config() },
            MeterKindName::Rapl => MeterChoice::Rapl { root: self.root.as_deref().map(|r| expand(file, r)).transpose()? },
            MeterKindName::Nvml => MeterChoice::Nvml { device: self.device },
            MeterKindName::PerfLog => {
                let raw = self
                    .path
                    .as_deref()
                    .ok_or_else(|| ConfigError::key(file, "meter.path", "kind `perf_log` needs `path`, the recorded perf-stat log"))?;
                MeterChoice::PerfLog { path: expand(file, raw)? }
            }
        })
    }
}

/// `[quality]`: per-sample quality tables recomputed by running the models on the test split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QualityConfig {
    /// Models (keys of `models`) to score; they must take one FP32 `[N, features]` input.
    pub models: Vec<String>,
    /// Columns `sample,dataset_index,label,px0..` (scripts/build_models.py).
    #[serde(default = "default_test_csv")]
    pub test_csv: String,
    /// A quality table to check the recomputed one against (e.g. build_models' quality.csv).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// Expands `${BASIN_MODELS_DIR}` and resolves a path against the calibration file's folder.
pub fn expand(file: &Path, raw: &str) -> Result<PathBuf, ConfigError> {
    let dir = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut s = raw.to_string();
    if s.contains("${BASIN_MODELS_DIR}") {
        let m = match std::env::var_os("BASIN_MODELS_DIR") {
            Some(v) => PathBuf::from(v),
            None => find_above(dir, ".cache/models").unwrap_or_else(|| PathBuf::from(".cache/models")),
        };
        s = s.replace("${BASIN_MODELS_DIR}", &m.to_string_lossy());
    }
    if s.contains("${") {
        return Err(ConfigError::file(file, format!("`{raw}`: only ${{BASIN_MODELS_DIR}} is expanded in calibration files")));
    }
    let p = PathBuf::from(s);
    Ok(if p.is_absolute() { p } else { dir.join(p) })
}

/// The nearest `rel` in `start` or one of its ancestors.
pub fn find_above(start: &Path, rel: &str) -> Option<PathBuf> {
    let abs = std::fs::canonicalize(start).unwrap_or_else(|_| start.to_path_buf());
    abs.ancestors().map(|a| a.join(rel)).find(|c| c.exists())
}

impl CalConfig {
    /// Reads `file`, applies `KEY=VALUE` overrides and validates.
    pub fn load(file: &Path, overrides: &[String]) -> Result<CalConfig, ConfigError> {
        let table = crate::io::experiment::read_table::<CalConfig>(file, overrides)?;
        let cfg: CalConfig = config::from_table(file, table)?;
        cfg.validate(file)?;
        Ok(cfg)
    }

    pub fn validate(&self, file: &Path) -> Result<(), ConfigError> {
        let err = |k: &str, m: String| Err(ConfigError::key(file, k, m));
        if self.models.is_empty() {
            return err("models", "give at least one model (name = \"path/to/model.onnx\")".into());
        }
        if self.backends.onnxruntime.is_none() && self.backends.triton.is_none() {
            return err("backends", "give [backends.onnxruntime] and/or [backends.triton]".into());
        }
        if self.batch_sizes.is_empty() || self.batch_sizes.contains(&0) {
            return err("batch_sizes", format!("must be a non-empty list of positive sizes (got {:?})", self.batch_sizes));
        }
        let known = |k: &str, list: &[String]| -> Result<(), ConfigError> {
            match list.iter().find(|m| !self.models.contains_key(*m)) {
                Some(m) => Err(ConfigError::key(
                    file,
                    k,
                    format!("`{m}` is not one of the models ({})", self.models.keys().cloned().collect::<Vec<_>>().join(", ")),
                )),
                None => Ok(()),
            }
        };
        if let Some(o) = &self.backends.onnxruntime
            && let Some(ms) = &o.models
        {
            known("backends.onnxruntime.models", ms)?;
        }
        if let Some(t) = &self.backends.triton {
            if let Some(ms) = &t.models {
                known("backends.triton.models", ms)?;
            }
            if !(t.connect_timeout_s > 0.0
                && t.request_timeout_s > 0.0
                && t.connect_timeout_s.is_finite()
                && t.request_timeout_s.is_finite())
            {
                return err("backends.triton", "timeouts must be positive numbers of seconds".into());
            }
        }
        if let Some(q) = &self.quality {
            known("quality.models", &q.models)?;
        }
        let lim: Vec<String> = self.limits.keys().cloned().collect();
        known("limits", &lim)?;
        let m = &self.measure;
        if m.min_repetitions == 0 || m.max_repetitions < m.min_repetitions {
            return err(
                "measure",
                format!("need 1 <= min_repetitions <= max_repetitions (got {} and {})", m.min_repetitions, m.max_repetitions),
            );
        }
        if m.stable_windows == 0 || m.window_batches == 0 {
            return err("measure", "stable_windows and window_batches must be at least 1".into());
        }
        for (k, v) in [
            ("measure.tolerance", m.tolerance),
            ("measure.max_time_s", m.max_time_s),
            ("measure.min_time_s", m.min_time_s + 1.0),
            ("measure.window_s", m.window_s + 1.0),
            ("measure.warmup_max_s", m.warmup_max_s + 1.0),
            ("meter.idle_s", self.meter.idle_s + 1.0),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return err(k, format!("must be a positive number (got {v})"));
            }
        }
        Ok(())
    }

    /// Shorter settings for a smoke run (`--quick`).
    pub fn quicken(&mut self) {
        let m = &mut self.measure;
        m.warmup = m.warmup.min(2);
        m.min_repetitions = m.min_repetitions.min(10);
        m.max_repetitions = m.max_repetitions.min(500).max(m.min_repetitions);
        m.max_time_s = m.max_time_s.min(1.0);
        m.min_time_s = m.min_time_s.min(0.3);
        m.window_s = m.window_s.min(0.1);
        self.meter.idle_s = self.meter.idle_s.min(0.5);
        if let Some(t) = &mut self.transport {
            t.warmup_rounds = t.warmup_rounds.min(2);
            t.rounds = t.rounds.min(20);
            t.max_time_s = t.max_time_s.min(1.0);
        }
        for l in self.limits.values_mut() {
            l.max_time_s = l.max_time_s.map(|t| t.min(1.0));
            l.min_time_s = l.min_time_s.map(|t| t.min(0.3));
            l.min_repetitions = l.min_repetitions.map(|r| r.min(10));
        }
    }

    /// The `[measure]` settings for one model, with its `[limits]` applied.
    pub fn measure_for(&self, model: &str) -> MeasureConfig {
        let mut m = self.measure.clone();
        if let Some(l) = self.limits.get(model) {
            if let Some(v) = l.warmup {
                m.warmup = v;
            }
            if let Some(v) = l.min_repetitions {
                m.min_repetitions = v;
            }
            if let Some(v) = l.max_repetitions {
                m.max_repetitions = v;
            }
            if let Some(v) = l.max_time_s {
                m.max_time_s = v;
            }
            if let Some(v) = l.min_time_s {
                m.min_time_s = v;
            }
            if let Some(v) = l.window_batches {
                m.window_batches = v;
            }
        }
        m.max_repetitions = m.max_repetitions.max(m.min_repetitions);
        m.min_time_s = m.min_time_s.min(m.max_time_s);
        m
    }
}

/// `hostname` + CPU model as a folder name: lower case, `[a-z0-9-]`, e.g. `vm-amd-epyc`.
pub fn default_host_id(hostname: &str, cpu_model: &str) -> String {
    let slug = |s: &str| {
        let mut out = String::new();
        for c in s.chars() {
            if c.is_ascii_alphanumeric() {
                out.push(c.to_ascii_lowercase());
            } else if !out.ends_with('-') {
                out.push('-');
            }
        }
        out.trim_matches('-').to_string()
    };
    let cpu = slug(&cpu_model.replace("(R)", "").replace("(TM)", "").replace(" CPU", "").replace("Processor", ""));
    let host = slug(hostname);
    match (host.is_empty(), cpu.is_empty()) {
        (true, true) => "host".into(),
        (false, true) => host,
        (true, false) => cpu,
        (false, false) => format!("{host}-{cpu}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ids_are_slugs() {
        assert_eq!(default_host_id("vm", "AMD EPYC"), "vm-amd-epyc");
        assert_eq!(default_host_id("gpu-box.lab", "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz"), "gpu-box-lab-intel-xeon-gold-6338-2-00ghz");
        assert_eq!(default_host_id("", ""), "host");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors_naming_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("cal.toml");
        std::fs::write(&f, "batch_sizes = [1]\n[models]\na = \"a.onnx\"\n[backends.onnxruntime]\nthreds = 2\n").unwrap();
        let e = CalConfig::load(&f, &[]).unwrap_err().to_string();
        assert!(e.contains("threds"), "{e}");
        std::fs::write(&f, "batch_sizes = [1, 0]\n[models]\na = \"a.onnx\"\n[backends.onnxruntime]\n").unwrap();
        let e = CalConfig::load(&f, &[]).unwrap_err().to_string();
        assert!(e.contains("batch_sizes"), "{e}");
        std::fs::write(&f, "batch_sizes = [1]\n[models]\na = \"a.onnx\"\n[backends]\n").unwrap();
        let e = CalConfig::load(&f, &[]).unwrap_err().to_string();
        assert!(e.contains("backends"), "{e}");
        std::fs::write(&f, "batch_sizes = [1]\n[models]\na = \"a.onnx\"\n[backends.triton]\nmodels = [\"b\"]\n").unwrap();
        let e = CalConfig::load(&f, &[]).unwrap_err().to_string();
        assert!(e.contains("`b` is not one of the models"), "{e}");
    }

    #[test]
    fn models_dir_expands_from_the_environment_or_a_cache_above() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".cache/models")).unwrap();
        std::fs::create_dir_all(dir.path().join("calibration")).unwrap();
        let f = dir.path().join("calibration/cal.toml");
        // SAFETY of the assertion: the variable may be set by the caller; only check the fallback when unset.
        if std::env::var_os("BASIN_MODELS_DIR").is_none() {
            let p = expand(&f, "${BASIN_MODELS_DIR}/x.onnx").unwrap();
            assert_eq!(p, std::fs::canonicalize(dir.path()).unwrap().join(".cache/models/x.onnx"));
        }
        assert_eq!(expand(&f, "m.onnx").unwrap(), dir.path().join("calibration/m.onnx"));
        assert!(expand(&f, "${HOME}/m.onnx").is_err());
    }
}
