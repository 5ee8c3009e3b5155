//! CPU-time energy **estimate**, for hosts without energy counters (like the 2-core VM basin is
//! developed on: no powercap, no RAPL perf events). Every figure it produces is flagged
//! `estimated = true` and its meter name states the model, so tables, summaries and figures
//! can say so.
//!
//! # Model
//!
//! ```text
//! energy_j = cpu_time_s × (tdp_w / logical_cpus) + idle_w × wall_s
//! ```
//!
//! * `cpu_time_s`: user + system CPU time of this process (`/proc/self/stat` fields 14–15,
//!   threads included, children not) or, with [`CpuScope::Host`], of the whole host
//!   (`/proc/stat` first line: user + nice + system + irq + softirq; steal and guest excluded,
//!   guest being already part of user). Both are in `USER_HZ` ticks, which Linux fixes at 100
//!   per second for user space, so the resolution is 10 ms.
//! * `tdp_w / logical_cpus`: the per-core active power of CodeCarbon's CPU-load fallback
//!   (mlco2/codecarbon, `codecarbon/external/hardware.py`, `CPU._get_power_from_cpu_load`:
//!   `power = tdp × cpu_load / 100`, with the process's load divided by `count_cpus()` in
//!   process tracking mode). Integrated over time, `tdp × (cpu_time / (wall × cpus)) × wall`
//!   is exactly `cpu_time × tdp / cpus`. CodeCarbon uses this when RAPL (or another power
//!   interface) is absent; its `constant` mode, without `psutil`, assumes 50 % of TDP
//!   (`CONSUMPTION_PERCENTAGE_CONSTANT = 0.5`). See CodeCarbon's methodology docs, "CPU metrics
//!   priority" (docs/explanation/methodology.md).
//! * `tdp_w`: configured, else looked up in [`TDP_TABLE`] by the `model name` in
//!   `/proc/cpuinfo` (a few rows copied from CodeCarbon's `codecarbon/data/hardware/cpu_power.csv`),
//!   else CodeCarbon's generic `POWER_CONSTANT = 85` W ("default W value for a CPU if no model
//!   is found").
//! * `logical_cpus`: configured, else the `processor` entries of `/proc/cpuinfo` (CodeCarbon's
//!   `count_cpus`), else `available_parallelism`.
//! * `idle_w`: CodeCarbon's load model has no idle term (0 W at 0 % load), so the default is
//!   0 W and the name says "idle not modelled". Set it (from a datasheet or a measurement on
//!   comparable hardware) to charge idle power over wall time.
//!
//! On a VM the TDP of the whole package is spread over the *visible* CPUs, which over-states
//! per-vCPU power when the VM holds a slice of a big part; configure `tdp_w` and
//! `logical_cpus` to describe the share you rent. This is a stated model, not a measurement.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{EnergyMeter, EnergyReading, MeterError, MeterInfo, MeterKind};

/// CodeCarbon's generic TDP when the CPU model is unknown (`POWER_CONSTANT`).
pub const CODECARBON_DEFAULT_TDP_W: f64 = 85.0;

/// Linux's user-space clock tick (`USER_HZ`), fixed at 100 on all mainstream architectures.
pub const USER_HZ: f64 = 100.0;

/// TDPs (W) from CodeCarbon's `codecarbon/data/hardware/cpu_power.csv` (commit 071eb77),
/// matched against `/proc/cpuinfo`'s model name as whole words.
pub const TDP_TABLE: &[(&str, f64)] = &[
    ("AMD EPYC 7302", 155.0),
    ("AMD EPYC 7402", 180.0),
    ("AMD EPYC 7502", 180.0),
    ("AMD EPYC 7542", 225.0),
    ("AMD EPYC 7702", 200.0),
    ("AMD EPYC 7713", 225.0),
    ("AMD EPYC 7742", 225.0),
    ("AMD EPYC 7763", 280.0),
    ("AMD EPYC 7B12", 240.0),
    ("AMD EPYC 7H12", 280.0),
];

/// Whose CPU time is charged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CpuScope {
    /// This process (all its threads).
    #[default]
    Process,
    /// The whole host (all processes).
    Host,
}

/// Configuration of the estimate; every field optional in config files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EstimateConfig {
    /// Package TDP in watts; `None`: look up the CPU model, else 85 W.
    pub tdp_w: Option<f64>,
    /// CPUs the TDP is spread over; `None`: count `/proc/cpuinfo` processors.
    pub logical_cpus: Option<u32>,
    /// Idle power charged over wall time (0 = not modelled, as in CodeCarbon).
    pub idle_w: f64,
    pub scope: CpuScope,
    /// Where procfs is mounted (tests use a fake one).
    pub proc_root: PathBuf,
}

impl Default for EstimateConfig {
    fn default() -> Self {
        Self { tdp_w: None, logical_cpus: None, idle_w: 0.0, scope: CpuScope::Process, proc_root: "/proc".into() }
    }
}

/// Where the TDP came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TdpSource {
    Configured,
    /// Matched this table row.
    Table(String),
    /// CodeCarbon's generic 85 W.
    Generic,
}

/// The resolved power model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CpuPowerModel {
    pub cpu_model: Option<String>,
    pub tdp_w: f64,
    pub tdp_source: TdpSource,
    pub logical_cpus: u32,
    pub idle_w: f64,
    pub scope: CpuScope,
}

impl CpuPowerModel {
    pub fn watts_per_core(&self) -> f64 {
        self.tdp_w / f64::from(self.logical_cpus)
    }

    /// Estimated energy for `cpu_s` CPU-seconds over `wall_s` seconds.
    pub fn energy_j(&self, cpu_s: f64, wall_s: f64) -> f64 {
        cpu_s * self.watts_per_core() + self.idle_w * wall_s
    }

    /// The meter name: states that this is an estimate and the whole model.
    pub fn describe(&self) -> String {
        let tdp = match &self.tdp_source {
            TdpSource::Configured => format!("configured TDP {} W", self.tdp_w),
            TdpSource::Table(row) => {
                format!("{row} TDP {} W from CodeCarbon cpu_power.csv", self.tdp_w)
            }
            TdpSource::Generic => format!("generic {} W TDP", self.tdp_w),
        };
        let idle = if self.idle_w > 0.0 { format!("+ idle {} W", self.idle_w) } else { "idle not modelled".into() };
        let scope = match self.scope {
            CpuScope::Process => "process",
            CpuScope::Host => "host",
        };
        format!(
            "estimate:{scope} cpu-time x {:.1} W/core (CodeCarbon TDP/cores: {tdp} / {} CPUs), {idle}",
            self.watts_per_core(),
            self.logical_cpus
        )
    }

    /// Resolve a configuration against `/proc/cpuinfo` under `proc_root`.
    pub fn resolve(cfg: &EstimateConfig) -> Result<Self, MeterError> {
        let cpuinfo = std::fs::read_to_string(cfg.proc_root.join("cpuinfo")).unwrap_or_default();
        let cpu_model =
            cpuinfo.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split_once(':')).map(|(_, v)| v.trim().to_owned());
        let (tdp_w, tdp_source) = match (cfg.tdp_w, cpu_model.as_deref().and_then(lookup_tdp)) {
            (Some(w), _) => (w, TdpSource::Configured),
            (None, Some((row, w))) => (w, TdpSource::Table(row.to_owned())),
            (None, None) => (CODECARBON_DEFAULT_TDP_W, TdpSource::Generic),
        };
        let counted = cpuinfo.lines().filter(|l| l.starts_with("processor")).count() as u32;
        let logical_cpus = cfg.logical_cpus.unwrap_or(if counted > 0 {
            counted
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
        });
        if !(tdp_w.is_finite() && tdp_w > 0.0) {
            return Err(MeterError::Config(format!("estimate tdp_w must be positive, got {tdp_w}")));
        }
        if logical_cpus == 0 {
            return Err(MeterError::Config("estimate logical_cpus must be at least 1".into()));
        }
        if !(cfg.idle_w.is_finite() && cfg.idle_w >= 0.0) {
            return Err(MeterError::Config(format!("estimate idle_w must be >= 0, got {}", cfg.idle_w)));
        }
        Ok(Self { cpu_model, tdp_w, tdp_source, logical_cpus, idle_w: cfg.idle_w, scope: cfg.scope })
    }
}

/// Longest table row that appears in `model` as whole words.
fn lookup_tdp(model: &str) -> Option<(&'static str, f64)> {
    TDP_TABLE
        .iter()
        .filter(|(row, _)| {
            model.match_indices(row).any(|(i, _)| {
                let after = model[i + row.len()..].chars().next();
                !after.is_some_and(|c| c.is_ascii_alphanumeric())
            })
        })
        .max_by_key(|(row, _)| row.len())
        .copied()
}

/// Reads CPU time from procfs and applies [`CpuPowerModel`]. Always `estimated`.
#[derive(Debug)]
pub struct EstimateMeter {
    info: MeterInfo,
    model: CpuPowerModel,
    stat_path: PathBuf,
    cpu0_s: f64,
    opened: Instant,
}

impl EstimateMeter {
    pub fn open(cfg: EstimateConfig) -> Result<Self, MeterError> {
        let model = CpuPowerModel::resolve(&cfg)?;
        let stat_path = match cfg.scope {
            CpuScope::Process => cfg.proc_root.join("self").join("stat"),
            CpuScope::Host => cfg.proc_root.join("stat"),
        };
        let cpu0_s = read_cpu_s(&stat_path, cfg.scope)?;
        let info = MeterInfo {
            kind: MeterKind::Estimate,
            name: model.describe(),
            estimated: true,
            domains: vec![match cfg.scope {
                CpuScope::Process => "process-cpu".into(),
                CpuScope::Host => "host-cpu".into(),
            }],
        };
        Ok(Self { info, model, stat_path, cpu0_s, opened: Instant::now() })
    }

    pub fn model(&self) -> &CpuPowerModel {
        &self.model
    }

    /// CPU seconds used in scope since open.
    pub fn cpu_s(&self) -> Result<f64, MeterError> {
        Ok(read_cpu_s(&self.stat_path, self.model.scope)? - self.cpu0_s)
    }
}

impl EnergyMeter for EstimateMeter {
    fn info(&self) -> &MeterInfo {
        &self.info
    }

    fn read(&mut self) -> Result<EnergyReading, MeterError> {
        let cpu_s = self.cpu_s()?.max(0.0);
        let at = self.opened.elapsed();
        Ok(EnergyReading { energy_j: self.model.energy_j(cpu_s, at.as_secs_f64()), at })
    }
}

/// CPU seconds (user + system) from `/proc/<pid>/stat` or `/proc/stat`.
fn read_cpu_s(path: &Path, scope: CpuScope) -> Result<f64, MeterError> {
    let text = std::fs::read_to_string(path).map_err(|source| MeterError::Io { path: path.to_path_buf(), source })?;
    let bad = |message: String| MeterError::Parse { path: path.to_path_buf(), line: 1, message };
    let ticks: u64 = match scope {
        CpuScope::Process => {
            // The command name (field 2) is in parentheses and may contain spaces.
            let after = text.rsplit_once(')').map(|(_, r)| r).ok_or_else(|| bad("no `)` after the command name".into()))?;
            let f: Vec<&str> = after.split_whitespace().collect();
            // `after` starts at field 3 (state): utime is field 14, stime field 15.
            let field = |i: usize| -> Result<u64, MeterError> {
                f.get(i - 3).and_then(|v| v.parse().ok()).ok_or_else(|| bad(format!("field {i} is missing or not a number")))
            };
            field(14)? + field(15)?
        }
        CpuScope::Host => {
            let line = text.lines().find(|l| l.starts_with("cpu ")).ok_or_else(|| bad("no aggregate `cpu` line".into()))?;
            let v: Vec<u64> = line.split_whitespace().skip(1).map(|x| x.parse().unwrap_or(0)).collect();
            if v.len() < 7 {
                return Err(bad(format!("`cpu` line has {} fields, expected at least 7", v.len())));
            }
            // user nice system idle iowait irq softirq [steal guest guest_nice]
            v[0] + v[1] + v[2] + v[5] + v[6]
        }
    };
    Ok(ticks as f64 / USER_HZ)
}

/// Elapsed-time helper for callers that want the model without procfs (e.g. reports).
pub fn estimate_energy_j(model: &CpuPowerModel, cpu: Duration, wall: Duration) -> f64 {
    model.energy_j(cpu.as_secs_f64(), wall.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn fake_proc(model: &str, cpus: usize, utime: u64, stime: u64) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let mut info = String::new();
        for i in 0..cpus {
            info.push_str(&format!("processor\t: {i}\nmodel name\t: {model}\n\n"));
        }
        fs::write(dir.path().join("cpuinfo"), info).unwrap();
        fs::create_dir(dir.path().join("self")).unwrap();
        set_self_stat(dir.path(), utime, stime);
        fs::write(dir.path().join("stat"), "cpu  1000 50 200 9000 10 5 5 7 0 0\ncpu0 1 2 3 4 5 6 7\n").unwrap();
        dir
    }

    fn set_self_stat(root: &Path, utime: u64, stime: u64) {
        // A command name with spaces and a `)` to exercise the parser.
        let stat = format!("4242 (my (odd) prog) S 1 2 3 0 -1 0 0 0 0 0 {utime} {stime} 7 8 20 0 1 0 1 2 3");
        fs::write(root.join("self/stat"), stat).unwrap();
    }

    fn cfg(root: &Path) -> EstimateConfig {
        EstimateConfig { proc_root: root.to_path_buf(), ..EstimateConfig::default() }
    }

    #[test]
    fn unknown_cpu_uses_codecarbons_generic_tdp() {
        let p = fake_proc("AMD EPYC", 2, 0, 0);
        let m = EstimateMeter::open(cfg(p.path())).unwrap();
        assert_eq!(m.model().tdp_source, TdpSource::Generic);
        assert_eq!(m.model().watts_per_core(), CODECARBON_DEFAULT_TDP_W / 2.0);
        let info = m.info();
        assert!(info.estimated);
        assert_eq!(info.kind, MeterKind::Estimate);
        assert_eq!(
            info.name,
            "estimate:process cpu-time x 42.5 W/core (CodeCarbon TDP/cores: generic 85 W TDP / 2 CPUs), idle not modelled"
        );
    }

    #[test]
    fn known_cpu_matches_whole_words_in_the_table() {
        let p = fake_proc("AMD EPYC 7763 64-Core Processor", 128, 0, 0);
        let m = CpuPowerModel::resolve(&cfg(p.path())).unwrap();
        assert_eq!(m.tdp_source, TdpSource::Table("AMD EPYC 7763".into()));
        assert_eq!(m.logical_cpus, 128);
        assert!(m.describe().contains("AMD EPYC 7763 TDP 280 W from CodeCarbon cpu_power.csv"));
        assert_eq!(lookup_tdp("AMD EPYC 7302P 16-Core"), None, "7302 must not match 7302P");
    }

    #[test]
    fn energy_is_cpu_time_times_per_core_power_plus_idle() {
        let p = fake_proc("AMD EPYC", 2, 100, 50);
        let c = EstimateConfig { tdp_w: Some(100.0), logical_cpus: Some(4), idle_w: 0.0, ..cfg(p.path()) };
        let mut m = EstimateMeter::open(c).unwrap();
        assert_eq!(m.read().unwrap().energy_j, 0.0, "counts from open");
        set_self_stat(p.path(), 100 + 300, 50 + 100); // +4 CPU-seconds
        assert!((m.read().unwrap().energy_j - 4.0 * 25.0).abs() < 1e-9);
        // With idle power the wall-time term is added (checked through the model, no timing).
        let model = CpuPowerModel { idle_w: 10.0, ..m.model().clone() };
        assert_eq!(estimate_energy_j(&model, Duration::from_secs(4), Duration::from_secs(10)), 200.0);
    }

    #[test]
    fn host_scope_reads_proc_stat() {
        let p = fake_proc("AMD EPYC", 2, 0, 0);
        let c = EstimateConfig { scope: CpuScope::Host, tdp_w: Some(20.0), logical_cpus: Some(2), ..cfg(p.path()) };
        let mut m = EstimateMeter::open(c).unwrap();
        assert!(m.info().name.starts_with("estimate:host cpu-time x 10.0 W/core"));
        // user+nice+system+irq+softirq: +100 ticks of user, +100 of irq; idle/steal ignored.
        fs::write(p.path().join("stat"), "cpu  1100 50 200 99000 10 105 5 900 0 0\n").unwrap();
        assert!((m.read().unwrap().energy_j - 2.0 * 10.0).abs() < 1e-9);
    }

    #[test]
    fn the_real_procfs_works_here() {
        let mut m = EstimateMeter::open(EstimateConfig::default()).unwrap();
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
        }
        std::hint::black_box(x);
        let r = m.read().unwrap();
        assert!(r.energy_j >= 0.0 && r.energy_j.is_finite());
        assert!(m.info().estimated);
    }

    #[test]
    fn bad_config_and_bad_files_are_typed_errors() {
        let p = fake_proc("AMD EPYC", 2, 0, 0);
        let e = EstimateMeter::open(EstimateConfig { tdp_w: Some(-1.0), ..cfg(p.path()) }).unwrap_err();
        assert!(e.to_string().contains("tdp_w must be positive"), "{e}");
        let e = EstimateMeter::open(EstimateConfig { logical_cpus: Some(0), ..cfg(p.path()) }).unwrap_err();
        assert!(e.to_string().contains("logical_cpus"), "{e}");
        fs::write(p.path().join("self/stat"), "garbage").unwrap();
        let e = EstimateMeter::open(cfg(p.path())).unwrap_err().to_string();
        assert!(e.contains("self/stat:1: no `)`"), "{e}");
        let e = EstimateMeter::open(cfg(&p.path().join("nope"))).unwrap_err().to_string();
        assert!(e.contains("nope/self/stat: cannot read"), "{e}");
    }

    #[test]
    fn config_deserialises_with_defaults() {
        let c: EstimateConfig = serde_json::from_str(r#"{"tdp_w": 65, "scope": "host"}"#).unwrap();
        assert_eq!(c.tdp_w, Some(65.0));
        assert_eq!(c.scope, CpuScope::Host);
        assert_eq!(c.proc_root, PathBuf::from("/proc"));
        assert!(serde_json::from_str::<EstimateConfig>(r#"{"tdp": 65}"#).is_err());
    }
}
