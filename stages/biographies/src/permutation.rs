//! A keyed pseudo-random permutation of `0..n` that needs no memory: an unbalanced Feistel
//! network on the next power of two, with cycle walking back into range.
//!
//! It shuffles rows globally (biographies of one person end up far apart) and assigns unique
//! names by index, both without storing a table of `n` entries.

use crate::rng::{hash, mix};

const ROUNDS: u64 = 4;

/// A bijection on `0..n`.
#[derive(Clone, Debug)]
pub struct Permutation {
    n: u64,
    /// Mask of the high part of a value. The low part has the remaining `low_bits` bits.
    high_mask: u64,
    low_bits: u32,
    low_mask: u64,
    /// One key per round, derived from the permutation's key once.
    round_keys: [u64; ROUNDS as usize],
}

impl Permutation {
    /// Creates the permutation of `0..n` selected by `key`.
    pub fn new(n: u64, key: u64) -> Self {
        let bits = (64 - n.saturating_sub(1).leading_zeros()).max(2);
        let low_bits = bits.div_ceil(2);
        let high_bits = bits - low_bits;
        let mut round_keys = [0; ROUNDS as usize];
        for (round, round_key) in round_keys.iter_mut().enumerate() {
            *round_key = hash(key, &[round as u64]);
        }
        Self {
            n,
            high_mask: (1u64 << high_bits) - 1,
            low_bits,
            low_mask: (1u64 << low_bits) - 1,
            round_keys,
        }
    }

    pub fn len(&self) -> u64 {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Returns the image of `x`, which must be below `n`.
    pub fn apply(&self, x: u64) -> u64 {
        debug_assert!(x < self.n, "{x} is outside 0..{}", self.n);
        let mut value = x;
        // The network permutes 0..2^bits, the smallest power of two of at least n, so cycle
        // walking ends after fewer than 2 rounds on average.
        loop {
            value = self.feistel(value);
            if value < self.n {
                return value;
            }
        }
    }

    /// Runs the rounds on a value of `high_bits + low_bits` bits. Each round XORs one part
    /// with a keyed hash of the other, which is invertible, and the rounds alternate between
    /// the parts, so the parts may differ in width by one bit.
    fn feistel(&self, x: u64) -> u64 {
        let mut high = x >> self.low_bits;
        let mut low = x & self.low_mask;
        for pair in self.round_keys.chunks_exact(2) {
            high ^= mix(low ^ pair[0]) & self.high_mask;
            low ^= mix(high ^ pair[1]) & self.low_mask;
        }
        (high << self.low_bits) | low
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_a_bijection_for_awkward_sizes() {
        for n in [1u64, 2, 3, 5, 17, 100, 1000, 4097] {
            let permutation = Permutation::new(n, 42);
            let mut seen = vec![false; n as usize];
            for x in 0..n {
                let y = permutation.apply(x);
                assert!(y < n);
                assert!(!seen[y as usize], "n={n}: {y} is hit twice");
                seen[y as usize] = true;
            }
        }
    }

    #[test]
    fn different_keys_give_different_orders() {
        let a: Vec<u64> = (0..50).map(|x| Permutation::new(50, 1).apply(x)).collect();
        let b: Vec<u64> = (0..50).map(|x| Permutation::new(50, 2).apply(x)).collect();
        assert_ne!(a, b);
    }
}
