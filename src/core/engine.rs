//! The event queue: a calendar of future events ordered by `(time, sequence)`.
//!
//! Events scheduled for the same instant are delivered in the order they were scheduled
//! (FIFO ties), so a run never depends on heap internals. The engine owns the clock; models
//! never read it except through [`Engine::now`], and nothing here touches the wall clock.
//!
//! Beside the heap the engine keeps one *lane*: a single entry for a stream of events that is
//! produced one at a time in time order (the workload's next arrival). Every request passes
//! through it, so keeping it out of the heap saves a push and a pop per request; it takes its
//! sequence number from the same counter, so the delivery order is exactly the heap's.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::time::{SimDuration, SimTime};

struct Entry<E> {
    time: SimTime,
    seq: u64,
    event: E,
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, o: &Self) -> bool {
        self.time == o.time && self.seq == o.seq
    }
}
impl<E> Eq for Entry<E> {}
impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl<E> Ord for Entry<E> {
    // BinaryHeap is a max-heap: reverse so the earliest (time, seq) is on top.
    fn cmp(&self, o: &Self) -> Ordering {
        (o.time, o.seq).cmp(&(self.time, self.seq))
    }
}

/// A discrete-event calendar with FIFO tie-breaking.
pub struct Engine<E> {
    now: SimTime,
    seq: u64,
    heap: BinaryHeap<Entry<E>>,
    lane: Option<Entry<E>>,
    delivered: u64,
}

impl<E> Default for Engine<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E> Engine<E> {
    pub fn new() -> Self {
        Engine { now: SimTime::ZERO, seq: 0, heap: BinaryHeap::new(), lane: None, delivered: 0 }
    }

    /// The current simulated time: the time of the last event delivered.
    #[inline]
    pub fn now(&self) -> SimTime {
        self.now
    }

    /// Schedules `event` at absolute time `at`. Scheduling in the past is a logic error; the
    /// event is delivered at the current time instead (still after everything already due).
    #[inline]
    pub fn schedule_at(&mut self, at: SimTime, event: E) {
        debug_assert!(at >= self.now, "event scheduled in the past: {at} < {}", self.now);
        let time = at.max(self.now);
        self.seq += 1;
        self.heap.push(Entry { time, seq: self.seq, event });
    }

    /// Schedules `event` at `at` in the lane, which must be empty (its previous entry was
    /// delivered): delivered in the same order as if it had been scheduled with
    /// [`Engine::schedule_at`].
    #[inline]
    pub fn schedule_lane_at(&mut self, at: SimTime, event: E) {
        debug_assert!(self.lane.is_none(), "the lane holds one entry at a time");
        debug_assert!(at >= self.now, "event scheduled in the past: {at} < {}", self.now);
        self.seq += 1;
        self.lane = Some(Entry { time: at.max(self.now), seq: self.seq, event });
    }

    /// Schedules `event` after `delay` from now.
    #[inline]
    pub fn schedule_in(&mut self, delay: SimDuration, event: E) {
        self.schedule_at(self.now + delay, event)
    }

    /// Removes and returns the next event, advancing the clock to its time.
    #[inline]
    pub fn pop(&mut self) -> Option<(SimTime, E)> {
        let lane_first = match (&self.lane, self.heap.peek()) {
            (Some(l), Some(h)) => (l.time, l.seq) < (h.time, h.seq),
            (lane, None) => lane.is_some(),
            (None, Some(_)) => false,
        };
        let e = if lane_first { self.lane.take()? } else { self.heap.pop()? };
        self.now = e.time;
        self.delivered += 1;
        Some((e.time, e.event))
    }

    /// The next event's time without delivering it.
    pub fn peek_time(&self) -> Option<SimTime> {
        let heap = self.heap.peek().map(|e| e.time);
        match &self.lane {
            Some(l) => Some(heap.map_or(l.time, |h| h.min(l.time))),
            None => heap,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty() && self.lane.is_none()
    }
    pub fn pending(&self) -> usize {
        self.heap.len() + self.lane.is_some() as usize
    }
    /// Events delivered so far (for throughput benchmarks).
    pub fn delivered(&self) -> u64 {
        self.delivered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_first_and_fifo_for_ties() {
        let mut e = Engine::new();
        e.schedule_at(SimTime(10), "b1");
        e.schedule_at(SimTime(5), "a");
        e.schedule_at(SimTime(10), "b2");
        e.schedule_at(SimTime(10), "b3");
        e.schedule_at(SimTime(7), "x");
        let order: Vec<_> = std::iter::from_fn(|| e.pop().map(|(_, v)| v)).collect();
        assert_eq!(order, vec!["a", "x", "b1", "b2", "b3"]);
        assert_eq!(e.now(), SimTime(10));
    }

    #[test]
    fn events_scheduled_while_running_at_now_come_after_pending_ties() {
        let mut e = Engine::new();
        e.schedule_at(SimTime(1), 1);
        e.schedule_at(SimTime(1), 2);
        let (_, first) = e.pop().unwrap();
        assert_eq!(first, 1);
        e.schedule_in(SimDuration::ZERO, 3);
        assert_eq!(e.pop().unwrap().1, 2);
        assert_eq!(e.pop().unwrap().1, 3);
    }

    #[test]
    fn the_lane_keeps_the_heap_order_fifo_ties_included() {
        let mut e = Engine::new();
        fn pop(e: &mut Engine<&'static str>) -> &'static str {
            e.pop().unwrap().1
        }
        e.schedule_lane_at(SimTime(5), "a");
        e.schedule_at(SimTime(5), "b");
        e.schedule_at(SimTime(3), "c");
        assert_eq!(e.peek_time(), Some(SimTime(3)));
        assert_eq!((pop(&mut e), pop(&mut e)), ("c", "a"));
        e.schedule_at(SimTime(5), "d");
        e.schedule_lane_at(SimTime(5), "e");
        assert_eq!((pop(&mut e), pop(&mut e), pop(&mut e)), ("b", "d", "e"));
        e.schedule_lane_at(SimTime(7), "f");
        e.schedule_at(SimTime(6), "g");
        assert_eq!(e.pending(), 2);
        assert_eq!((pop(&mut e), pop(&mut e)), ("g", "f"));
        assert!(e.is_empty() && e.peek_time().is_none());
    }
}
