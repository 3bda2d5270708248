//! Interleaved rotary embeddings: the pairs (2i, 2i + 1) of each head turn by position × θᵢ.

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::values;

/// Rotates `x` of shape (batch, heads, time, head dim) by the tables `cos` and `sin` of shape
/// (time, head dim / 2).
pub fn rope_interleaved(x: &Tensor, cos: &Tensor, sin: &Tensor) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op3(
        &cos.contiguous()?,
        &sin.contiguous()?,
        Rotary { inverse: false },
    )
}

/// Turns the adjacent pairs of each head in `row` by the angles whose cosines and sines are
/// given, or back by them when `inverse`. `row` contains whole heads of `2 * cos.len()` values.
pub(super) fn rotate(row: &mut [f32], cos: &[f32], sin: &[f32], inverse: bool) {
    let sign = if inverse { -1.0 } else { 1.0 };
    for head in row.chunks_exact_mut(2 * cos.len()) {
        for (pair, (&c, &s)) in head.chunks_exact_mut(2).zip(cos.iter().zip(sin)) {
            let s = sign * s;
            let (a, b) = (pair[0], pair[1]);
            pair[0] = a * c - b * s;
            pair[1] = a * s + b * c;
        }
    }
}

/// A turn by the angles of the tables, or back by them when `inverse`: the backward pass of a
/// rotation is the opposite rotation.
struct Rotary {
    inverse: bool,
}

impl CustomOp3 for Rotary {
    fn name(&self) -> &'static str {
        "rope-interleaved"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = values(s1, l1, self.name())?;
        let cos = values(s2, l2, self.name())?;
        let sin = values(s3, l3, self.name())?;
        let (_, _, time, dim) = l1.shape().dims4()?;
        if dim % 2 != 0 || cos.len() != time * dim / 2 || sin.len() != cos.len() {
            candle_core::bail!(
                "rope-interleaved needs an even head dim and tables of {time} x {}",
                dim / 2
            )
        }
        let mut out = x.to_vec();
        // One task per (batch, head): `time` rows of `dim` values.
        out.par_chunks_mut(time * dim).for_each(|out| {
            for (t, row) in out.chunks_exact_mut(dim).enumerate() {
                let pairs = t * dim / 2..(t + 1) * dim / 2;
                rotate(row, &cos[pairs.clone()], &sin[pairs], self.inverse);
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let back = Rotary {
            inverse: !self.inverse,
        };
        let grad_x = grad.contiguous()?.apply_op3_no_bwd(cos, sin, &back)?;
        Ok((Some(grad_x), None, None))
    }
}
