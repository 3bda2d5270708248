//! An exponential made of multiplications, additions and bit operations, so that loops over
//! it compile to vector instructions: `f32::exp` is a library call per value, which no loop
//! vectorizes. The activation, attention and sampling loops of the 8-bit path use it, and so do
//! the fused training operations of `kenning-train`.
//!
//! It is plain Rust without `mul_add`, so every build computes the same bits for the same input.

const LOG2_E: f32 = std::f32::consts::LOG2_E;
/// ln 2 split in two, so that `n * LN2_HIGH` is exact for the `n` that occur here.
const LN2_HIGH: f32 = 0.693_359_4;
const LN2_LOW: f32 = -2.121_944_4e-4;
/// 1.5 * 2^23: adding it rounds a float of magnitude below 2^22 to an integer, which then is
/// in the low bits of the sum.
const ROUND: f32 = 12_582_912.0;

/// Returns e^x with a relative error of a few units in the last place. Inputs are clamped to
/// [-87, 88], so very negative ones give about 1.6e-38 instead of 0; NaN stays NaN.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    // e^x = 2^n * e^r, with n the integer nearest x / ln 2 and |r| <= ln(2) / 2.
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = x - n * LN2_HIGH - n * LN2_LOW;

    // Taylor series of e^r to the 7th power; the next term is below 2.4e-8 for |r| <= 0.35.
    let p = 1.0
        + r * (1.0
            + r * (1.0 / 2.0
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));

    // 2^n: n is in the low mantissa bits of `shifted`. Moved into the exponent field and added
    // to the bias, it gives the power of two (n is within [-126, 127] after the clamp).
    let power = f32::from_bits(shifted.to_bits().wrapping_shl(23).wrapping_add(127 << 23));
    p * power
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_close_to_the_library_exp() {
        let mut worst = 0f64;
        for i in -87_000..=88_000 {
            let x = i as f32 / 1000.0;
            let expected = f64::from(x).exp();
            let error = ((f64::from(exp(x)) - expected) / expected).abs();
            worst = worst.max(error);
        }
        assert!(worst < 5e-7, "largest relative error {worst}");
    }

    #[test]
    fn exp_handles_edges() {
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(f32::NAN).is_nan());
        assert!(exp(-1000.0) < 2e-38);
        assert!(exp(f32::NEG_INFINITY) < 2e-38);
        assert!(exp(100.0).is_finite());
    }
}
