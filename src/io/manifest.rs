//! `manifest.json`: what a run was made from, by what, where and when.

use serde::Serialize;

use crate::io::experiment::InputFile;

pub const BASIN_VERSION: &str = env!("CARGO_PKG_VERSION");
pub const GIT_REVISION: &str = env!("BASIN_GIT_REVISION");

#[derive(Clone, Debug, Serialize)]
pub struct Host {
    pub hostname: String,
    pub os: String,
    pub arch: String,
    pub cpu_model: String,
    pub cpus: usize,
    pub memory_gib: Option<f64>,
}

impl Host {
    pub fn describe() -> Host {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let cpu_model = read("/proc/cpuinfo")
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let memory_gib = read("/proc/meminfo")
            .lines()
            .find(|l| l.starts_with("MemTotal"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            .map(|kb| (kb / 1048576.0 * 10.0).round() / 10.0);
        Host {
            hostname: read("/proc/sys/kernel/hostname").trim().to_string(),
            os: std::env::consts::OS.into(),
            arch: std::env::consts::ARCH.into(),
            cpu_model,
            cpus: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            memory_gib,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Manifest {
    pub mode: String,
    pub basin_version: String,
    pub git_revision: String,
    pub experiment_file: String,
    pub seed: u64,
    pub experiment: serde_json::Value,
    pub inputs: Vec<InputFile>,
    pub host: Host,
    pub command_line: Vec<String>,
    pub started_at: String,
    pub finished_at: String,
    pub wall_s: f64,
    pub events: u64,
    /// Inputs that are assumptions, not measurements (an assumed idle power and its source).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub assumptions: Vec<String>,
}

/// One line per assumed input of an experiment, for the manifest and the printed summary.
pub fn assumptions(exp: &crate::config::Experiment) -> Vec<String> {
    exp.devices
        .iter()
        .filter_map(|d| d.idle_power_source.as_ref().map(|src| format!("device `{}` idle_power_w = {} W: {src}", d.name, d.idle_power_w)))
        .collect()
}

/// Current UTC time as RFC 3339 (`2026-11-23T18:39:39Z`).
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    rfc3339(secs)
}

/// Formats seconds since the Unix epoch (Howard Hinnant's civil-from-days algorithm).
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + (m <= 2) as i64;
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_709_164_800), "2024-02-29T00:00:00Z");
        assert_eq!(super::rfc3339(1_795_459_179), "2026-11-23T18:39:39Z");
    }
}
