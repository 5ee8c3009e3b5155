//! Transport observed in a real run (validation levels 1–2): per request, the time from the
//! gateway handing it to a client until it entered the server's queue, and from the end of its
//! batch's execution until its answer was back at the gateway. On shared cores the HTTP and
//! (de)serialisation time drifts with the host and is heavy-tailed, so the levels that validate
//! batching and queueing take it from the run instead of modelling it.

use crate::core::SimDuration;

/// One request's transport around the server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Transport {
    /// Handed to a client → in the server's queue.
    pub to_server: SimDuration,
    /// Its batch executed → the answer at the gateway.
    pub from_server: SimDuration,
}

/// Observed transport by request id. A request the run did not send to this server (its
/// controller decided otherwise) gets the mean of those it did.
#[derive(Clone, Debug, PartialEq)]
pub struct ObservedTransport {
    by_id: Vec<Option<Transport>>,
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
        (n > 0).then(|| ObservedTransport {
            by_id,
            mean: Transport { to_server: SimDuration((to / n as u128) as u64), from_server: SimDuration((from / n as u128) as u64) },
            observed: n,
        })
    }

    /// Request `id`'s transport (the mean when it was not observed).
    #[inline]
    pub fn of(&self, id: u64) -> Transport {
        usize::try_from(id).ok().and_then(|i| self.by_id.get(i).copied().flatten()).unwrap_or(self.mean)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn t(to: u64, from: u64) -> Transport {
        Transport { to_server: SimDuration(to), from_server: SimDuration(from) }
    }

    #[test]
    fn unobserved_requests_get_the_mean() {
        let o = ObservedTransport::new([(0, t(10, 20)), (3, t(30, 40))]).unwrap();
        assert_eq!(o.of(0), t(10, 20));
        assert_eq!(o.of(3), t(30, 40));
        assert_eq!(o.of(1), t(20, 30));
        assert_eq!(o.of(99), t(20, 30));
        assert_eq!(o.observed(), 2);
        assert_eq!(ObservedTransport::new([]), None);
    }
}
