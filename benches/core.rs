//! Criterion benches of the simulation core: the event queue and whole runs.
//! `cargo bench --bench core`. For the headline requests/s figures (and the SimPy ratio), see
//! `basin bench speed`; for memory, `basin bench memory`.

use std::hint::black_box;

use basin::cli::bench::{bursty_spec, mm1_spec};
use basin::core::{Engine, SimTime};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn engine(c: &mut Criterion) {
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("schedule+pop 1000 events, 16 pending", |b| {
        let mut e: Engine<u32> = Engine::new();
        for i in 0..16u64 {
            e.schedule_at(SimTime(i * 7), i as u32);
        }
        b.iter(|| {
            for _ in 0..1000 {
                let (t, v) = e.pop().expect("pending events");
                e.schedule_at(SimTime(t.0 + 97 + (v as u64 % 13)), black_box(v));
            }
        })
    });
    g.finish();
}

fn runs(c: &mut Criterion) {
    let mut g = c.benchmark_group("simulate");
    g.sample_size(10);
    let mm1 = mm1_spec(200_000);
    g.throughput(Throughput::Elements(200_000));
    g.bench_function("M/M/1 rho=0.9, 200k requests", |b| b.iter(|| basin::sim::run(black_box(&mm1), 1)));
    let rates = (0..300).map(|s| if (s / 60) % 2 == 0 { 6.0 } else { 30.0 }).collect();
    let bursty = bursty_spec(rates);
    g.throughput(Throughput::Elements(bursty.arrivals.expected_requests() as u64));
    g.bench_function("bursty-like x100 through a batcher, 300 s", |b| b.iter(|| basin::sim::run(black_box(&bursty), 1)));
    g.finish();
}

criterion_group!(benches, engine, runs);
criterion_main!(benches);
