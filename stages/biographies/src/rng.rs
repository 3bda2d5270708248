//! Counter-based randomness: every value is a pure function of the seed and a few integers, so
//! any person or row can be generated on its own, in any order, on any thread.

/// Mixes a 64-bit value (the SplitMix64 finalizer), which turns counters into uniform bits.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Returns 64 random bits for the seed and a path of integers.
pub fn hash(seed: u64, path: &[u64]) -> u64 {
    path.iter()
        .fold(mix(seed), |state, &part| mix(state ^ mix(part)))
}

/// Hashes a string to a path element, so that strings (surnames) can key random draws.
pub fn hash_str(text: &str) -> u64 {
    // FNV-1a: stable across platforms and Rust versions, unlike `DefaultHasher`.
    text.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

/// Returns a uniform integer in `0..n` from 64 random bits, by Lemire's multiply-shift. Its
/// bias is below n / 2^64, far under anything a test can detect.
pub fn below(bits: u64, n: u64) -> u64 {
    ((u128::from(bits) * u128::from(n)) >> 64) as u64
}

/// Returns a uniform float in `[0, 1)` from 64 random bits.
pub fn unit(bits: u64) -> f64 {
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// A small sequential generator for draws inside one row (sentence order, for example).
pub struct SplitMix(u64);

impl SplitMix {
    pub fn new(state: u64) -> Self {
        Self(state)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// Shuffles `items` in place (Fisher–Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = below(self.next_u64(), i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut seen = [0u32; 7];
        for i in 0..7000 {
            seen[below(hash(1, &[i]), 7) as usize] += 1;
        }
        for count in seen {
            assert!((850..1150).contains(&count), "{seen:?}");
        }
    }

    #[test]
    fn hash_depends_on_every_part() {
        assert_ne!(hash(1, &[2, 3]), hash(1, &[3, 2]));
        assert_ne!(hash(1, &[2]), hash(2, &[2]));
        assert_eq!(hash(9, &[4, 5]), hash(9, &[4, 5]));
    }
}
