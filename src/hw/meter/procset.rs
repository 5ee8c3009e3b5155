//! CPU-time **estimate** over a set of processes: this process plus a server's whole session
//! (e.g. the Triton server that `scripts/start-triton.sh` starts with `setsid`: `tritonserver`,
//! the session leader, and its Python-backend stubs), so that a client/server calibration on
//! a host without energy counters charges the server's CPU time too, and not the unrelated load
//! of other processes (which [`super::CpuScope::Host`] would).
//!
//! Same power model as [`super::estimate`] (`cpu_time × TDP / logical CPUs + idle × wall`),
//! always flagged `estimated`. The process set is fixed at open; a process that exits keeps the
//! CPU time it was last seen with, so the counter never goes backwards.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::estimate::{CpuPowerModel, EstimateConfig};
use super::{EnergyMeter, EnergyReading, MeterError, MeterInfo, MeterKind};

/// `(session id, utime + stime ticks)` from a `/proc/<pid>/stat` line.
pub fn parse_stat(text: &str) -> Option<(u32, u64)> {
    let after = text.rsplit_once(')')?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state): session is field 6, utime 14, stime 15.
    let g = |i: usize| f.get(i - 3).and_then(|v| v.parse::<u64>().ok());
    Some((g(6)? as u32, g(14)? + g(15)?))
}

/// The pids whose session id is `sid`, under `proc_root`.
pub fn session_members(proc_root: &Path, sid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(proc_root) else { return out };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        if let Ok(t) = std::fs::read_to_string(e.path().join("stat"))
            && parse_stat(&t).is_some_and(|(s, _)| s == sid)
        {
            out.push(pid);
        }
    }
    out.sort_unstable();
    out
}

/// The estimate over this process and the members of one session.
#[derive(Debug)]
pub struct ProcessSetMeter {
    info: MeterInfo,
    model: CpuPowerModel,
    paths: Vec<PathBuf>,
    last: Vec<u64>,
    base: u64,
    opened: Instant,
}

impl ProcessSetMeter {
    /// This process plus every process in the session of `server_pid` (its session leader when
    /// started with `setsid`).
    pub fn open(cfg: EstimateConfig, server_pid: u32) -> Result<Self, MeterError> {
        let model = CpuPowerModel::resolve(&cfg)?;
        let stat = cfg.proc_root.join(server_pid.to_string()).join("stat");
        let text = std::fs::read_to_string(&stat).map_err(|source| MeterError::Io { path: stat.clone(), source })?;
        let (sid, _) = parse_stat(&text).ok_or_else(|| MeterError::Parse {
            path: stat.clone(),
            line: 1,
            message: "not a /proc/<pid>/stat line".into(),
        })?;
        let members = session_members(&cfg.proc_root, sid);
        let me = std::process::id();
        let mut paths = vec![cfg.proc_root.join("self").join("stat")];
        paths.extend(members.iter().filter(|&&p| p != me).map(|p| cfg.proc_root.join(p.to_string()).join("stat")));
        let n_server = paths.len() - 1;
        let name = model.describe().replacen(
            "estimate:process cpu-time",
            &format!("estimate:client+server cpu-time (basin + {n_server} processes of session {sid})"),
            1,
        );
        let info = MeterInfo {
            kind: MeterKind::Estimate,
            name,
            estimated: true,
            domains: vec!["process-cpu".into(), format!("session-{sid}-cpu")],
        };
        let mut m = ProcessSetMeter { info, model, last: vec![0; paths.len()], paths, base: 0, opened: Instant::now() };
        m.base = m.ticks();
        Ok(m)
    }

    /// Number of server processes charged.
    pub fn server_processes(&self) -> usize {
        self.paths.len() - 1
    }

    fn ticks(&mut self) -> u64 {
        for (p, last) in self.paths.iter().zip(self.last.iter_mut()) {
            if let Some((_, t)) = std::fs::read_to_string(p).ok().as_deref().and_then(parse_stat) {
                *last = (*last).max(t);
            }
        }
        self.last.iter().sum()
    }
}

impl EnergyMeter for ProcessSetMeter {
    fn info(&self) -> &MeterInfo {
        &self.info
    }

    fn read(&mut self) -> Result<EnergyReading, MeterError> {
        let ticks = self.ticks().saturating_sub(self.base);
        let at = self.opened.elapsed();
        Ok(EnergyReading { energy_j: self.model.energy_j(ticks as f64 / super::estimate::USER_HZ, at.as_secs_f64()), at })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_spaces_in_the_name() {
        let line = "4242 (triton python stub) S 1 4200 4200 0 -1 4194560 100 0 0 0 150 25 0 0 20 0 8 0 1000 0 0";
        assert_eq!(parse_stat(line), Some((4200, 175)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn charges_the_session_members_and_never_goes_backwards() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let w = |pid: &str, sid: u32, ut: u64| {
            std::fs::create_dir_all(root.join(pid)).unwrap();
            std::fs::write(root.join(pid).join("stat"), format!("{pid} (x) S 1 {sid} {sid} 0 -1 0 0 0 0 0 {ut} 0 0 0 20 0 1 0 0 0 0"))
                .unwrap();
        };
        w("self", 1, 100);
        w("500", 500, 10);
        w("501", 500, 20);
        w("777", 777, 1_000_000);
        std::fs::write(root.join("cpuinfo"), "processor : 0\nprocessor : 1\n").unwrap();
        let cfg = EstimateConfig { tdp_w: Some(100.0), proc_root: root.to_path_buf(), ..EstimateConfig::default() };
        let mut m = ProcessSetMeter::open(cfg, 500).unwrap();
        assert_eq!(m.server_processes(), 2);
        assert!(m.info().estimated && m.info().name.contains("2 processes of session 500"), "{}", m.info().name);
        assert_eq!(m.read().unwrap().energy_j, 0.0);
        // 100 more ticks in the client, 100 in a server process: 2 CPU-s x 50 W/core.
        w("self", 1, 200);
        w("501", 500, 120);
        assert!((m.read().unwrap().energy_j - 100.0).abs() < 1e-9);
        // A server process exits: its CPU time stays counted.
        std::fs::remove_dir_all(root.join("501")).unwrap();
        assert!((m.read().unwrap().energy_j - 100.0).abs() < 1e-9);
    }
}
