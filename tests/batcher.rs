//! Hand-worked dynamic-batcher scenarios: exact dispatch times and batch sizes.
//! Deterministic arrivals (request traces) and deterministic service times, so every number
//! below can be checked with pencil and paper.

mod common;
use common::*;

use basin::model::server::{ServerKind, ServerSpec};
use basin::sim;

/// (server, instance, start ms, end ms, size) of one batch.
type Batch = (u16, u32, f64, f64, u32);

/// Every batch, in dispatch order.
fn batches(spec: &basin::spec::SimSpec) -> Vec<Batch> {
    let out = sim::run(spec, 1);
    let b = out.batches.expect("batches recorded");
    let r = |x: f64| (x * 1e6).round() / 1e3; // seconds -> ms, rounded to the µs
    (0..b.len()).map(|i| (b.server[i], b.instance[i], r(b.start_s[i]), r(b.end_s[i]), b.size[i])).collect()
}

fn run_with(arrivals_ms: &[f64], srv: ServerSpec) -> (Vec<Batch>, basin::metrics::Summary) {
    let mut s = spec(times(&arrivals_ms.iter().map(|t| t / 1e3).collect::<Vec<_>>()), vec![srv], 10.0);
    s.record_batches = true;
    let b = batches(&s);
    (b, sim::run(&s, 1).summary)
}

/// 5 ms per batch whatever its size.
fn batched(instances: u32, max_batch: u32, delay_us: u64) -> ServerSpec {
    server("b", ServerKind::Batched, instances, max_batch, delay_us, None, |_| (5.0, 1.0))
}

#[test]
fn max_batch_size_reached_dispatches_at_once() {
    // max 4, delay 10 ms: the 4th arrival (3 ms) fills the batch -> dispatched at 3 ms.
    // The next two arrive at 4 and 5 ms; their delay expires at 14 ms (instance free since 8 ms).
    let (b, _) = run_with(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0], batched(1, 4, 10_000));
    assert_eq!(b, vec![(0, 0, 3.0, 8.0, 4), (0, 0, 14.0, 19.0, 2)]);
}

#[test]
fn delay_expiry_dispatches_a_partial_batch() {
    // a lone request waits the whole delay
    let (b, s) = run_with(&[0.0], batched(1, 8, 10_000));
    assert_eq!(b, vec![(0, 0, 10.0, 15.0, 1)]);
    assert_eq!(s.latency_ms.max, Some(15.0));
}

#[test]
fn delay_expires_while_busy_then_dispatches_when_free() {
    // batch of 2 at 0.5 ms (max 2) runs to 5.5 ms. Requests at 1 ms and 1.5 ms: the oldest's
    // delay (2 ms) expires at 3 ms while the instance is busy; when it frees at 5.5 ms, both go.
    let (b, _) = run_with(&[0.0, 0.5, 1.0, 1.5], batched(1, 2, 2_000));
    assert_eq!(b, vec![(0, 0, 0.5, 5.5, 2), (0, 0, 5.5, 10.5, 2)]);
    // here the queue reaches max (2) at 1.5 ms already; with max 3 it would not:
    let (b, _) = run_with(&[0.0, 0.5, 1.0, 1.5], batched(1, 3, 2_000));
    // first batch: 0, 0.5, 1.0 -> full at 1 ms; then 1.5 waits until 3.5 ms (expiry) but the
    // instance is busy until 6 ms -> dispatched at 6 ms.
    assert_eq!(b, vec![(0, 0, 1.0, 6.0, 3), (0, 0, 6.0, 11.0, 1)]);
}

#[test]
fn preferred_sizes_take_the_largest_that_fits_unless_expired() {
    // max 8, preferred [2, 4], delay 10 ms, one instance busy 5 ms per batch.
    let mut srv = batched(1, 8, 10_000);
    srv.preferred_batch_sizes = vec![2, 4];
    // 0..3 ms: 4 requests reach the largest preferred size -> batch of 4 at 3 ms (busy to 8 ms).
    // 4,5,6,7,7.5 ms: 5 wait; at 8 ms the instance frees, the queue (5) ≥ 4 -> preferred 4.
    // The one left (7.5 ms) waits for its delay: 17.5 ms -> expired: min(queue, max) = 1.
    let (b, _) = run_with(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 7.5], srv);
    assert_eq!(b, vec![(0, 0, 3.0, 8.0, 4), (0, 0, 8.0, 13.0, 4), (0, 0, 17.5, 22.5, 1)]);
}

#[test]
fn preferred_size_not_reached_waits_for_delay_then_takes_all() {
    let mut srv = batched(1, 8, 10_000);
    srv.preferred_batch_sizes = vec![4, 8];
    // 3 requests never reach 8 (the trigger): the oldest expires at 10 ms -> all 3 go.
    let (b, _) = run_with(&[0.0, 1.0, 2.0], srv);
    assert_eq!(b, vec![(0, 0, 10.0, 15.0, 3)]);
}

#[test]
fn queue_full_rejects_arrivals() {
    // max batch 1, no delay, 100 ms service, queue of 2: request 0 is served at once,
    // 1 and 2 wait, 3 and 4 find the queue full.
    let mut srv = server("b", ServerKind::Batched, 1, 1, 0, None, |_| (100.0, 1.0));
    srv.max_queue_size = Some(2);
    let (b, s) = run_with(&[0.0, 1.0, 2.0, 3.0, 4.0], srv);
    assert_eq!(b, vec![(0, 0, 0.0, 100.0, 1), (0, 0, 100.0, 200.0, 1), (0, 0, 200.0, 300.0, 1)]);
    assert_eq!((s.admitted, s.rejected, s.rejected_queue_full, s.completed), (3, 2, 2, 3));
}

#[test]
fn several_instances_share_the_queue() {
    // 2 instances, max 2, no delay (greedy), 10 ms per batch.
    // 0 -> inst 0; 0.5 -> inst 1; 1, 1.5 wait; at 10 ms inst 0 takes both; 12 -> inst 1 (free since 10.5).
    let srv = server("b", ServerKind::Batched, 2, 2, 0, None, |_| (10.0, 1.0));
    let (b, _) = run_with(&[0.0, 0.5, 1.0, 1.5, 12.0], srv);
    assert_eq!(b, vec![(0, 0, 0.0, 10.0, 1), (0, 1, 0.5, 10.5, 1), (0, 0, 10.0, 20.0, 2), (0, 1, 12.0, 22.0, 1)]);
}

#[test]
fn local_workers_take_a_fixed_small_batch_at_once() {
    // Path A: 1 worker, batch_size 2, 4 ms per batch. 0 -> alone at once; 1, 2, 3 queue;
    // at 4 ms it takes 2 (1 and 2); at 8 ms it takes 3.
    let srv = server("l", ServerKind::Local, 1, 2, 0, None, |_| (4.0, 1.0));
    let (b, _) = run_with(&[0.0, 1.0, 2.0, 3.0], srv);
    assert_eq!(b, vec![(0, 0, 0.0, 4.0, 1), (0, 0, 4.0, 8.0, 2), (0, 0, 8.0, 12.0, 1)]);
}

#[test]
fn equal_time_arrivals_keep_fifo_order() {
    // three requests at the same instant, max 2: the first two form the batch.
    let mut s = spec(times(&[0.0, 0.0, 0.0]), vec![batched(1, 2, 1_000)], 10.0);
    s.record_requests = true;
    let out = sim::run(&s, 1);
    let r = out.requests.unwrap();
    assert_eq!(r.id, vec![0, 1, 2]);
    assert_eq!(r.batch_size, vec![Some(2), Some(2), Some(1)]);
    assert_eq!(r.start_s[2], Some(0.005));
}

#[test]
fn request_overhead_adds_to_latency_without_occupying_the_instance() {
    // 5 ms batches, 3 ms transport overhead: the instance frees at 5 ms (second request starts
    // then), but each answer reaches the gateway 3 ms after its batch.
    let mut srv = batched(1, 1, 0);
    srv.request_overhead = basin::core::SimDuration::from_millis_f64(3.0);
    let mut s = spec(times(&[0.0, 0.001]), vec![srv], 10.0);
    s.record_requests = true;
    s.record_batches = true;
    let out = sim::run(&s, 1);
    let b = out.batches.unwrap();
    assert_eq!((b.start_s[1] * 1e3).round(), 5.0);
    let r = out.requests.unwrap();
    assert_eq!(r.latency_ms, vec![Some(8.0), Some(12.0)]);
    assert_eq!(out.summary.duration_s, 0.013);
}

#[test]
fn observed_execution_times_replace_the_table_in_order_then_the_table_again() {
    // validation level 2: the first two batches take the observed 2 and 7 ms (5 ms rows, energy
    // 1 J per 5 ms scaled to the observed time), the third the table's 5 ms again
    use basin::core::SimDuration;
    let mut srv = batched(1, 1, 0);
    srv.observed_service = Some(std::sync::Arc::from(vec![SimDuration::from_millis_f64(2.0), SimDuration::from_millis_f64(7.0)]));
    let (b, _) = run_with(&[0.0, 0.0, 0.0], srv.clone());
    assert_eq!(b, vec![(0, 0, 0.0, 2.0, 1), (0, 0, 2.0, 9.0, 1), (0, 0, 9.0, 14.0, 1)]);
    let mut s = spec(times(&[0.0, 0.0, 0.0]), vec![srv], 10.0);
    s.record_batches = true;
    let e = sim::run(&s, 1).batches.unwrap().energy_j;
    assert!((e[0] - 0.4).abs() < 1e-12 && (e[1] - 1.4).abs() < 1e-12 && (e[2] - 1.0).abs() < 1e-12, "{e:?}");
}

#[test]
fn observed_transport_delays_each_request_into_the_queue_and_its_answer_back() {
    // validation levels 1-2: request 0 reaches the queue 3 ms after its arrival, request 1 at
    // once (2 ms arrival + 0), request 2 was not observed and takes that of the nearest observed
    // request, 1 (0 there, 1.5 ms back). Max batch 2, no delay: request 1 runs alone 2-7 ms;
    // 0 and 2 (in the queue at 3 and 4 ms) wait for the instance and run together 7-12 ms.
    use basin::core::SimDuration;
    use basin::model::transport::{ObservedTransport, Transport};
    let t = |to: f64, from: f64| Transport { to_server: SimDuration::from_millis_f64(to), from_server: SimDuration::from_millis_f64(from) };
    let mut srv = batched(1, 2, 0);
    srv.observed_transport = Some(std::sync::Arc::new(ObservedTransport::new([(0, t(3.0, 0.5)), (1, t(0.0, 1.5))]).unwrap()));
    let mut s = spec(times(&[0.0, 0.002, 0.004]), vec![srv], 10.0);
    s.record_batches = true;
    s.record_requests = true;
    assert_eq!(batches(&s), vec![(0, 0, 2.0, 7.0, 1), (0, 0, 7.0, 12.0, 2)]);
    let r = sim::run(&s, 1).requests.unwrap();
    let latency: Vec<f64> = r.latency_ms.iter().map(|l| (l.unwrap() * 1e3).round() / 1e3).collect();
    // 0: 12 + 0.5; 1: 7 - 2 + 1.5; 2: 12 - 4 + 1.5
    assert_eq!(latency, vec![12.5, 6.5, 9.5]);
}

#[test]
fn observed_transport_counts_from_the_arrival_not_from_the_early_exit() {
    // the run's transport runs from the arrival at the gateway, the real gateway's own time
    // before sending included; the simulated early exit (1 ms here) is inside it, not added to
    // it: request 0 (observed 3 ms) reaches the queue at 3 ms, not 4. Request 1 (arrival 10 ms,
    // observed 0.5 ms, shorter than the early exit) enters as the early exit ends, at 11 ms.
    use basin::core::SimDuration;
    use basin::model::cost::CostRow;
    use basin::model::transport::{ObservedTransport, Transport};
    use basin::spec::EarlyExitSpec;
    let t = |to: f64| Transport { to_server: SimDuration::from_millis_f64(to), from_server: SimDuration::ZERO };
    let mut srv = batched(1, 2, 0);
    srv.observed_transport = Some(std::sync::Arc::new(ObservedTransport::new([(0, t(3.0)), (1, t(0.5))]).unwrap()));
    let mut s = spec(times(&[0.0, 0.010]), vec![srv], 10.0);
    s.early_exit = Some(EarlyExitSpec {
        model: "small".into(),
        dist: CostRow::fixed("small", "sim", "dev0", 1, 1.0, 0.0).service_dist().unwrap(),
        quality_index: None,
        overhead_energy_j: 0.0,
    });
    s.record_batches = true;
    assert_eq!(batches(&s), vec![(0, 0, 3.0, 8.0, 1), (0, 0, 11.0, 16.0, 1)]);
}

#[test]
fn observed_overhead_lengthens_each_batch_by_the_one_observed_nearest_its_start() {
    // validation levels 1-2: overheads of 1 ms observed on a batch at 0 and 3 ms on one at 10 ms.
    // Request 0 runs alone 0-6 ms (5 + 1); 1 and 2 (at 2 and 4 ms) then start at 6 ms, nearer
    // 10 than 0, so 5 + 3: 6-14 ms. The extra time draws the row's power as the service does.
    use basin::core::{SimDuration, SimTime};
    use basin::model::transport::ObservedOverhead;
    let ms = |v: f64| SimDuration::from_millis_f64(v);
    let mut srv = batched(1, 2, 0);
    let observed = vec![(SimTime(0), ms(1.0)), (SimTime(10_000_000), ms(3.0))];
    srv.observed_overhead = Some(std::sync::Arc::new(ObservedOverhead::new(observed).unwrap()));
    let mut s = spec(times(&[0.0, 0.002, 0.004]), vec![srv.clone()], 10.0);
    s.record_batches = true;
    assert_eq!(batches(&s), vec![(0, 0, 0.0, 6.0, 1), (0, 0, 6.0, 14.0, 2)]);
    let with = sim::run(&s, 1).batches.unwrap().energy_j;
    srv.observed_overhead = None;
    let mut s = spec(times(&[0.0, 0.002, 0.004]), vec![srv], 10.0);
    s.record_batches = true;
    let without = sim::run(&s, 1).batches.unwrap().energy_j;
    assert!((with[0] / without[0] - 6.0 / 5.0).abs() < 1e-9 && (with[1] / without[1] - 8.0 / 5.0).abs() < 1e-9, "{with:?} {without:?}");
}
