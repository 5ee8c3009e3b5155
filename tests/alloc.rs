//! The simulator's per-request path does not allocate: a run of 4N requests makes about as many
//! heap allocations as a run of N (only amortised growth of the per-interval time series and the
//! scratch vectors is allowed), for every controller of `basin bench controllers`, with a
//! cascade and a two-variant batcher. Counted with a global allocator that wraps the system's
//! (this test binary only).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_of(spec: &basin::spec::SimSpec) -> (u64, u64) {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let out = basin::sim::run(spec, 1);
    (ALLOCATIONS.load(Ordering::Relaxed) - before, out.summary.requests)
}

#[test]
fn a_run_four_times_longer_makes_about_as_many_allocations() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let rates = basin::io::traces::load_rate_csv(root.join("traces/twitter/bursty.csv")).expect("trace").rates_rps;
    for (name, src) in basin::cli::bench::BENCH_CONTROLLERS {
        let cfg: basin::model::controller::ControllerConfig = toml::from_str(src).expect("bench controller config");
        let spec = basin::cli::bench::cascade_spec(&rates, cfg, true);
        let short = basin::spec::SimSpec { max_requests: Some(50_000), ..spec.clone() };
        let long = basin::spec::SimSpec { max_requests: Some(200_000), ..spec };
        let (a_short, n_short) = allocations_of(&short);
        let (a_long, n_long) = allocations_of(&long);
        assert_eq!((n_short, n_long), (50_000, 200_000), "{name}");
        // 150,000 more requests; a per-request allocation would add at least as many
        let extra = a_long.saturating_sub(a_short);
        println!("{name:<24} {a_short:>6} allocations for 50,000 requests, {a_long:>6} for 200,000");
        assert!(extra < 200, "{name}: {extra} more allocations for 150,000 more requests ({a_short} vs {a_long})");
    }
}
