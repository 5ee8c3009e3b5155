//! Transport observed in a real run (validation levels 1–2): per request, the time from its
//! arrival at the gateway until it entered the server's queue, and from the end of its
//! batch's execution until its answer was back at the gateway. On shared cores the HTTP and
//! (de)serialisation time drifts with the host and is heavy-tailed, so the levels that validate
//! batching and queueing take it from the run instead of modelling it; likewise the time an
//! instance spends per execution outside the model ([`ObservedOverhead`]).

use crate::core::{SimDuration, SimTime};

/// One request's transport around the server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Transport {
    /// Arrived at the gateway → in the server's queue.
    pub to_server: SimDuration,
    /// Its batch executed → the answer at the gateway.
    pub from_server: SimDuration,
}

/// Observed transport by request id. A request without an observation (the trace samples one
/// request in N, and the run's controller may have sent it elsewhere) gets that of the observed
/// request nearest it in id, i.e. in arrival order (ties: the earlier): the transport's
/// heavy tail then reaches every request, as it did in the run, not only the traced ones.
#[derive(Clone, Debug, PartialEq)]
pub struct ObservedTransport {
    /// Ascending, one per observed request.
    ids: Vec<u64>,
    transport: Vec<Transport>,
}

impl ObservedTransport {
    /// From `(request id, transport)` pairs (a later pair for the same id wins); `None` when
    /// there are none.
    pub fn new(observed: impl IntoIterator<Item = (u64, Transport)>) -> Option<Self> {
        let by_id: std::collections::BTreeMap<u64, Transport> = observed.into_iter().collect();
        if by_id.is_empty() {
            return None;
        }
        let (ids, transport) = by_id.into_iter().unzip();
        Some(ObservedTransport { ids, transport })
    }

    /// Request `id`'s transport (that of the nearest observed request when it was not observed).
    #[inline]
    pub fn of(&self, id: u64) -> Transport {
        self.transport[nearest(&self.ids, id)]
    }

    /// The observed requests, by id.
    pub fn iter(&self) -> impl Iterator<Item = (u64, Transport)> + '_ {
        self.ids.iter().copied().zip(self.transport.iter().copied())
    }

    /// How many requests were observed.
    pub fn observed(&self) -> usize {
        self.ids.len()
    }
}

/// The index of the key in `sorted` (ascending, not empty) nearest `key` (ties: the earlier).
#[inline]
fn nearest(sorted: &[u64], key: u64) -> usize {
    let i = sorted.partition_point(|&k| k < key);
    let earlier_is_nearer = i == sorted.len() || (i > 0 && key - sorted[i - 1] <= sorted[i] - key);
    if earlier_is_nearer { i - 1 } else { i }
}

/// The time an instance spent per execution outside the model, observed per traced batch of a
/// real run (Triton's execution span minus the model's own logged execution: the Python
/// backend's IPC with its stub process), by the batch's start. A simulated batch starting at `t`
/// takes the overhead of the observed batch that started nearest `t` (ties: the earlier), so the
/// overhead's heavy tail on a shared host reaches the simulation, not only its mean.
#[derive(Clone, Debug, PartialEq)]
pub struct ObservedOverhead {
    /// Each observed batch's start, ascending.
    start_ns: Vec<u64>,
    overhead: Vec<SimDuration>,
}

impl ObservedOverhead {
    /// From `(batch start, overhead)` pairs in any order; `None` when there are none.
    pub fn new(mut observed: Vec<(SimTime, SimDuration)>) -> Option<Self> {
        if observed.is_empty() {
            return None;
        }
        observed.sort_unstable();
        let (start_ns, overhead) = observed.into_iter().map(|(t, d)| (t.0, d)).unzip();
        Some(ObservedOverhead { start_ns, overhead })
    }

    /// The overhead of a batch starting at `t`.
    #[inline]
    pub fn at(&self, t: SimTime) -> SimDuration {
        self.overhead[nearest(&self.start_ns, t.0)]
    }

    /// How many batches were observed.
    pub fn observed(&self) -> usize {
        self.start_ns.len()
    }

    /// The observed overheads, in start order.
    pub fn iter(&self) -> impl Iterator<Item = SimDuration> + '_ {
        self.overhead.iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(to: u64, from: u64) -> Transport {
        Transport { to_server: SimDuration(to), from_server: SimDuration(from) }
    }

    #[test]
    fn unobserved_requests_get_the_nearest_observed() {
        let o = ObservedTransport::new([(2, t(10, 20)), (4, t(30, 40)), (7, t(50, 60))]).unwrap();
        assert_eq!(o.of(2), t(10, 20));
        assert_eq!(o.of(4), t(30, 40));
        // before the first, a tie (3: 2 and 4 are one away) goes to the earlier, 6 is nearer 7
        assert_eq!([0, 1, 3, 5, 6].map(|i| o.of(i)), [t(10, 20), t(10, 20), t(10, 20), t(30, 40), t(50, 60)]);
        assert_eq!(o.of(99), t(50, 60));
        assert_eq!(o.observed(), 3);
        assert_eq!(ObservedTransport::new([]), None);
    }

    #[test]
    fn a_batch_takes_the_overhead_observed_nearest_its_start() {
        let (at, d) = (SimTime, SimDuration);
        let o = ObservedOverhead::new(vec![(at(300), d(3)), (at(100), d(1)), (at(200), d(2))]).unwrap();
        assert_eq!([0, 100, 149, 150, 151, 250, 299, 10_000].map(|t| o.at(at(t)).0), [1, 1, 1, 1, 2, 2, 3, 3]);
        assert_eq!(o.observed(), 3);
        assert_eq!(ObservedOverhead::new(Vec::new()), None);
    }
}
