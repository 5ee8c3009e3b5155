//! Builds the fake `libnvidia-ml.so` of `fake_nvml.c` for one test (see that file for the
//! script format). Each value owns a temporary folder holding the script and the library, so
//! tests with different scripts run in parallel.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct FakeNvml {
    pub dir: tempfile::TempDir,
}

impl FakeNvml {
    /// Compiles the fake with `$CC` (default `cc`) against `script`; panics naming the compiler
    /// and its output when that fails.
    pub fn new(script: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let script_path = dir.path().join("fake_nvml.script");
        std::fs::write(&script_path, script).expect("write script");
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake_nvml/fake_nvml.c");
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
        let out = Command::new(&cc)
            .args(["-shared", "-fPIC", "-O1", "-Wall", "-Werror"])
            .arg(format!("-DFAKE_NVML_SCRIPT=\"{}\"", script_path.display()))
            .arg("-o")
            .arg(dir.path().join("libnvidia-ml.so"))
            .arg(&src)
            .output()
            .unwrap_or_else(|e| panic!("running `{cc}` to build the fake NVML library: {e} (install a C compiler)"));
        assert!(out.status.success(), "{cc} {}: {}", src.display(), String::from_utf8_lossy(&out.stderr));
        FakeNvml { dir }
    }

    /// The library, to load by path.
    pub fn lib(&self) -> PathBuf {
        self.dir.path().join("libnvidia-ml.so")
    }
}
