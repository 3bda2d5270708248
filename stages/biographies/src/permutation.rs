//! A keyed pseudo-random permutation of `0..n` that needs no memory: a Feistel network on the
//! next even power of two, with cycle walking back into range.
//!
//! It shuffles rows globally (biographies of one person end up far apart) and assigns unique
//! names by index, both without storing a table of `n` entries.

use crate::rng::{hash, mix};

const ROUNDS: u64 = 4;

/// A bijection on `0..n`.
#[derive(Clone, Debug)]
pub struct Permutation {
    n: u64,
    half_bits: u32,
    half_mask: u64,
    /// One key per round, derived from the permutation's key once.
    round_keys: [u64; ROUNDS as usize],
}

impl Permutation {
    /// Creates the permutation of `0..n` selected by `key`.
    pub fn new(n: u64, key: u64) -> Self {
        let bits = (64 - n.saturating_sub(1).leading_zeros()).max(2);
        let half_bits = bits.div_ceil(2);
        let mut round_keys = [0; ROUNDS as usize];
        for (round, round_key) in round_keys.iter_mut().enumerate() {
            *round_key = hash(key, &[round as u64]);
        }
        Self {
            n,
            half_bits,
            half_mask: (1u64 << half_bits) - 1,
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
        // The Feistel network permutes 0..2^(2·half_bits), a range less than 4n, so cycle
        // walking ends after fewer than 4 rounds on average.
        loop {
            value = self.feistel(value);
            if value < self.n {
                return value;
            }
        }
    }

    fn feistel(&self, x: u64) -> u64 {
        let mut left = x >> self.half_bits;
        let mut right = x & self.half_mask;
        for round_key in self.round_keys {
            let f = mix(right ^ round_key) & self.half_mask;
            (left, right) = (right, left ^ f);
        }
        (left << self.half_bits) | right
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
