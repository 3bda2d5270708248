//! RMSNorm: `y = x / sqrt(mean(x²) + eps) * weight` over the last dimension.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::{ROWS_PER_TASK, lanes, row_len, values};

/// Normalizes the rows of `x` (last dimension) and scales them by `weight`. Both must be
/// contiguous `f32` CPU tensors.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f32) -> candle_core::Result<Tensor> {
    x.contiguous()?
        .apply_op2(&weight.contiguous()?, RmsNorm { eps })
}

/// Returns 1 / sqrt(mean(x²) + eps) of one row.
pub(super) fn inverse_rms(row: &[f32], eps: f32) -> f32 {
    let squares = lanes::dot(row, row);
    1.0 / (squares / row.len() as f32 + eps).sqrt()
}

/// Writes the normalized row `x * r * weight` into `out`, with `r` the row's inverse RMS.
pub(super) fn normalize_row(x: &[f32], weight: &[f32], r: f32, out: &mut [f32]) {
    for ((o, &v), &w) in out.iter_mut().zip(x).zip(weight) {
        *o = v * r * w;
    }
}

/// Writes the gradient of one row's input into `out`: `r * (w * g - x * r² * sum(w * g * x) / n)`.
/// `scratch` has the row's length.
pub(super) fn input_grad_row(
    x: &[f32],
    weight: &[f32],
    g: &[f32],
    r: f32,
    out: &mut [f32],
    scratch: &mut [f32],
) {
    for ((s, &g), &w) in scratch.iter_mut().zip(g).zip(weight) {
        *s = g * w;
    }
    let pull = r * r * lanes::dot(x, scratch) / x.len() as f32;
    for ((o, &v), &s) in out.iter_mut().zip(x).zip(scratch.iter()) {
        *o = r * (s - v * pull);
    }
}

/// Adds one row's share of the weight gradient, `g * x * r`, to `sum`.
pub(super) fn add_weight_grad_row(x: &[f32], g: &[f32], r: f32, sum: &mut [f32]) {
    for ((s, &v), &g) in sum.iter_mut().zip(x).zip(g) {
        *s += g * v * r;
    }
}

struct RmsNorm {
    eps: f32,
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "rms-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = values(s1, l1, self.name())?;
        let weight = values(s2, l2, self.name())?;
        let n = row_len(l1, self.name())?;
        if weight.len() != n {
            candle_core::bail!(
                "rms-norm weight has {} values for rows of {n}",
                weight.len()
            )
        }
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(n * ROWS_PER_TASK)
            .zip(x.par_chunks(n * ROWS_PER_TASK))
            .for_each(|(out, x)| {
                for (out, x) in out.chunks_exact_mut(n).zip(x.chunks_exact(n)) {
                    normalize_row(x, weight, inverse_rms(x, self.eps), out);
                }
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let grad_x = x.apply_op3_no_bwd(weight, &grad, &InputGrad { eps: self.eps })?;
        let grad_weight = x.apply_op2_no_bwd(&grad, &WeightGrad { eps: self.eps })?;
        Ok((Some(grad_x), Some(grad_weight)))
    }
}

/// Gradient of the input: `r * (w * g - x * r² * sum(w * g * x) / n)` per row, with `r` the
/// row's inverse RMS.
struct InputGrad {
    eps: f32,
}

impl CustomOp3 for InputGrad {
    fn name(&self) -> &'static str {
        "rms-norm-input-grad"
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
        let weight = values(s2, l2, self.name())?;
        let grad = values(s3, l3, self.name())?;
        let n = row_len(l1, self.name())?;
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(n * ROWS_PER_TASK)
            .zip(x.par_chunks(n * ROWS_PER_TASK))
            .zip(grad.par_chunks(n * ROWS_PER_TASK))
            .for_each(|((out, x), grad)| {
                let mut scratch = vec![0f32; n];
                let rows = out.chunks_exact_mut(n).zip(x.chunks_exact(n));
                for ((out, x), g) in rows.zip(grad.chunks_exact(n)) {
                    let r = inverse_rms(x, self.eps);
                    input_grad_row(x, weight, g, r, out, &mut scratch);
                }
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// Gradient of the weight: the sum over rows of `g * x * r`.
struct WeightGrad {
    eps: f32,
}

impl CustomOp2 for WeightGrad {
    fn name(&self) -> &'static str {
        "rms-norm-weight-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = values(s1, l1, self.name())?;
        let grad = values(s2, l2, self.name())?;
        let n = row_len(l1, self.name())?;
        // Partial sums over fixed row ranges, added in order: the same result on every run.
        let partials: Vec<Vec<f32>> = x
            .par_chunks(n * ROWS_PER_TASK)
            .zip(grad.par_chunks(n * ROWS_PER_TASK))
            .map(|(x, grad)| {
                let mut partial = vec![0f32; n];
                for (x, g) in x.chunks_exact(n).zip(grad.chunks_exact(n)) {
                    add_weight_grad_row(x, g, inverse_rms(x, self.eps), &mut partial);
                }
                partial
            })
            .collect();
        let mut sum = vec![0f32; n];
        for partial in &partials {
            sum.iter_mut().zip(partial).for_each(|(s, p)| *s += p);
        }
        Ok((CpuStorage::F32(sum), Shape::from(n)))
    }
}
