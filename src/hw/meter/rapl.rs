//! RAPL energy counters through the Linux powercap interface.
//!
//! Each zone `/sys/class/powercap/intel-rapl:<pkg>[:<sub>]/` holds `name` (`package-0`,
//! `dram`, `core`, `uncore`, `psys`), `energy_uj` (a counter in microjoules that wraps at
//! `max_energy_range_uj`) and `max_energy_range_uj` (kernel documentation:
//! Documentation/power/powercap/powercap.rst). AMD Zen CPUs appear under the same names since
//! Linux 5.8.
//!
//! Summed domains: every top-level zone (`package-N`) plus `dram` subzones. `core` and `uncore`
//! (PP0/PP1) are parts of the package and are skipped, as is `psys` (platform, which overlaps
//! the package) unless it is the only zone. Since Linux 5.10 `energy_uj` is readable by root
//! only (CVE-2020-8694); opening reports that as "not readable".
//!
//! The root directory is configurable so tests run on a fake sysfs in a temp dir. Each read
//! reopens the files, so a zone that disappears (hot-unplug, driver unload, a test deleting
//! the file) is reported as [`MeterError::Disappeared`] while the tracker keeps its last good
//! value.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::counter::{CounterDomain, CounterTracker, DEFAULT_STALL_AFTER};
use super::{EnergyMeter, EnergyReading, MeterError, MeterHealth, MeterInfo, MeterKind};

/// Where the kernel exposes powercap zones.
pub const POWERCAP_ROOT: &str = "/sys/class/powercap";

#[derive(Debug, Clone)]
struct Zone {
    id: String,
    depth: usize,
    name: String,
    energy_path: PathBuf,
}

/// A RAPL meter over the package and DRAM zones under a powercap root.
#[derive(Debug)]
pub struct RaplMeter {
    info: MeterInfo,
    root: PathBuf,
    energy_paths: Vec<PathBuf>,
    tracker: CounterTracker,
    raw: Vec<u64>,
    opened: Instant,
}

impl RaplMeter {
    /// Discover the zones under `root`, check they are readable and take the baseline sample.
    pub fn open(root: impl AsRef<Path>) -> Result<Self, MeterError> {
        let root = root.as_ref().to_path_buf();
        let unavailable = |reason: String| MeterError::RaplUnavailable { root: root.clone(), reason };
        let entries = std::fs::read_dir(&root).map_err(|e| unavailable(format!("cannot list the powercap directory: {e}")))?;
        let mut zones = Vec::new();
        for entry in entries.flatten() {
            let id = entry.file_name().to_string_lossy().into_owned();
            let Some(rest) = id.strip_prefix("intel-rapl:") else {
                continue;
            };
            let depth = rest.split(':').count();
            let name = read_trimmed(&entry.path().join("name")).unwrap_or_default();
            zones.push(Zone { energy_path: entry.path().join("energy_uj"), id, depth, name });
        }
        zones.sort_by(|a, b| a.id.cmp(&b.id));
        let mut chosen: Vec<Zone> =
            zones.iter().filter(|z| (z.depth == 1 && z.name != "psys") || (z.depth == 2 && z.name == "dram")).cloned().collect();
        if chosen.is_empty() {
            chosen = zones.iter().filter(|z| z.depth == 1).cloned().collect();
        }
        if chosen.is_empty() {
            return Err(unavailable("no intel-rapl zones (no RAPL support or not exposed in this VM)".into()));
        }

        let mut domains = Vec::with_capacity(chosen.len());
        for z in &chosen {
            let range_path = z.energy_path.with_file_name("max_energy_range_uj");
            let max = read_u64(&range_path).map_err(|e| match e {
                MeterError::Io { source, .. } => unavailable(format!("{}: {source}", range_path.display())),
                other => other,
            })?;
            let label = if chosen.iter().filter(|o| o.name == z.name).count() > 1 {
                format!("{}@{}", z.name, z.id)
            } else if z.name.is_empty() {
                z.id.clone()
            } else {
                z.name.clone()
            };
            domains.push(CounterDomain { name: label, max_range_uj: Some(max) });
        }
        let names: Vec<String> = domains.iter().map(|d| d.name.clone()).collect();
        let info = MeterInfo { kind: MeterKind::Rapl, name: format!("rapl:{}", names.join("+")), estimated: false, domains: names };
        let mut meter = Self {
            info,
            energy_paths: chosen.into_iter().map(|z| z.energy_path).collect(),
            tracker: CounterTracker::new("RAPL", domains, DEFAULT_STALL_AFTER),
            raw: Vec::new(),
            opened: Instant::now(),
            root: root.clone(),
        };
        meter.read().map_err(|e| match e {
            MeterError::Disappeared { path, reason, .. } if reason.contains("denied") => {
                unavailable(format!("{} is not readable ({reason}); since Linux 5.10 only root may read energy_uj", path.display()))
            }
            other => other,
        })?;
        Ok(meter)
    }

    /// The powercap root this meter reads.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Per-domain cumulative energy since open, in joules.
    pub fn domain_energy_j(&self) -> Vec<(&str, f64)> {
        self.tracker.domain_energy_j()
    }
}

impl EnergyMeter for RaplMeter {
    fn info(&self) -> &MeterInfo {
        &self.info
    }

    fn read(&mut self) -> Result<EnergyReading, MeterError> {
        let at = self.opened.elapsed();
        self.raw.clear();
        for path in &self.energy_paths {
            let v = read_u64(path).map_err(|e| match e {
                MeterError::Io { path, source } => MeterError::Disappeared { meter: "RAPL", path, reason: source.to_string() },
                other => other,
            })?;
            self.raw.push(v);
        }
        self.tracker.update(at, &self.raw)?;
        Ok(EnergyReading { energy_j: self.tracker.energy_j(), at })
    }

    fn health(&self) -> MeterHealth {
        self.tracker.health()
    }
}

fn read_trimmed(path: &Path) -> Result<String, MeterError> {
    std::fs::read_to_string(path).map(|s| s.trim().to_owned()).map_err(|source| MeterError::Io { path: path.to_path_buf(), source })
}

/// Read a small sysfs file holding one decimal integer, without allocating.
fn read_u64(path: &Path) -> Result<u64, MeterError> {
    let io = |source| MeterError::Io { path: path.to_path_buf(), source };
    let mut buf = [0u8; 32];
    let mut f = File::open(path).map_err(io)?;
    let mut n = 0;
    loop {
        let k = f.read(&mut buf[n..]).map_err(io)?;
        if k == 0 || n + k == buf.len() {
            n += k;
            break;
        }
        n += k;
    }
    let text = std::str::from_utf8(&buf[..n]).unwrap_or("").trim();
    text.parse().map_err(|_| MeterError::Parse {
        path: path.to_path_buf(),
        line: 1,
        message: format!("expected an unsigned integer, found {text:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// A fake powercap tree: package-0 (+core, +dram subzones) and package-1.
    struct FakeSysfs {
        dir: tempfile::TempDir,
    }

    impl FakeSysfs {
        fn new(zones: &[(&str, &str, u64, u64)]) -> Self {
            let dir = tempfile::tempdir().unwrap();
            // The control-type directory without a colon must be ignored.
            fs::create_dir(dir.path().join("intel-rapl")).unwrap();
            let me = Self { dir };
            for &(id, name, max, value) in zones {
                let z = me.dir.path().join(id);
                fs::create_dir(&z).unwrap();
                fs::write(z.join("name"), format!("{name}\n")).unwrap();
                fs::write(z.join("max_energy_range_uj"), format!("{max}\n")).unwrap();
                me.set(id, value);
            }
            me
        }
        fn set(&self, id: &str, value: u64) {
            fs::write(self.dir.path().join(id).join("energy_uj"), format!("{value}\n")).unwrap();
        }
        fn remove(&self, id: &str) {
            fs::remove_file(self.dir.path().join(id).join("energy_uj")).unwrap();
        }
        fn path(&self) -> &Path {
            self.dir.path()
        }
    }

    const MAX: u64 = 262_143_328_850;

    fn two_sockets() -> FakeSysfs {
        FakeSysfs::new(&[
            ("intel-rapl:0", "package-0", MAX, 1_000_000),
            ("intel-rapl:0:0", "core", MAX, 500_000),
            ("intel-rapl:0:1", "dram", 65_712_999_613, 7_000),
            ("intel-rapl:1", "package-1", MAX, MAX - 1_000_000),
        ])
    }

    #[test]
    fn discovers_packages_and_dram_but_not_core() {
        let fake = two_sockets();
        let m = RaplMeter::open(fake.path()).unwrap();
        assert_eq!(m.info().name, "rapl:package-0+dram+package-1");
        assert_eq!(m.info().kind, MeterKind::Rapl);
        assert!(!m.info().estimated);
    }

    #[test]
    fn advances_and_wraps_on_a_fake_sysfs() {
        let fake = two_sockets();
        let mut m = RaplMeter::open(fake.path()).unwrap();
        assert_eq!(m.read().unwrap().energy_j, 0.0);
        fake.set("intel-rapl:0", 76_660_000 + 1_000_000); // +76.66 J
        fake.set("intel-rapl:0:1", 15_040_000 + 7_000); // +15.04 J
        fake.set("intel-rapl:0:0", 999_999_999); // core: ignored
        fake.set("intel-rapl:1", 2_000_000); // wrapped: +1 J to the top, +2 J after
        let r = m.read().unwrap();
        assert!((r.energy_j - (76.66 + 15.04 + 3.0)).abs() < 1e-9, "{}", r.energy_j);
        assert_eq!(m.health().wraps, 1);
        let per = m.domain_energy_j();
        assert_eq!(per[2].0, "package-1");
        assert!((per[2].1 - 3.0).abs() < 1e-9);
    }

    #[test]
    fn a_zone_that_disappears_mid_run_is_reported_and_the_last_value_kept() {
        let fake = two_sockets();
        let mut m = RaplMeter::open(fake.path()).unwrap();
        fake.set("intel-rapl:0", 11_000_000);
        let good = m.read().unwrap();
        assert!((good.energy_j - 10.0).abs() < 1e-9);
        fake.remove("intel-rapl:0:1");
        let err = m.read().unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, MeterError::Disappeared { .. }));
        assert!(msg.starts_with("RAPL counter disappeared: "), "{msg}");
        assert!(msg.contains("intel-rapl:0:1/energy_uj: No such file"), "{msg}");
        assert!((m.tracker.energy_j() - 10.0).abs() < 1e-9, "last good value preserved");
        // It comes back (e.g. the driver reloaded): counting resumes from its new value.
        fake.set("intel-rapl:0:1", 2_007_000);
        assert!((m.read().unwrap().energy_j - 12.0).abs() < 1e-9);
    }

    #[test]
    fn garbage_in_a_counter_names_the_file() {
        let fake = two_sockets();
        let mut m = RaplMeter::open(fake.path()).unwrap();
        fs::write(fake.path().join("intel-rapl:1/energy_uj"), "n/a\n").unwrap();
        let msg = m.read().unwrap_err().to_string();
        assert!(msg.contains("intel-rapl:1/energy_uj:1: expected an unsigned integer"), "{msg}");
    }

    #[test]
    fn no_powercap_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("powercap");
        let msg = RaplMeter::open(&missing).unwrap_err().to_string();
        assert!(msg.starts_with("RAPL is not available: cannot list the powercap directory"), "{msg}");
        let msg = RaplMeter::open(dir.path()).unwrap_err().to_string();
        assert!(msg.contains("no intel-rapl zones"), "{msg}");
    }

    #[test]
    fn duplicate_zone_names_are_disambiguated() {
        let fake = FakeSysfs::new(&[
            ("intel-rapl:0", "package-0", MAX, 1),
            ("intel-rapl:0:0", "dram", MAX, 1),
            ("intel-rapl:1", "package-1", MAX, 1),
            ("intel-rapl:1:0", "dram", MAX, 1),
            ("intel-rapl:2", "psys", MAX, 1),
        ]);
        let m = RaplMeter::open(fake.path()).unwrap();
        assert_eq!(m.info().domains, vec!["package-0", "dram@intel-rapl:0:0", "package-1", "dram@intel-rapl:1:0"]);
    }
}
