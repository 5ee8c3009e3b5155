//! Fuzzed parsers: random mutations of valid files (bytes flipped, lines dropped or duplicated,
//! numbers replaced by NaN/inf/huge/negative values, UTF-8 garbage) through the code paths the
//! CLI uses (`io::experiment::load`, `cli::sweep::prepare`, `CalConfig::load`). Every case must
//! end within a time bound without a panic, and every error must name the file that was
//! mutated.
//!
//! `cargo test --test fuzz_parsers` runs a fast version (FAST_CASES per parser). The long
//! version, `BASIN_FUZZ_CASES=100000 cargo test --release --test fuzz_parsers -- --ignored
//! --nocapture`, prints cases, errors, panics and hangs per parser (docs/src/performance.md).

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

const FAST_CASES: u32 = 64;
/// A case that takes longer than this is a hang.
const CASE_BOUND: Duration = Duration::from_secs(10);

#[derive(Clone, Debug)]
enum Mutation {
    FlipByte { at: usize, bit: u8 },
    DropLine(usize),
    DuplicateLine(usize),
    ReplaceNumber { nth: usize, with: &'static str },
    InsertGarbage { at: usize, bytes: Vec<u8> },
}

const ODD_NUMBERS: &[&str] = &[
    "NaN",
    "nan",
    "inf",
    "-inf",
    "1e308",
    "1e20",
    "-1",
    "-0",
    "0",
    "99999999999999999999",
    "1e-320",
    "4294967296",
    "-9223372036854775809",
];

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::FlipByte { at, bit }),
        any::<usize>().prop_map(Mutation::DropLine),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        (any::<usize>(), proptest::sample::select(ODD_NUMBERS)).prop_map(|(nth, with)| Mutation::ReplaceNumber { nth, with }),
        (
            any::<usize>(),
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 1..6),
                Just("\u{fffd}\u{202e}é\u{0}".as_bytes().to_vec()),
                Just(vec![0xff, 0xfe, 0xc0]),
            ]
        )
            .prop_map(|(at, bytes)| Mutation::InsertGarbage { at, bytes }),
    ]
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    proptest::collection::vec(mutation(), 1..4)
}

/// Spans of the numeric tokens of `b` (digits with an optional sign, point and exponent).
fn number_spans(b: &[u8]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')) {
            let start = if i > 0 && b[i - 1] == b'-' { i - 1 } else { i };
            let mut j = i;
            while j < b.len()
                && (b[j].is_ascii_digit()
                    || b[j] == b'.'
                    || b[j] == b'e'
                    || b[j] == b'E'
                    || ((b[j] == b'-' || b[j] == b'+') && matches!(b[j - 1], b'e' | b'E')))
            {
                j += 1;
            }
            spans.push((start, j));
            i = j;
        } else {
            i += 1;
        }
    }
    spans
}

fn apply(text: &str, muts: &[Mutation]) -> Vec<u8> {
    let mut b = text.as_bytes().to_vec();
    for m in muts {
        match m {
            Mutation::FlipByte { at, bit } if !b.is_empty() => {
                let i = at % b.len();
                b[i] ^= 1 << bit;
            }
            Mutation::DropLine(n) | Mutation::DuplicateLine(n) => {
                let mut lines: Vec<Vec<u8>> = b.split(|&c| c == b'\n').map(<[u8]>::to_vec).collect();
                let i = n % lines.len();
                if matches!(m, Mutation::DropLine(_)) {
                    lines.remove(i);
                } else {
                    let l = lines[i].clone();
                    lines.insert(i, l);
                }
                b = lines.join(&b'\n');
            }
            Mutation::ReplaceNumber { nth, with } => {
                let spans = number_spans(&b);
                if !spans.is_empty() {
                    let (s, e) = spans[nth % spans.len()];
                    b.splice(s..e, with.bytes());
                }
            }
            Mutation::InsertGarbage { at, bytes } => {
                let i = at % (b.len() + 1);
                b.splice(i..i, bytes.iter().copied());
            }
            Mutation::FlipByte { .. } => {}
        }
    }
    b
}

/// One parser under test: the valid files of a case, which one is mutated, and the CLI's entry
/// point.
struct Target {
    name: &'static str,
    files: Vec<(&'static str, String)>,
    mutated: &'static str,
    parse: fn(&Path) -> Result<(), String>,
}

const TRACE: &str = "second,rate\n0,5\n1,7\n2,3\n3,9\n4,4\n";
const COSTS: &str = "model,backend,device,batch_size,latency_ms,energy_j\nm,sim,gpu0,1,2.0,0.2\nm,sim,gpu0,2,2.5,0.3\nm,sim,gpu0,3,3.0,0.4\nm,sim,gpu0,4,3.5,0.5\n";
const QUALITY: &str = "sample,model,confidence,correct\n0,m,0.9,1\n1,m,0.4,0\n2,m,0.7,1\n";
const CARBON: &str = "timestamp,gco2_per_kwh\n2022-01-01T00:00:00Z,200.5\n2022-01-01T01:00:00Z,180\n2022-01-01T02:00:00Z,150.25\n";
const LOAD: &str = "rps,service_factor,overhead_ms,energy_factor\n10,1.1,0.5,1.0\n100,1.3,0.8,1.2\n";

fn experiment(extra_server_keys: &str) -> String {
    format!(
        "name = \"fuzz\"\nseed = 1\nslo_ms = 50\n[workload]\ntrace = \"trace.csv\"\nformat = \"rate_csv\"\nrate_scale = 2.0\n\
         [[device]]\nname = \"gpu0\"\nidle_power_w = 40\n[cost_table]\npath = \"cost.csv\"\ninterpolate = true\n\
         [[server]]\nname = \"s\"\nkind = \"batched\"\nmodel = \"m\"\nbackend = \"sim\"\ndevice = \"gpu0\"\nmax_batch_size = 4\nmax_queue_delay_us = 2000\n{extra_server_keys}\
         [quality]\npath = \"quality.csv\"\n[controller]\nkind = \"open_loop\"\n\
         [energy]\npue = 1.2\n[energy.carbon_trace]\npath = \"carbon.csv\"\ntime_column = \"timestamp\"\nvalue_column = \"gco2_per_kwh\"\noffset_s = 0\n"
    )
}

fn experiment_files(extra: &str) -> Vec<(&'static str, String)> {
    vec![
        ("exp.toml", experiment(extra)),
        ("trace.csv", TRACE.into()),
        ("cost.csv", COSTS.into()),
        ("quality.csv", QUALITY.into()),
        ("carbon.csv", CARBON.into()),
        ("load.csv", LOAD.into()),
    ]
}

fn load_experiment(dir: &Path) -> Result<(), String> {
    basin::io::experiment::load(&dir.join("exp.toml"), &[], None).map(|_| ()).map_err(|e| e.to_string())
}

fn targets() -> Vec<Target> {
    let exp = |name, mutated| Target { name, files: experiment_files(""), mutated, parse: load_experiment };
    let mut t = vec![
        exp("experiment", "exp.toml"),
        exp("trace", "trace.csv"),
        exp("carbon-trace", "carbon.csv"),
        exp("cost-table", "cost.csv"),
        exp("quality-table", "quality.csv"),
        Target {
            name: "load-profile",
            files: experiment_files("load_profile = \"load.csv\"\n"),
            mutated: "load.csv",
            parse: load_experiment,
        },
    ];
    let mut sweep_files = experiment_files("");
    sweep_files.push((
        "sweep.toml",
        "base = \"exp.toml\"\nseeds = [1, 2]\nbaseline = true\n[axes]\n\"server.0.max_queue_delay_us\" = [500, 4000]\n\"server.0.max_batch_size\" = { from = 1, to = 4, steps = 2 }\n\"energy.pue\" = { from = 1.0, to = 1.5, steps = 3, scale = \"log\" }\n".into(),
    ));
    t.push(Target {
        name: "sweep",
        files: sweep_files,
        mutated: "sweep.toml",
        parse: |dir| basin::cli::sweep::prepare(&dir.join("sweep.toml")).map(|_| ()).map_err(|e| format!("{e:#}")),
    });
    t.push(Target {
        name: "calibration-config",
        files: vec![
            ("m.onnx", "not opened by CalConfig::load".into()),
            (
                "cal.toml",
                "description = \"fuzz\"\nseed = 0\nbatch_sizes = [1, 2, 4]\n[models]\nm = \"m.onnx\"\n[backends.onnxruntime]\nthreads = 1\nprovider = \"cpu\"\n\
                 [measure]\nwarmup = 5\nmin_repetitions = 50\nmax_repetitions = 1000\nwindow_batches = 5\nwindow_s = 0.25\nstable_windows = 3\ntolerance = 0.05\nmax_time_s = 3.0\nmin_time_s = 1.0\n\
                 [limits.m]\nwarmup = 2\nmax_time_s = 4.0\n[meter]\nkind = \"estimate\"\nidle_s = 1.0\n"
                    .into(),
            ),
        ],
        mutated: "cal.toml",
        parse: |dir| basin::calibrate::config::CalConfig::load(&dir.join("cal.toml"), &[]).map(|_| ()).map_err(|e| e.to_string()),
    });
    t
}

#[derive(Debug, Default)]
struct Tally {
    cases: u64,
    errors: u64,
    panics: u64,
    hangs: u64,
    slowest: Duration,
}

/// Runs `cases` mutated cases of `target`; fails on the first panic, hang or error that does
/// not name the mutated file.
fn fuzz(target: &Target, cases: u32) -> Tally {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in &target.files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    (target.parse)(dir.path()).unwrap_or_else(|e| panic!("{}: the unmutated files must load: {e}", target.name));
    let original = target.files.iter().find(|(n, _)| *n == target.mutated).map(|(_, t)| t.clone()).unwrap();
    let mutated_path: PathBuf = dir.path().join(target.mutated);
    let tally = std::cell::RefCell::new(Tally::default());
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, max_shrink_iters: 200, ..Config::default() });
    std::panic::set_hook(Box::new(|_| {})); // panics are counted and reported, not printed per case
    let result = runner.run(&mutations(), |muts| {
        std::fs::write(&mutated_path, apply(&original, &muts)).unwrap();
        let (tx, rx) = mpsc::channel();
        let (parse, root) = (target.parse, dir.path().to_path_buf());
        let started = Instant::now();
        let worker = std::thread::spawn(move || {
            let outcome = std::panic::catch_unwind(|| parse(&root));
            let _ = tx.send(outcome);
        });
        let mut t = tally.borrow_mut();
        t.cases += 1;
        let outcome = match rx.recv_timeout(CASE_BOUND) {
            Ok(o) => o,
            Err(_) => {
                t.hangs += 1;
                return Err(TestCaseError::fail(format!("{}: a case ran past {CASE_BOUND:?}: {muts:?}", target.name)));
            }
        };
        let _ = worker.join();
        t.slowest = t.slowest.max(started.elapsed());
        match outcome {
            Err(_) => {
                t.panics += 1;
                Err(TestCaseError::fail(format!("{}: panic on {muts:?}", target.name)))
            }
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                t.errors += 1;
                prop_assert!(
                    e.contains(target.mutated),
                    "{}: the error does not name {}: {e}\nmutations: {muts:?}",
                    target.name,
                    target.mutated
                );
                Ok(())
            }
        }
    });
    drop(std::panic::take_hook()); // the default hook again, so a failure below is printed
    let tally = tally.into_inner();
    if let Err(e) = result {
        panic!("{}: {e}\n{tally:?}", target.name);
    }
    tally
}

#[test]
fn mutated_files_never_panic_or_hang_and_errors_name_the_file() {
    for t in targets() {
        let tally = fuzz(&t, FAST_CASES);
        assert_eq!((tally.cases, tally.panics, tally.hangs), (u64::from(FAST_CASES), 0, 0), "{}: {tally:?}", t.name);
    }
}

/// The long run: `BASIN_FUZZ_CASES` cases per parser (default 100,000).
#[test]
#[ignore = "long: run with --ignored (see the module docs)"]
fn long_fuzz_of_every_parser() {
    let cases: u32 = std::env::var("BASIN_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    println!("{:<20} {:>8} {:>8} {:>7} {:>6} {:>12} {:>9}", "parser", "cases", "errors", "panics", "hangs", "slowest_ms", "wall_s");
    for t in targets() {
        let started = Instant::now();
        let tally = fuzz(&t, cases);
        println!(
            "{:<20} {:>8} {:>8} {:>7} {:>6} {:>12.1} {:>9.1}",
            t.name,
            tally.cases,
            tally.errors,
            tally.panics,
            tally.hangs,
            tally.slowest.as_secs_f64() * 1e3,
            started.elapsed().as_secs_f64()
        );
    }
}
