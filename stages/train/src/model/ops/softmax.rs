//! The attention softmax with its scale and causal mask in one pass.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor};
use kenning_local::exp::exp;
use rayon::prelude::*;

use super::{ROWS_PER_TASK, lanes, row_len, values};

/// Returns `softmax(scale * scores)` over the last dimension with a causal mask. Query `t` of
/// the `time` new positions (the second-to-last dimension) attends to keys `0..=offset + t`
/// only, so later keys get zero weight. `scores` has shape (..., time, offset + time), and
/// `scale` is positive.
pub fn causal_softmax(scores: &Tensor, scale: f32, offset: usize) -> candle_core::Result<Tensor> {
    if !(scale > 0.0) {
        candle_core::bail!("causal-softmax needs a positive scale, got {scale}")
    }
    scores
        .contiguous()?
        .apply_op1(CausalSoftmax { scale, offset })
}

/// Replaces the first `seen` scores of `row` by `softmax(scale * scores)` and the rest by zero.
pub(super) fn softmax_in_place(row: &mut [f32], scale: f32, seen: usize) {
    let (visible, hidden) = row.split_at_mut(seen);
    let largest = lanes::max(visible);
    for v in visible.iter_mut() {
        *v = exp(scale * (*v - largest));
    }
    let inverse = 1.0 / lanes::sum(visible);
    visible.iter_mut().for_each(|v| *v *= inverse);
    hidden.fill(0.0);
}

/// Replaces the output gradient `g` of a softmax row `y` by the gradient of its scores:
/// `scale * y * (g - sum(g * y))` over the first `seen` values and zero past them.
pub(super) fn softmax_grad_in_place(y: &[f32], g: &mut [f32], scale: f32, seen: usize) {
    let dot = lanes::dot(&y[..seen], &g[..seen]);
    for (g, &y) in g[..seen].iter_mut().zip(&y[..seen]) {
        *g = scale * y * (*g - dot);
    }
    g[seen..].fill(0.0);
}

struct CausalSoftmax {
    scale: f32,
    offset: usize,
}

impl CausalSoftmax {
    /// Returns the query index of row `row` and checks the shape.
    fn shape(&self, layout: &Layout) -> candle_core::Result<(usize, usize)> {
        let width = row_len(layout, self.name())?;
        let dims = layout.dims();
        let time = if dims.len() >= 2 {
            dims[dims.len() - 2]
        } else {
            1
        };
        if width != self.offset + time {
            candle_core::bail!(
                "causal-softmax rows of {width} keys do not match {} queries after {} positions",
                time,
                self.offset
            )
        }
        Ok((time, width))
    }
}

impl CustomOp1 for CausalSoftmax {
    fn name(&self) -> &'static str {
        "causal-softmax"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let scores = values(storage, layout, self.name())?;
        let (time, width) = self.shape(layout)?;
        let mut out = scores.to_vec();
        out.par_chunks_mut(width * ROWS_PER_TASK)
            .enumerate()
            .for_each(|(task, out)| {
                for (i, row) in out.chunks_exact_mut(width).enumerate() {
                    let query = (task * ROWS_PER_TASK + i) % time;
                    softmax_in_place(row, self.scale, self.offset + query + 1);
                }
            });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(
        &self,
        _scores: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let back = SoftmaxGrad {
            scale: self.scale,
            offset: self.offset,
        };
        Ok(Some(res.apply_op2_no_bwd(&grad.contiguous()?, &back)?))
    }
}

/// Gradient of the scores: `scale * y * (g - sum(g * y))` per row, with `y` the softmax.
struct SoftmaxGrad {
    scale: f32,
    offset: usize,
}

impl CustomOp2 for SoftmaxGrad {
    fn name(&self) -> &'static str {
        "causal-softmax-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let y = values(s1, l1, self.name())?;
        let grad = values(s2, l2, self.name())?;
        let (time, width) = CausalSoftmax {
            scale: self.scale,
            offset: self.offset,
        }
        .shape(l1)?;
        let mut out = grad.to_vec();
        out.par_chunks_mut(width * ROWS_PER_TASK)
            .zip(y.par_chunks(width * ROWS_PER_TASK))
            .enumerate()
            .for_each(|(task, (out, y))| {
                for (i, (g, y)) in out
                    .chunks_exact_mut(width)
                    .zip(y.chunks_exact(width))
                    .enumerate()
                {
                    let seen = self.offset + (task * ROWS_PER_TASK + i) % time + 1;
                    softmax_grad_in_place(y, g, self.scale, seen);
                }
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}
