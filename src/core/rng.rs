//! Named, seeded random streams.
//!
//! Every source of randomness in a run (arrivals, service times, quality samples, a
//! controller's exploration, ...) draws from its own stream, derived from the run seed and the
//! stream's name. Adding a new stream, or drawing more from one, never shifts the numbers
//! another stream produces, and the same seed always gives the same run whatever the thread
//! count. The derivation is a fixed function (FNV-1a of the name mixed with SplitMix64), so it
//! is stable across Rust and crate versions.

use rand_xoshiro::Xoshiro256PlusPlus;
use rand_xoshiro::rand_core::SeedableRng;

/// The generator every stream uses: fast, small, and statistically strong for simulation.
pub type StreamRng = Xoshiro256PlusPlus;

/// Derives independent streams from one run seed.
#[derive(Clone, Copy, Debug)]
pub struct RngStreams {
    seed: u64,
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// SplitMix64 finaliser: a bijective mixing of 64 bits.
pub fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl RngStreams {
    pub fn new(seed: u64) -> Self {
        RngStreams { seed }
    }
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The stream called `name`.
    pub fn stream(&self, name: &str) -> StreamRng {
        self.stream_indexed(name, 0)
    }

    /// The `index`-th stream called `name` (e.g. one per server).
    pub fn stream_indexed(&self, name: &str, index: u64) -> StreamRng {
        let mut key = [0u8; 32];
        let mut s = splitmix64(self.seed ^ fnv1a(name.as_bytes()));
        s = splitmix64(s ^ splitmix64(index));
        for chunk in key.chunks_mut(8) {
            s = splitmix64(s);
            chunk.copy_from_slice(&s.to_le_bytes());
        }
        StreamRng::from_seed(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngExt;

    #[test]
    fn same_seed_same_numbers_and_names_are_independent() {
        let a: Vec<u64> = (0..4)
            .map({
                let mut r = RngStreams::new(7).stream("arrivals");
                move |_| r.random()
            })
            .collect();
        let b: Vec<u64> = (0..4)
            .map({
                let mut r = RngStreams::new(7).stream("arrivals");
                move |_| r.random()
            })
            .collect();
        let c: Vec<u64> = (0..4)
            .map({
                let mut r = RngStreams::new(7).stream("service");
                move |_| r.random()
            })
            .collect();
        let d: Vec<u64> = (0..4)
            .map({
                let mut r = RngStreams::new(8).stream("arrivals");
                move |_| r.random()
            })
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
    }
}
