//! Triton served directly from a generated model repository (scripts/start-triton.sh on
//! scripts/triton_repo.py): controlled-service models hold each batch for the cost table's time
//! and log it; real models answer the digits correctly; bad input fails cleanly. Needs the
//! project venv with the nvidia-pytriton wheel (scripts/setup-python.sh); skipped without it,
//! a failure under BASIN_REQUIRE_HW=1.
#![cfg(feature = "triton")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use basin::hw::backend::InferenceBackend;
use basin::hw::backend::triton::{TritonBackend, TritonClient, TritonOptions};
use basin::model::cost::{CostRow, ServiceDist};
use basin::replay::Dataset;

/// One Triton at a time: two servers competing for this host's cores would blur the timings.
static SERVER: Mutex<()> = Mutex::new(());

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn models_dir() -> PathBuf {
    std::env::var_os("BASIN_MODELS_DIR").map(PathBuf::from).unwrap_or_else(|| repo().join(".cache/models"))
}

/// Whether the venv and the wheel's tritonserver are there (a failure under BASIN_REQUIRE_HW=1).
fn triton_installed(need_models: bool) -> bool {
    let lib = repo().join(".venv/lib");
    let server = |python: std::fs::DirEntry| python.path().join("site-packages/pytriton/tritonserver/bin/tritonserver");
    let mut missing = Vec::new();
    if !std::fs::read_dir(&lib).is_ok_and(|mut d| d.any(|p| p.is_ok_and(|p| server(p).is_file()))) {
        missing.push(format!("the venv's tritonserver ({}/python3.*/site-packages/pytriton)", lib.display()));
    }
    if need_models && !models_dir().join("digits_large.onnx").is_file() {
        missing.push(format!("the digits models ({})", models_dir().display()));
    }
    if missing.is_empty() {
        return true;
    }
    let msg = format!("{} missing", missing.join(" and "));
    let require = std::env::var("BASIN_REQUIRE_HW").is_ok_and(|v| v == "1");
    assert!(!require, "BASIN_REQUIRE_HW=1: {msg}");
    eprintln!("skipping: {msg} (scripts/setup-python.sh, scripts/build-models.sh)");
    false
}

/// CLOCK_MONOTONIC in nanoseconds, the clock of the batch log.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime only writes the timespec it is given.
    assert_eq!(unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) }, 0);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A Triton started by scripts/start-triton.sh with a private BASIN_CACHE; stopped on drop.
struct Triton {
    cache: tempfile::TempDir,
    url: String,
}

fn start_triton(cache: &Path, args: &[&str]) -> Output {
    Command::new(repo().join("scripts/start-triton.sh")).args(args).env("BASIN_CACHE", cache).output().unwrap()
}

impl Triton {
    fn start(cache: tempfile::TempDir, http_port: u16, args: &[&str]) -> Triton {
        let ports = [http_port, http_port + 1, http_port + 2].map(|p| p.to_string());
        let mut all = args.to_vec();
        all.extend(["--http-port", &ports[0], "--grpc-port", &ports[1], "--metrics-port", &ports[2]]);
        let out = start_triton(cache.path(), &all);
        let triton = Triton { url: String::from_utf8_lossy(&out.stdout).trim().to_string(), cache };
        assert!(out.status.success(), "start-triton.sh {all:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
        triton
    }
}

impl Drop for Triton {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("scripts/stop-triton.sh")).env("BASIN_CACHE", self.cache.path()).output();
    }
}

/// The batch log of one model instance: (size, start_ns, end_ns) per batch.
fn read_batch_log(path: &Path) -> Vec<(u64, u64, u64)> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("size,start_ns,end_ns"));
    lines
        .map(|l| {
            let v: Vec<u64> = l.split(',').map(|c| c.parse().unwrap()).collect();
            (v[0], v[1], v[2])
        })
        .collect()
}

/// Executions per batch size in Triton's own statistics.
fn stats_by_size(client: &TritonClient, model: &str) -> (u64, u64, BTreeMap<u64, u64>) {
    let s = client.model_stats(model).unwrap();
    let by_size = s.batch_stats.iter().map(|b| (b.batch_size, b.compute_infer.count)).collect();
    (s.inference_count, s.execution_count, by_size)
}

fn check_log_matches_stats(batches: &[(u64, u64, u64)], client: &TritonClient, model: &str) {
    let mut by_size = BTreeMap::new();
    batches.iter().for_each(|b| *by_size.entry(b.0).or_insert(0) += 1);
    let (inferences, executions, stats) = stats_by_size(client, model);
    assert_eq!(batches.len() as u64, executions, "logged batches vs Triton's execution_count");
    assert_eq!(batches.iter().map(|b| b.0).sum::<u64>(), inferences, "logged rows vs Triton's inference_count");
    assert_eq!(by_size, stats, "logged batches per size vs Triton's batch_stats");
}

const CONTROLLED: &str = r#"{"spin_us": 1000,
 "models": [{"name": "held", "max_batch_size": 2, "max_queue_delay_us": 1000,
             "preferred_batch_sizes": [], "instances": 1, "max_queue_size": 1000, "seed": 11,
             "service": [{"batch_size": 1, "kind": "deterministic", "latency_s": 0.002},
                         {"batch_size": 2, "kind": "quantiles", "knots": [[0.0, 0.003], [0.5, 0.004], [1.0, 0.006]]}]}]}"#;

/// The service times model_support.py draws for `sizes` (in execution order) from `table`.
fn expected_service_s(table: &Path, sizes: &[u64]) -> Vec<f64> {
    let script = "import json, sys; sys.path.insert(0, 'scripts/triton_models')\n\
                  from model_support import ServiceTime\n\
                  m = json.load(open(sys.argv[1]))['models'][0]\n\
                  s = ServiceTime(m['service'], m['seed'])\n\
                  print(' '.join(repr(s.draw_s(int(b))) for b in sys.argv[2:]))";
    let out = Command::new(repo().join(".venv/bin/python"))
        .current_dir(repo())
        .arg("-c")
        .arg(script)
        .arg(table)
        .args(sizes.iter().map(u64::to_string))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().split_whitespace().map(|v| v.parse().unwrap()).collect()
}

#[test]
fn controlled_model_holds_each_batch_for_the_tables_time_and_logs_it() {
    if !triton_installed(false) {
        return;
    }
    let _one = SERVER.lock().unwrap_or_else(|e| e.into_inner());
    let cache = tempfile::tempdir().unwrap();
    let table = cache.path().join("controlled.json");
    std::fs::write(&table, CONTROLLED).unwrap();
    let log_dir = cache.path().join("batches");
    let (t, l) = (table.display().to_string(), log_dir.display().to_string());
    let triton = Triton::start(cache, 8910, &["--controlled", &t, "--batch-log", &l]);

    // One client alone makes batches of one; four at once fill batches of two.
    let before = monotonic_ns();
    for (clients, requests) in [(1, 15), (4, 20)] {
        let threads: Vec<_> = (0..clients)
            .map(|_| {
                let url = triton.url.clone();
                std::thread::spawn(move || {
                    let mut b = TritonBackend::open(&url, "held", TritonOptions::default()).unwrap();
                    b.prepare(1).unwrap();
                    for _ in 0..requests {
                        let out = b.infer().unwrap();
                        assert_eq!((out.batch_size, out.num_classes), (1, 10));
                        assert_eq!(out.argmax(0), 0, "the controlled model answers class 0");
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
    }
    let after = monotonic_ns();

    let batches = read_batch_log(&log_dir.join("held.held_0_0.csv"));
    check_log_matches_stats(&batches, &TritonClient::new(&triton.url, Default::default()).unwrap(), "held");
    assert!(batches.iter().any(|b| b.0 == 1) && batches.iter().any(|b| b.0 == 2), "both rows exercised: {batches:?}");
    let sizes: Vec<u64> = batches.iter().map(|b| b.0).collect();
    let expected = expected_service_s(&table, &sizes);
    let mut late = Vec::new();
    for (&(size, start, end), want_s) in batches.iter().zip(&expected) {
        assert!(before <= start && end <= after, "batch times on this process's CLOCK_MONOTONIC");
        if size == 2 {
            assert!((0.003..=0.006).contains(want_s), "a quantiles draw within the knots: {want_s}");
        }
        let excess_ms = (end - start) as f64 / 1e6 - want_s * 1e3;
        assert!(excess_ms >= -0.02, "a batch of {size} ended {excess_ms:.3} ms before its {want_s} s");
        if excess_ms > 0.3 {
            late.push((size, excess_ms));
        }
    }
    // The hold never ends early; it may end late when this shared host preempts the holding
    // process, which a busy machine does now and then, but to no more than a tenth of them.
    assert!(late.len() * 10 <= batches.len(), "{} of {} batches over +0.3 ms: {late:?}", late.len(), batches.len());
    eprintln!("{} batches, {} over +0.3 ms: {late:?}", batches.len(), late.len());
}

#[test]
fn real_model_repository_answers_the_digits() {
    if !triton_installed(true) {
        return;
    }
    let _one = SERVER.lock().unwrap_or_else(|e| e.into_inner());
    let cache = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(models_dir(), cache.path().join("models")).unwrap();
    let log_dir = cache.path().join("batches");
    let l = log_dir.display().to_string();
    let args =
        ["--models", "digits_large", "--max-batch-size", "8", "--max-queue-delay-us", "2000", "--ort-threads", "1", "--batch-log", &l];
    let triton = Triton::start(cache, 8920, &args);

    let data = Arc::new(Dataset::load_csv(&models_dir().join("digits_test.csv")).unwrap());
    let rows = data.rows() as u32;
    // Two clients, each sending requests of three rows: batches then hold several requests.
    let correct: u32 = (0..2u32)
        .map(|k| {
            let (url, data) = (triton.url.clone(), data.clone());
            std::thread::spawn(move || {
                let mut b = TritonBackend::open(&url, "digits_large", TritonOptions::default()).unwrap();
                let mut correct = 0;
                for first in (k * 3..rows).step_by(6) {
                    let samples: Vec<u32> = (first..(first + 3).min(rows)).collect();
                    let input = data.input_for(b.inputs(), &samples).expect("digits_large takes the data set's rows");
                    b.set_inputs(&input).unwrap();
                    let out = b.infer().unwrap();
                    correct += samples.iter().enumerate().filter(|(i, s)| out.argmax(*i) as u32 == data.label(**s)).count() as u32;
                }
                correct
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|c| c.join().unwrap())
        .sum();
    let accuracy = correct as f64 / rows as f64;
    assert!(accuracy >= 0.9, "digits_large through Triton: accuracy {accuracy}");

    let batches = read_batch_log(&log_dir.join("digits_large.digits_large_0_0.csv"));
    check_log_matches_stats(&batches, &TritonClient::new(&triton.url, Default::default()).unwrap(), "digits_large");
    assert_eq!(batches.iter().map(|b| b.0).sum::<u64>(), rows as u64);
    eprintln!("accuracy {accuracy:.4} over {rows} rows in {} batches", batches.len());
}

#[test]
fn bad_input_fails_with_a_clear_message_and_leaves_nothing_running() {
    if !triton_installed(false) {
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    let check = |args: &[&str], want: &str| {
        let out = start_triton(cache.path(), args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "start-triton.sh {args:?}: {stderr}");
        assert!(stderr.contains(want), "start-triton.sh {args:?}: wanted {want:?} in:\n{stderr}");
        assert!(!cache.path().join("triton/triton.pid").exists(), "no server left behind by {args:?}");
    };
    let bad = cache.path().join("bad.json");
    let mut doc: serde_json::Value = serde_json::from_str(CONTROLLED).unwrap();
    doc["models"][0]["service"][1]["knots"][2][0] = serde_json::json!(0.4);
    std::fs::write(&bad, doc.to_string()).unwrap();
    let b = bad.display().to_string();
    check(&["--controlled", &b, "--http-port", "8930"], "models[0].service[1].knots[2]: probabilities must increase");
    doc["models"][0]["service"].as_array_mut().unwrap().pop();
    std::fs::write(&bad, doc.to_string()).unwrap();
    check(&["--controlled", &b, "--http-port", "8930"], "needs exactly one row per batch size 1..=2");
    std::fs::write(&bad, "{\"spin_us\": 1").unwrap();
    check(&["--controlled", &b, "--http-port", "8930"], "not JSON");
    check(&["--controlled", &b, "--max-batch-size", "4", "--http-port", "8930"], "cannot be combined with --controlled");

    let listener = std::net::TcpListener::bind("127.0.0.1:8931").unwrap();
    check(
        &["--controlled", &b, "--http-port", "8930", "--grpc-port", "8931", "--metrics-port", "8932"],
        "something already answers on 127.0.0.1:8931",
    );
    drop(listener);
}

#[test]
fn controlled_quantile_draws_follow_the_simulators_inverse_cdf() {
    if !triton_installed(false) {
        return;
    }
    // Knots without the 0 and 1 ends, so both constant tails count.
    let mut row = CostRow::fixed("m", "triton", "cpu", 1, 12.0, 0.1);
    (row.latency_p50_ms, row.latency_p90_ms, row.latency_p99_ms) = (Some(10.0), Some(14.0), Some(20.0));
    let dist = row.service_dist().unwrap();
    let ServiceDist::Quantiles { knots, .. } = &dist else { panic!("a quantiles row: {dist:?}") };
    let knots: Vec<[f64; 2]> = knots.iter().map(|&(p, v)| [p, v]).collect();
    // The mean of model_support.inverse_cdf over u (midpoint rule) against the simulator's mean.
    let script = "import json, sys; sys.path.insert(0, 'scripts/triton_models')\n\
                  from model_support import inverse_cdf\n\
                  k = json.loads(sys.argv[1]); n = 200000\n\
                  print(sum(inverse_cdf(k, (i + 0.5) / n) for i in range(n)) / n)";
    let out = Command::new(repo().join(".venv/bin/python"))
        .current_dir(repo())
        .args(["-c", script, &serde_json::to_string(&knots).unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let python_mean: f64 = String::from_utf8(out.stdout).unwrap().trim().parse().unwrap();
    assert!((python_mean - dist.mean_s()).abs() < 1e-9, "model_support {python_mean} s vs basin {} s", dist.mean_s());
}
