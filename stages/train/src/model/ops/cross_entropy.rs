//! Mean next-token cross-entropy straight from the logits, without materializing the
//! log-probabilities.

use candle_core::backend::BackendStorage;
use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Shape, Tensor};
use kenning_local::exp::exp;
use rayon::prelude::*;

use super::linear::{View, product};
use super::{ROWS_PER_TASK, lanes, row_len, values};

/// Returns the mean over rows of `-log softmax(logits)[target]`, for `logits` of shape
/// (rows, vocab) and `u32` `targets` of shape (rows).
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> candle_core::Result<Tensor> {
    logits
        .contiguous()?
        .apply_op2(&targets.contiguous()?, CrossEntropy::default())
}

/// Returns the targets as a slice, checked against the number of rows and the vocabulary.
fn targets<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    rows: usize,
    vocab: usize,
    op: &'static str,
) -> candle_core::Result<&'a [u32]> {
    let CpuStorage::U32(ids) = storage else {
        candle_core::bail!("{op} takes u32 targets, got {:?}", storage.dtype())
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{op} takes contiguous targets")
    };
    let ids = &ids[start..end];
    if ids.len() != rows {
        candle_core::bail!("{op} has {rows} rows of logits but {} targets", ids.len())
    }
    if let Some(&bad) = ids.iter().find(|&&id| id as usize >= vocab) {
        candle_core::bail!("{op} target {bad} is outside the vocabulary of {vocab}")
    }
    Ok(ids)
}

/// The loss. Its forward pass also computes the gradient of the mean loss with respect to the
/// logits, `(softmax(row) - onehot(target)) / rows`, while the exponentials are at hand, and
/// keeps it for the backward pass.
#[derive(Default)]
struct CrossEntropy {
    grad: Mutex<Option<Vec<f32>>>,
}

impl CustomOp2 for CrossEntropy {
    fn name(&self) -> &'static str {
        "cross-entropy"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let logits = values(s1, l1, self.name())?;
        let vocab = row_len(l1, self.name())?;
        let rows = logits.len() / vocab;
        let ids = targets(s2, l2, rows, vocab, self.name())?;
        let mut grad = logits.to_vec();
        let loss = loss_and_logit_grads(&mut grad, ids, vocab);
        let mean = loss / rows.max(1) as f64;
        *self.grad.lock().unwrap_or_else(|e| e.into_inner()) = Some(grad);
        Ok((CpuStorage::F32(vec![mean as f32]), Shape::from(())))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        _targets: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let Some(logits_grad) = self.grad.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            candle_core::bail!("cross-entropy backward ran twice for one forward pass")
        };
        let scale = grad.to_dtype(DType::F32)?.to_scalar::<f32>()?;
        let logits_grad = Tensor::from_vec(logits_grad, logits.shape(), logits.device())?;
        if scale == 1.0 {
            return Ok((Some(logits_grad), None));
        }
        Ok((Some((logits_grad * f64::from(scale))?), None))
    }
}

/// Returns the mean cross-entropy of the logits `x · weightᵀ` for `x` of shape (rows, hidden),
/// the output layer `weight` of shape (vocab, hidden) and `u32` `targets` of shape (rows),
/// without putting the logits into the gradient graph.
pub fn linear_cross_entropy(
    x: &Tensor,
    weight: &Tensor,
    targets: &Tensor,
) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op3(
        &weight.contiguous()?,
        &targets.contiguous()?,
        LinearCrossEntropy::default(),
    )
}

/// Fills `logits` (rows of `vocab`) with the gradient of the mean loss with respect to them,
/// in place, and returns the summed loss.
fn loss_and_logit_grads(logits: &mut [f32], ids: &[u32], vocab: usize) -> f64 {
    let rows = logits.len() / vocab;
    let inverse_rows = 1.0 / rows.max(1) as f32;
    // Losses of fixed row ranges, added in order: the same result on every run.
    let partials: Vec<f64> = logits
        .par_chunks_mut(vocab * ROWS_PER_TASK)
        .zip(ids.par_chunks(ROWS_PER_TASK))
        .map(|(logits, ids)| {
            let mut loss = 0f64;
            for (row, &id) in logits.chunks_exact_mut(vocab).zip(ids) {
                let id = id as usize;
                let target = row[id];
                let largest = lanes::max(row);
                row.iter_mut().for_each(|v| *v = exp(*v - largest));
                let total = lanes::sum(row);
                loss += f64::from(largest + total.ln() - target);
                let scale = inverse_rows / total;
                row.iter_mut().for_each(|v| *v *= scale);
                row[id] -= inverse_rows;
            }
            loss
        })
        .collect();
    partials.iter().sum()
}

/// The output layer and the loss in one operation. The forward pass turns its logits into
/// their gradient in place and keeps it for the backward pass.
#[derive(Default)]
struct LinearCrossEntropy {
    grad: Mutex<Option<Vec<f32>>>,
}

impl CustomOp3 for LinearCrossEntropy {
    fn name(&self) -> &'static str {
        "linear-cross-entropy"
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
        let (rows, hidden) = l1.shape().dims2()?;
        let (vocab, weight_hidden) = l2.shape().dims2()?;
        if hidden != weight_hidden {
            candle_core::bail!(
                "linear-cross-entropy: input width {hidden}, weight width {weight_hidden}"
            )
        }
        let ids = targets(s3, l3, rows, vocab, self.name())?;
        let mut logits = product(
            (rows, vocab, hidden),
            View::rows(x, hidden),
            View::transposed(weight, hidden),
            true,
        );
        let loss = loss_and_logit_grads(&mut logits, ids, vocab);
        *self.grad.lock().unwrap_or_else(|e| e.into_inner()) = Some(logits);
        let mean = loss / rows.max(1) as f64;
        Ok((CpuStorage::F32(vec![mean as f32]), Shape::from(())))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _targets: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let Some(mut logits_grad) = self.grad.lock().unwrap_or_else(|e| e.into_inner()).take()
        else {
            candle_core::bail!("linear-cross-entropy backward ran twice for one forward pass")
        };
        let scale = grad.to_dtype(DType::F32)?.to_scalar::<f32>()?;
        if scale != 1.0 {
            logits_grad.iter_mut().for_each(|g| *g *= scale);
        }

        let (rows, hidden) = x.dims2()?;
        let vocab = weight.dim(0)?;
        let x_values = x.flatten_all()?.to_vec1::<f32>()?;
        let weight_values = weight.flatten_all()?.to_vec1::<f32>()?;
        let grad_x = product(
            (rows, hidden, vocab),
            View::rows(&logits_grad, vocab),
            View::rows(&weight_values, hidden),
            true,
        );
        let grad_weight = product(
            (vocab, hidden, rows),
            View::transposed(&logits_grad, vocab),
            View::rows(&x_values, hidden),
            true,
        );

        let grad_x = Tensor::from_vec(grad_x, (rows, hidden), x.device())?;
        let grad_weight = Tensor::from_vec(grad_weight, (vocab, hidden), weight.device())?;
        Ok((Some(grad_x), Some(grad_weight), None))
    }
}
