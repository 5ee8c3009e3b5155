//! TEMPORARY cost-table measurement for replay validation, until `basin calibrate` lands:
//! measures the latency distribution (p50/p90/p95/p99, min, max) and energy of one batch of
//! each size, with real data-set rows, on
//! - ONNX Runtime in process (backend `onnxruntime`): the call the replay's workers make;
//! - Triton (backend `triton`): one KServe v2 request carrying the whole batch, i.e. the round
//!   trip a batch of requests sees, HTTP included.
//!
//! cargo run --release --features ort,triton --example replay_costs -- OUT.csv MODEL:BACKEND:MAXB...
//!
//! Energy comes from `hw::meter::open(Auto)` (the CPU-time estimate on a host without
//! counters: then every row is flagged `energy_estimated`).

use std::path::PathBuf;
use std::time::Instant;

use basin::hw::meter::{MeterChoice, open};
use basin::replay::BackendFactory;
use basin::replay::real::{RealBackends, ReplaySection};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (out, specs) = args.split_first().ok_or_else(|| anyhow::anyhow!("usage: replay_costs OUT.csv MODEL:BACKEND:MAXB..."))?;
    let reps: usize = std::env::var("REPS").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    let base = std::env::current_dir()?;
    let mut sec = ReplaySection::default();
    if let Ok(u) = std::env::var("TRITON_URL") { sec.triton_url = u; }
    let f = RealBackends::new(&sec, &base);
    let data = basin::replay::Dataset::load_csv(&f.model_dir.join("digits_test.csv"))?;
    let mut meter = open(MeterChoice::Auto)?;
    let est = meter.info().estimated;
    eprintln!("meter: {}", meter.info().name);
    let mut csv = String::from("model,backend,device,batch_size,latency_ms,energy_j,distribution,latency_min_ms,latency_p50_ms,latency_p90_ms,latency_p95_ms,latency_p99_ms,latency_max_ms,energy_estimated\n");
    for s in specs {
        let parts: Vec<&str> = s.split(':').collect();
        let [model, backend, maxb] = parts[..] else { anyhow::bail!("bad spec {s}") };
        let maxb: usize = maxb.parse()?;
        let mut b = f.open(model, backend)?;
        for bs in 1..=maxb {
            let samples: Vec<u32> = (0..bs as u32).collect();
            let input = data.input_for(b.inputs(), &samples).ok_or_else(|| anyhow::anyhow!("{model}: input does not fit the data set"))?;
            for _ in 0..20 {
                b.set_inputs(&input)?;
                b.infer()?;
            }
            let mut lat = Vec::with_capacity(reps);
            let e0 = meter.read()?.energy_j;
            for k in 0..reps {
                let rows: Vec<u32> = (0..bs as u32).map(|i| (k as u32 * 7 + i) % data.rows() as u32).collect();
                let input = data.input_for(b.inputs(), &rows).expect("checked");
                let t0 = Instant::now();
                b.set_inputs(&input)?;
                b.infer()?;
                lat.push(t0.elapsed().as_secs_f64() * 1e3);
            }
            let e1 = meter.read()?.energy_j;
            lat.sort_by(f64::total_cmp);
            let q = |p: f64| lat[((lat.len() - 1) as f64 * p).round() as usize];
            let mean = lat.iter().sum::<f64>() / lat.len() as f64;
            let e = (e1 - e0) / reps as f64;
            csv += &format!("{model},{backend},cpu,{bs},{mean:.5},{e:.6},quantiles,{:.5},{:.5},{:.5},{:.5},{:.5},{:.5},{est}\n", q(0.0), q(0.5), q(0.9), q(0.95), q(0.99), q(1.0));
            eprintln!("{model} {backend} b={bs}: mean {mean:.3} ms p50 {:.3} p99 {:.3} energy {e:.5} J", q(0.5), q(0.99));
        }
    }
    let out = PathBuf::from(out);
    if let Some(p) = out.parent() { std::fs::create_dir_all(p)?; }
    std::fs::write(&out, csv)?;
    eprintln!("wrote {}", out.display());
    Ok(())
}
