//! The summary's latency histogram on the request path: HDR's bucketing, recorded inline.
//!
//! [`LatencyCounts`] counts nanosecond latencies in exactly the buckets of an
//! `hdrhistogram::Histogram` with 3 significant digits and a lowest discernible value of 1, and
//! hands that histogram over when the run ends ([`LatencyCounts::histogram`]). So every
//! percentile is the one the crate computes. Recording is an index computation and an add: the
//! crate's `record` also resizes, clamps, saturates and tracks the minimum, maximum and total on
//! every call, which cost more per served request than any other single step of the simulation.

use hdrhistogram::Histogram;

/// log2 of half the sub-buckets per bucket: 3 significant digits need 2 × 10³ ≤ 2¹¹ sub-buckets
/// (as `Histogram::new(3)` derives them).
const HALF_MAGNITUDE: u32 = 10;
const SUB_BUCKETS: u64 = 1 << (HALF_MAGNITUDE + 1);
/// Leading zeros of the largest value bucket 0 holds, subtracted to get a value's bucket.
const LEADING_ZERO_BASE: u32 = 64 - (HALF_MAGNITUDE + 1);

/// Counts per HDR bucket (3 significant digits), grown on demand.
#[derive(Clone, Debug, Default)]
pub struct LatencyCounts {
    counts: Vec<u64>,
}

/// The HDR index of `value` (≥ 1): its bucket by magnitude, then its sub-bucket.
#[inline(always)]
fn index_of(value: u64) -> usize {
    let bucket = LEADING_ZERO_BASE - (value | (SUB_BUCKETS - 1)).leading_zeros();
    let sub = (value >> bucket) as usize;
    ((bucket as usize + 1) << HALF_MAGNITUDE) + sub - (1 << HALF_MAGNITUDE)
}

/// The lowest value of the HDR index `index` (the inverse of [`index_of`]).
fn value_of(index: usize) -> u64 {
    let half = 1usize << HALF_MAGNITUDE;
    let bucket = (index >> HALF_MAGNITUDE) as isize - 1;
    let sub = (index & (half - 1)) + half;
    if bucket < 0 { (sub - half) as u64 } else { (sub as u64) << bucket }
}

impl LatencyCounts {
    /// Counts one latency of `ns` nanoseconds (0 counts as 1, as the histogram cannot hold 0).
    #[inline]
    pub fn record(&mut self, ns: u64) {
        let i = index_of(ns.max(1));
        match self.counts.get_mut(i) {
            Some(c) => *c += 1,
            None => self.grow_and_record(i),
        }
    }

    #[cold]
    #[inline(never)]
    fn grow_and_record(&mut self, i: usize) {
        self.counts.resize(i + 1, 0);
        self.counts[i] += 1;
    }

    /// The histogram of everything recorded (each bucket's count at its lowest value).
    pub fn histogram(&self) -> Histogram<u64> {
        let mut h = Histogram::new(3).expect("3 significant digits are valid");
        for (i, &n) in self.counts.iter().enumerate().filter(|(_, n)| **n > 0) {
            h.record_n(value_of(i), n).expect("an auto-resizing histogram grows to any value");
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn both(values: &[u64]) -> (Histogram<u64>, Histogram<u64>) {
        let mut direct = Histogram::<u64>::new(3).unwrap();
        let mut counts = LatencyCounts::default();
        for &v in values {
            direct.record(v.max(1)).unwrap();
            counts.record(v);
        }
        (direct, counts.histogram())
    }

    #[test]
    fn bucket_edges_and_extremes_land_where_the_crate_puts_them() {
        let mut values: Vec<u64> = vec![0, 1, 2, 1023, 1024, 2047, 2048, 2049, 4095, 4096, 1 << 40, u64::MAX >> 2];
        values.extend((0..50).map(|k| 1u64 << k).flat_map(|p| [p - 1, p, p + 1]));
        let (direct, ours) = both(&values);
        assert_eq!(direct.len(), ours.len());
        for v in &values {
            let v = (*v).max(1);
            assert_eq!(direct.count_at(v), ours.count_at(v), "value {v}");
        }
        for q in [0.0, 0.001, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0] {
            assert_eq!(direct.value_at_quantile(q), ours.value_at_quantile(q), "q {q}");
        }
    }

    proptest! {
        #[test]
        fn every_quantile_equals_the_crates(values in prop::collection::vec(0u64..2_000_000_000_000, 1..400), q in 0.0f64..=1.0) {
            let (direct, ours) = both(&values);
            prop_assert_eq!(direct.len(), ours.len());
            prop_assert_eq!(direct.value_at_quantile(q), ours.value_at_quantile(q));
            for p in [0.5, 0.95, 0.99] {
                prop_assert_eq!(direct.value_at_quantile(p), ours.value_at_quantile(p));
            }
        }
    }
}
