//! The share of rows each side keeps, and the random draws of the mix.

use serde::Serialize;

use crate::MixError;

/// Share of each side's rows to keep so that side A makes up the target share of tokens.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Plan {
    pub keep_a: f64,
    pub keep_b: f64,
}

/// Keeps every row of the side that is scarce for the target, and samples the other side.
///
/// Let side A have `ta` tokens, side B `tb`, and the target share of A be `r`. If
/// `ta / (ta + tb) >= r`, side B is kept whole and side A is sampled to `r / (1 - r) * tb`
/// tokens. Otherwise side A is kept whole and side B is sampled to `(1 - r) / r * ta` tokens. Rows are kept independently with
/// that probability, so the achieved share is close to `r` but not exact.
pub fn plan_sampling(tokens_a: u64, tokens_b: u64, ratio: f64) -> Result<Plan, MixError> {
    if tokens_a == 0 && ratio > 0.0 {
        return Err(MixError::Config(
            "side A has no tokens, so no share of it can be reached".into(),
        ));
    }
    if tokens_b == 0 && ratio < 1.0 {
        return Err(MixError::Config(
            "side B has no tokens, so no share of it can be reached".into(),
        ));
    }
    let (a, b) = (tokens_a as f64, tokens_b as f64);
    if ratio >= 1.0 {
        return Ok(Plan {
            keep_a: 1.0,
            keep_b: 0.0,
        });
    }
    if ratio <= 0.0 {
        return Ok(Plan {
            keep_a: 0.0,
            keep_b: 1.0,
        });
    }
    if a / (a + b) >= ratio {
        Ok(Plan {
            keep_a: (ratio / (1.0 - ratio) * b / a).min(1.0),
            keep_b: 1.0,
        })
    } else {
        Ok(Plan {
            keep_a: 1.0,
            keep_b: ((1.0 - ratio) / ratio * a / b).min(1.0),
        })
    }
}

/// Random draws of one input row: whether it is kept, and its bucket.
pub struct Draw {
    pub unit: f64,
    pub bucket: u64,
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Returns the draws of row `row` of file `file` of `side`, a pure function of the seed.
pub fn draw(seed: u64, side: &str, file: u64, row: u64) -> Draw {
    let side = if side == "a" { 1 } else { 2 };
    let bits = mix(mix(mix(mix(seed) ^ side) ^ file) ^ row);
    Draw {
        unit: (bits >> 11) as f64 / (1u64 << 53) as f64,
        bucket: mix(bits),
    }
}

/// Shuffles the rows of one bucket (Fisher–Yates with a generator keyed by seed and bucket).
pub fn shuffle<T>(seed: u64, bucket: u64, rows: &mut [T]) {
    let mut state = mix(seed ^ mix(bucket));
    for i in (1..rows.len()).rev() {
        state = mix(state);
        let j = ((u128::from(state) * (i as u128 + 1)) >> 64) as usize;
        rows.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_samples_the_side_in_excess() {
        let plan = plan_sampling(1_000, 9_000, 0.5).unwrap();
        assert_eq!(plan.keep_a, 1.0);
        assert!((plan.keep_b - 1_000.0 / 9_000.0).abs() < 1e-12);

        let plan = plan_sampling(9_000, 1_000, 0.2).unwrap();
        assert_eq!(plan.keep_b, 1.0);
        assert!((plan.keep_a - 0.25 * 1_000.0 / 9_000.0).abs() < 1e-12);
    }

    #[test]
    fn plan_rejects_an_empty_side() {
        assert!(plan_sampling(0, 100, 0.3).is_err());
        assert!(plan_sampling(100, 0, 0.3).is_err());
        assert_eq!(
            plan_sampling(100, 0, 1.0).unwrap(),
            Plan {
                keep_a: 1.0,
                keep_b: 0.0
            }
        );
    }
}
