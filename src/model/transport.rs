//! Transport observed in a real run (validation levels 1–2): per request, the time from the
//! gateway handing it to a client until it entered the server's queue, and from the end of its
//! batch's execution until its answer was back at the gateway. On shared cores the HTTP and
//! (de)serialisation time drifts with the host and is heavy-tailed, so the levels that validate
//! batching and queueing take it from the run instead of modelling it; likewise the time an
//! instance spends per execution outside the model ([`ObservedOverhead`]).

use crate::core::{SimDuration, SimTime};

/// One request's transport around the server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Transport {
    /// Handed to a client → in the server's queue.
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
    by_id: Vec<Option<Transport>>,
    nearest: Vec<Transport>,
    mean: Transport,
    observed: usize,
}

impl ObservedTransport {
    /// From `(request id, transport)` pairs; `None` when there are none.
    pub fn new(observed: impl IntoIterator<Item = (u64, Transport)>) -> Option<Self> {
        let mut by_id: Vec<Option<Transport>> = Vec::new();
        let (mut n, mut to, mut from) = (0usize, 0u128, 0u128);
        for (id, t) in observed {
            let i = usize::try_from(id).ok()?;
            if by_id.len() <= i {
                by_id.resize(i + 1, None);
            }
            by_id[i] = Some(t);
        }
        for t in by_id.iter().flatten() {
            n += 1;
            to += t.to_server.0 as u128;
            from += t.from_server.0 as u128;
        }
        if n == 0 {
            return None;
        }
        let nearest = nearest_fill(&by_id);
        Some(ObservedTransport {
            by_id,
            nearest,
            mean: Transport { to_server: SimDuration((to / n as u128) as u64), from_server: SimDuration((from / n as u128) as u64) },
            observed: n,
        })
    }

    /// Request `id`'s transport (that of the nearest observed request when it was not observed).
    #[inline]
    pub fn of(&self, id: u64) -> Transport {
        let last = self.nearest.len() - 1;
        self.nearest[usize::try_from(id).map_or(last, |i| i.min(last))]
    }

    /// The mean over the observed requests.
    pub fn mean(&self) -> Transport {
        self.mean
    }

    /// The observed requests, by id.
    pub fn iter(&self) -> impl Iterator<Item = (u64, Transport)> + '_ {
        self.by_id.iter().enumerate().filter_map(|(i, t)| t.map(|t| (i as u64, t)))
    }

    /// How many requests were observed.
    pub fn observed(&self) -> usize {
        self.observed
    }
}

/// Every slot's value, or that of the nearest slot that has one (ties: the earlier); at least
/// one slot has one.
fn nearest_fill<T: Copy>(slots: &[Option<T>]) -> Vec<T> {
    let mut before: Vec<Option<(usize, T)>> = Vec::with_capacity(slots.len());
    let mut last = None;
    for (i, v) in slots.iter().enumerate() {
        if let Some(v) = v {
            last = Some((i, *v));
        }
        before.push(last);
    }
    let mut out = Vec::with_capacity(slots.len());
    let mut after = None;
    for i in (0..slots.len()).rev() {
        if let Some(v) = slots[i] {
            after = Some((i, v));
        }
        out.push(match (before[i], after) {
            (Some((b, vb)), Some((a, va))) => {
                if i - b <= a - i {
                    vb
                } else {
                    va
                }
            }
            (Some((_, v)), None) | (None, Some((_, v))) => v,
            (None, None) => unreachable!("at least one slot has a value"),
        });
    }
    out.reverse();
    out
}

/// The time an instance spent per execution outside the model, observed per traced batch of a
/// real run (Triton's execution span minus the model's own logged execution: the Python
/// backend's IPC with its stub process), by the batch's start. A simulated batch starting at `t`
/// takes the overhead of the observed batch that started nearest `t` (ties: the earlier), so the
/// overhead's heavy tail on a shared host reaches the simulation, not only its mean.
#[derive(Clone, Debug, PartialEq)]
pub struct ObservedOverhead {
    start: Vec<SimTime>,
    overhead: Vec<SimDuration>,
}

impl ObservedOverhead {
    /// From `(batch start, overhead)` pairs in any order; `None` when there are none.
    pub fn new(mut observed: Vec<(SimTime, SimDuration)>) -> Option<Self> {
        if observed.is_empty() {
            return None;
        }
        observed.sort_unstable();
        let (start, overhead) = observed.into_iter().unzip();
        Some(ObservedOverhead { start, overhead })
    }

    /// The overhead of a batch starting at `t`.
    #[inline]
    pub fn at(&self, t: SimTime) -> SimDuration {
        let i = self.start.partition_point(|&s| s < t);
        let nearer_earlier = i == self.start.len() || (i > 0 && t.0 - self.start[i - 1].0 <= self.start[i].0 - t.0);
        self.overhead[if nearer_earlier { i - 1 } else { i }]
    }

    /// How many batches were observed.
    pub fn observed(&self) -> usize {
        self.start.len()
    }

    /// The observed overheads, in start order.
    pub fn iter(&self) -> impl Iterator<Item = SimDuration> + '_ {
        self.overhead.iter().copied()
    }

    /// The mean over the observed batches.
    pub fn mean(&self) -> SimDuration {
        SimDuration(self.overhead.iter().map(|d| d.0).sum::<u64>() / self.overhead.len() as u64)
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
        assert_eq!(o.mean(), t(30, 40));
        assert_eq!(ObservedTransport::new([]), None);
    }

    #[test]
    fn a_batch_takes_the_overhead_observed_nearest_its_start() {
        let (at, d) = (SimTime, SimDuration);
        let o = ObservedOverhead::new(vec![(at(300), d(3)), (at(100), d(1)), (at(200), d(2))]).unwrap();
        assert_eq!([0, 100, 149, 150, 151, 250, 299, 10_000].map(|t| o.at(at(t)).0), [1, 1, 1, 1, 2, 2, 3, 3]);
        assert_eq!((o.observed(), o.mean()), (3, d(2)));
        assert_eq!(ObservedOverhead::new(Vec::new()), None);
    }
}
