//! A slot arena: values parked outside the event queue (so events stay small), addressed by a
//! `u32` slot that is reused once freed. Freed slots are reused last-in first-out.

#[derive(Clone, Debug)]
pub struct Slots<T> {
    items: Vec<Option<T>>,
    free: Vec<u32>,
    occupied: u64,
}

impl<T> Default for Slots<T> {
    fn default() -> Self {
        Slots { items: Vec::new(), free: Vec::new(), occupied: 0 }
    }
}

impl<T> Slots<T> {
    /// Parks `value` and returns its slot.
    #[inline]
    pub fn insert(&mut self, value: T) -> u32 {
        self.occupied += 1;
        match self.free.pop() {
            Some(s) => {
                self.items[s as usize] = Some(value);
                s
            }
            None => {
                self.items.push(Some(value));
                (self.items.len() - 1) as u32
            }
        }
    }

    /// Takes the value out of `slot` (`None` if the slot is empty or unknown).
    #[inline]
    pub fn take(&mut self, slot: u32) -> Option<T> {
        let v = self.items.get_mut(slot as usize)?.take()?;
        self.free.push(slot);
        self.occupied -= 1;
        Some(v)
    }

    /// Values parked now.
    #[inline]
    pub fn len(&self) -> u64 {
        self.occupied
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.occupied == 0
    }

    /// Takes every parked value out, in slot order.
    pub fn drain(&mut self) -> Vec<T> {
        let out: Vec<T> = self.items.iter_mut().filter_map(Option::take).collect();
        self.items.clear();
        self.free.clear();
        self.occupied = 0;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_reused_and_counted() {
        let mut s = Slots::default();
        let a = s.insert('a');
        let b = s.insert('b');
        assert_eq!((a, b, s.len()), (0, 1, 2));
        assert_eq!(s.take(a), Some('a'));
        assert_eq!(s.take(a), None);
        assert_eq!(s.insert('c'), a);
        assert_eq!(s.take(7), None);
        assert_eq!(s.drain(), vec!['c', 'b']);
        assert!(s.is_empty());
    }
}
