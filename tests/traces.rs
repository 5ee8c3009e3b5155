//! Trace loaders on the real files, the synthetic generators against the real IPA workloads,
//! and every kind of bad input (the error must name the file and the line).

use basin::cli::trace::{TraceCmd, run};
use basin::io::traces::*;
use basin::traces::r#gen::{GenParams, Shape, generate};
use basin::traces::{TraceFormat, Workload};
use std::path::{Path, PathBuf};

/// The real traces the project carries (`traces/README.md` gives their provenance).
fn traces() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("traces")
}

/// Data rows of a CSV split into fields, read independently of the loaders.
fn rows(path: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(path).unwrap().lines().skip(1).map(|l| l.split(',').map(str::to_owned).collect()).collect()
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn generator_defaults_reproduce_the_real_twitter_workloads() {
    for shape in Shape::ALL {
        let real = load_rate_csv(traces().join(format!("twitter/{}.csv", shape.name()))).unwrap().stats();
        for seed in 1..=5 {
            let params = GenParams { seed, ..shape.default_params() };
            let s = generate(shape, &params).unwrap().stats();
            assert_eq!(s.seconds, real.seconds);
            for (what, got, want) in
                [("mean", s.mean_rps, real.mean_rps), ("peak/mean", s.peak_over_mean, real.peak_over_mean), ("cv", s.cv, real.cv)]
            {
                assert!((got / want - 1.0).abs() <= 0.15, "{shape} seed {seed}: {what} {got:.3} vs real {want:.3}");
            }
        }
    }
}

#[test]
fn twitter_rate_csvs_load_and_damped_is_raw_div_8() {
    for shape in Shape::ALL {
        let path = traces().join(format!("twitter/{}.csv", shape.name()));
        let t = load_rate_csv(&path).unwrap();
        let expect: Vec<f64> = rows(&path).iter().map(|r| r[1].parse().unwrap()).collect();
        assert_eq!(t.rates_rps, expect);
        assert_eq!(t.rates_rps.len(), 1200);
        assert_eq!(detect_format(&path).unwrap(), TraceFormat::RateCsv);

        // The undamped file as an IPA raw series, damped by 8 as IPA's replayer does, gives the
        // damped file back; a window cuts the same stretch.
        let raw = load_rate_csv(traces().join(format!("twitter/{}_undamped.csv", shape.name()))).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let series: Vec<String> = raw.rates_rps.iter().map(|v| format!("{v}")).collect();
        let ipa = write(&dir, "workload.txt", &series.join("\n"));
        assert_eq!(detect_format(&ipa).unwrap(), TraceFormat::IpaRaw);
        assert_eq!(load_ipa_raw(&ipa, None, 8).unwrap(), t);
        assert_eq!(load_ipa_raw(&ipa, Some((100, 400)), 8).unwrap().rates_rps, t.rates_rps[100..400]);
    }
}

#[test]
fn carbon_traces_load_in_both_layouts() {
    for (file, time, value, step_s, n) in [
        ("carbon/US-CAL-CISO_2022.csv", "timestamp_utc", "gco2_per_kwh_direct", 3600.0, 8760),
        ("carbon/GB_2020_30min.csv", "timestamp", "gco2_per_kwh", 1800.0, 18576),
    ] {
        let path = traces().join(file);
        let c = load_carbon_csv(&path, time, value).unwrap();
        let expect: Vec<f64> = rows(&path).iter().map(|r| r[1].parse().unwrap()).collect();
        assert_eq!(c.len(), n);
        assert_eq!(c.values_g_per_kwh(), expect.as_slice());
        assert!(c.times_s().windows(2).all(|w| w[1] - w[0] == step_s), "{file}: regular steps");
        // piecewise constant: mid-row lookups hold the row's value; an offset of one day
        // starts 24 h (or 48 half-hours) in.
        assert_eq!(c.at(1.5 * step_s), expect[1]);
        let day = (86_400.0 / step_s) as usize;
        let shifted = c.clone().with_offset(86_400.0);
        assert_eq!(shifted.at(0.0), expect[day]);
        assert_eq!(shifted.next_change_after(0.0), Some(step_s));
        assert_eq!(c.at(1e12), *expect.last().unwrap());
        let mean = expect.iter().sum::<f64>() / n as f64;
        assert!((c.mean() - mean).abs() < 1e-9 * mean);
    }
}

#[test]
fn azure_request_csv_loads_sorted() {
    let path = traces().join("llm/azure_llm_2023_conv.csv");
    assert_eq!(detect_format(&path).unwrap(), TraceFormat::RequestCsv);
    let r = load_request_csv(&path, "arrival_s").unwrap();
    assert_eq!(r.arrivals_s.len(), rows(&path).len());
    assert!(r.arrivals_s.windows(2).all(|w| w[0] <= w[1]));
    let Workload::Requests(w) = load_workload(&path, None, IpaOptions::default()).unwrap() else { panic!("expected requests") };
    assert_eq!(w, r);
    let per_s = w.per_second();
    assert_eq!(per_s.rates_rps.iter().sum::<f64>(), r.arrivals_s.len() as f64);
    // rate_scale 2 halves the time span
    let fast = Workload::Requests(r.clone()).scaled(2.0).unwrap();
    assert_eq!(fast.per_second().rates_rps.len(), (r.duration_s() / 2.0).floor() as usize + 1);
}

#[test]
fn ipa_raw_window_and_damping() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(&dir, "raw.txt", "10 21\n39   40\n\n57\n");
    assert_eq!(load_ipa_raw(&p, None, 1).unwrap().rates_rps, vec![10.0, 21.0, 39.0, 40.0, 57.0]);
    assert_eq!(load_ipa_raw(&p, Some((1, 4)), 10).unwrap().rates_rps, vec![2.0, 3.0, 4.0]);
    for (w, d) in [(Some((3, 3)), 1), (Some((2, 6)), 1), (None, 0)] {
        let e = load_ipa_raw(&p, w, d).unwrap_err().to_string();
        assert!(e.contains("raw.txt"), "{e}");
    }
    let bad = write(&dir, "bad.txt", "10 20\n30 -4\n");
    let e = load_ipa_raw(&bad, None, 8).unwrap_err().to_string();
    assert!(e.contains("bad.txt, line 2") && e.contains("-4"), "{e}");
}

#[test]
fn writer_round_trips_and_leaves_no_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("gen.csv");
    let t = generate(Shape::Fluctuating, &Shape::Fluctuating.default_params()).unwrap();
    write_rate_csv(&out, &t).unwrap();
    assert_eq!(load_rate_csv(&out).unwrap(), t);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    let e = write_rate_csv(dir.path().join("no/such/dir/x.csv"), &t).unwrap_err().to_string();
    assert!(e.contains("x.csv"), "{e}");
}

#[test]
fn cli_gen_then_stats() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("b.csv");
    let cmd = TraceCmd::Gen {
        shape: Shape::Bursty,
        mean_rps: Some(40.0),
        burstiness: None,
        duration_s: Some(600),
        seed: Some(9),
        out: out.clone(),
    };
    run(cmd).unwrap();
    let t = load_rate_csv(&out).unwrap();
    assert_eq!(t.rates_rps.len(), 600);
    assert!((t.stats().mean_rps / 40.0 - 1.0).abs() < 0.05);
    run(TraceCmd::Stats { file: out, format: None, window: None, damping: 1 }).unwrap();
    assert!(run(TraceCmd::Stats { file: dir.path().join("missing.csv"), format: None, window: None, damping: 1 }).is_err());
}

/// Every bad input names the file and (where there is one) the 1-based line.
#[test]
fn bad_inputs_name_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let rate = |name: &str, text: &str| load_rate_csv(write(&dir, name, text)).unwrap_err().to_string();
    let req = |name: &str, text: &str| load_request_csv(write(&dir, name, text), "arrival_s").unwrap_err().to_string();
    let carbon = |name: &str, text: &str| load_carbon_csv(write(&dir, name, text), "timestamp", "g").unwrap_err().to_string();
    let cases: Vec<(String, &str, &[&str])> = vec![
        (load_rate_csv(dir.path().join("missing.csv")).unwrap_err().to_string(), "missing.csv", &["cannot read"]),
        (rate("empty.csv", ""), "empty.csv", &["empty"]),
        (rate("header_only.csv", "second,rate\n"), "header_only.csv", &["line 1", "no data rows"]),
        (rate("negative.csv", "second,rate\n0,1\n1,-3\n"), "negative.csv", &["line 3", "negative"]),
        (rate("nan.csv", "second,rate\n0,1\n1,2\n2,NaN\n"), "nan.csv", &["line 4", "NaN", "`rate`"]),
        (rate("text.csv", "second,rate\n0,abc\n"), "text.csv", &["line 2", "`abc`", "not a number"]),
        (rate("gap.csv", "second,rate\n0,1\n2,1\n"), "gap.csv", &["line 3", "consecutive"]),
        (rate("start1.csv", "second,rate\n1,1\n"), "start1.csv", &["line 2", "consecutive"]),
        (rate("nocol.csv", "second,rps\n0,1\n"), "nocol.csv", &["line 1", "`rate`"]),
        (rate("short.csv", "second,x,rate\n0,1,2\n1,2\n"), "short.csv", &["line 3", "`rate`"]),
        (rate("inf.csv", "second,rate\n0,inf\n"), "inf.csv", &["line 2", "infinite"]),
        (req("unsorted.csv", "arrival_s,tokens\n0.5,1\n1.5,2\n1.0,3\n"), "unsorted.csv", &["line 4", "sorted"]),
        (req("req_neg.csv", "arrival_s\n-1\n"), "req_neg.csv", &["line 2"]),
        (req("req_nan.csv", "arrival_s\n0\nNaN\n"), "req_nan.csv", &["line 3"]),
        (req("req_empty.csv", "arrival_s\n\n"), "req_empty.csv", &["line 1", "no data rows"]),
        (carbon("c_order.csv", "timestamp,g\n2022-01-01T01:00:00Z,1\n2022-01-01T00:00:00Z,2\n"), "c_order.csv", &["line 3", "not after"]),
        (carbon("c_time.csv", "timestamp,g\n2022-01-01T00:00:00Z,1\nnoon,2\n"), "c_time.csv", &["line 3", "`noon`"]),
        (carbon("c_neg.csv", "timestamp,g\n2022-01-01 00:00:00,-1\n"), "c_neg.csv", &["line 2", "`g`"]),
        (detect_format(write(&dir, "what.csv", "\ntime,value\n1,2\n")).unwrap_err().to_string(), "what.csv", &["line 2", "cannot tell"]),
        (load_ipa_raw(write(&dir, "ipa_empty.txt", " \n"), None, 8).unwrap_err().to_string(), "ipa_empty.txt", &["no values"]),
        (load_ipa_raw(write(&dir, "ipa_f.txt", "1\n2\n3.5\n"), None, 8).unwrap_err().to_string(), "ipa_f.txt", &["line 3", "`3.5`"]),
    ];
    for (msg, file, parts) in cases {
        assert!(msg.contains(file), "`{msg}` does not name {file}");
        for p in parts {
            assert!(msg.contains(p), "`{msg}` lacks `{p}`");
        }
    }
}
