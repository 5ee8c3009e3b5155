//! `basin serve` end to end: the debug binary on a loopback port with real ONNX Runtime models
//! (experiments/serve/digits-cascade.toml: the digits cascade under the bio controller), a real KServe v2 client (tritonclient from
//! the project venv, tests/serve_client.py) checking every answer and /metrics, malformed and
//! random requests, then SIGTERM and the written run. Skipped with a reason unless the venv,
//! ONNX Runtime and the models exist (BASIN_REQUIRE_HW=1 makes that a failure).
#![cfg(feature = "serve")]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use proptest::prelude::*;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The venv's Python, ONNX Runtime and the models, or why the test cannot run.
struct Setup {
    python: PathBuf,
    ort_lib: PathBuf,
    models: PathBuf,
}

fn setup() -> Option<Setup> {
    let require = std::env::var("BASIN_REQUIRE_HW").is_ok_and(|v| v == "1");
    let venv = std::env::var_os("BASIN_VENV").map(PathBuf::from).unwrap_or_else(|| repo().join(".venv"));
    let python = venv.join("bin/python");
    let ort_lib =
        std::env::var_os("BASIN_ORT_LIB").map(PathBuf::from).unwrap_or_else(|| repo().join(".cache/onnxruntime/libonnxruntime.so"));
    let models = std::env::var_os("BASIN_MODELS_DIR").map(PathBuf::from).unwrap_or_else(|| repo().join(".cache/models"));
    let imports = Command::new(&python).args(["-c", "import tritonclient.http, prometheus_client, numpy"]).output();
    let missing = if !imports.is_ok_and(|o| o.status.success()) {
        Some(format!("the venv {} lacks tritonclient/prometheus_client (scripts/setup-python.sh)", venv.display()))
    } else if !ort_lib.is_file() {
        Some(format!("ONNX Runtime {} missing (scripts/setup-ort.sh)", ort_lib.display()))
    } else if !["digits_tiny.onnx", "digits_large.onnx", "quality.csv", "digits_test.csv"].iter().all(|f| models.join(f).is_file()) {
        Some(format!("the digits models in {} are missing (scripts/build-models.sh)", models.display()))
    } else {
        None
    };
    match missing {
        Some(msg) => {
            assert!(!require, "BASIN_REQUIRE_HW=1: {msg}");
            eprintln!("skipping: {msg}");
            None
        }
        None => Some(Setup { python, ort_lib, models }),
    }
}

/// The server process, killed if the test fails before it stops it.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn python(s: &Setup, args: &[&str]) {
    let out = Command::new(&s.python).arg(repo().join("tests/serve_client.py")).args(args).output().expect("running the venv's python");
    eprintln!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "serve_client.py {args:?} failed");
}

/// One raw HTTP/1.1 POST; the status code (None: the connection closed without one).
fn post(addr: &str, path: &str, body: &[u8]) -> Option<u16> {
    let mut c = TcpStream::connect(addr).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    c.write_all(head.as_bytes()).ok()?;
    c.write_all(body).ok()?;
    let mut resp = String::new();
    let _ = c.read_to_string(&mut resp);
    resp.split_whitespace().nth(1)?.parse().ok()
}

fn live(addr: &str) -> bool {
    let Ok(mut c) = TcpStream::connect(addr) else { return false };
    let _ = c.write_all(format!("GET /v2/health/live HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes());
    let mut resp = String::new();
    let _ = c.read_to_string(&mut resp);
    resp.starts_with("HTTP/1.1 200")
}

fn random_bodies(addr: &str) {
    let valid = br#"{"inputs":[{"name":"x","shape":[1,64],"datatype":"FP32","data":[0,0,0,0]}]}"#.to_vec();
    let bodies = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512),
        // a request cut short is never a whole JSON object
        (1..valid.len()).prop_map(move |n| valid[..n].to_vec()),
    ];
    let mut runner =
        proptest::test_runner::TestRunner::new(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() });
    runner
        .run(&bodies, |body| {
            let status = post(addr, "/v2/models/digits_large/infer", &body);
            prop_assert!(matches!(status, Some(400..=499)), "HTTP {status:?} for {:?}", String::from_utf8_lossy(&body));
            Ok(())
        })
        .unwrap();
    assert!(live(addr), "the gateway died on random bodies");
}

/// Requests `basin bench load` sends in the serve test (100 req/s for 1 s).
const BENCH_LOAD_REQUESTS: usize = 100;

/// `basin bench load` (the serve benchmark's load generator) against the live gateway: every
/// request answered, its JSON line complete. Returns how many it sent.
fn bench_load(addr: &str, n: usize) -> usize {
    let out = Command::new(env!("CARGO_BIN_EXE_basin"))
        .args(["bench", "load", &format!("http://{addr}"), "--model", "digits_large", "--rate", &n.to_string(), "--seconds", "1"])
        .args(["--connections", "2"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "basin bench load failed: {}", String::from_utf8_lossy(&out.stderr));
    let line: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("bench load printed {stdout:?}: {e}"));
    assert_eq!(line["sent"], n, "{line}");
    assert_eq!(line["errors"], 0, "{line}");
    let (p50, p99, max) = (
        line["latency_ms"]["p50"].as_f64().unwrap(),
        line["latency_ms"]["p99"].as_f64().unwrap(),
        line["latency_ms"]["max"].as_f64().unwrap(),
    );
    assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{line}");
    assert!(line["achieved_rps"].as_f64().unwrap() > 0.0, "{line}");
    n
}

#[test]
fn serve_answers_a_kserve_client_through_the_cascade_and_writes_the_run() {
    let Some(s) = setup() else { return };
    let dir = tempfile::tempdir().unwrap();
    // the deploy page's experiment: the digits cascade under the bio controller, Path A
    let exp = repo().join("experiments/serve/digits-cascade.toml");
    let run_dir = dir.path().join("run");
    let addr = "127.0.0.1:8810";
    let log = std::fs::File::create(dir.path().join("serve.log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_basin"))
        .arg("serve")
        .arg(&exp)
        .args(["--listen", addr, "--out"])
        .arg(&run_dir)
        .arg("--set")
        .arg(format!("replay.model_dir={:?}", s.models.display().to_string()))
        .arg("--set")
        .arg(format!("replay.ort_lib={:?}", s.ort_lib.display().to_string()))
        .arg("--set")
        .arg(format!("quality.path={:?}", s.models.join("quality.csv").display().to_string()))
        .current_dir(repo())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut server = Server(child);
    let n = 300;
    let client_json = dir.path().join("client.json");
    python(&s, &["traffic", addr, &s.models.display().to_string(), "digits_large", &n.to_string(), &client_json.display().to_string()]);
    python(&s, &["bad", addr, "digits_large"]);
    random_bodies(addr);
    let load = bench_load(addr, BENCH_LOAD_REQUESTS);
    // SAFETY: signalling our own child process.
    assert_eq!(unsafe { libc::kill(server.0.id() as i32, libc::SIGTERM) }, 0);
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = server.0.try_wait().unwrap() {
            break st;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "basin serve did not stop within 60 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = std::fs::read_to_string(dir.path().join("serve.log")).unwrap();
    assert!(status.success(), "basin serve exited with {status}:\n{log}");
    assert!(!log.contains("panicked"), "a panic in basin serve:\n{log}");
    // the traffic, the good request of the bad-request checks, and the one whose client went
    // away (it reaches the gateway or not, depending on when the server sees the close)
    let (least, most) = (n + 1 + load, n + 2 + load);
    python(&s, &["final", &run_dir.display().to_string(), &least.to_string(), &most.to_string()]);
    assert!(Path::new(&run_dir).join("manifest.json").is_file());
}
