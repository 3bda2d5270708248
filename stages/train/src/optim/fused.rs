//! AdamW and the gradient norm as single passes over `f32` CPU tensors, updating the weights
//! and moments in place. Built from candle's elementary operations, one AdamW update costs
//! about a dozen passes and as many new tensors per weight.

use candle_core::{CpuStorage, InplaceOp2, InplaceOp3, Layout, Tensor};
use rayon::prelude::*;

/// Values handed to one parallel task at a time.
const CHUNK: usize = 16 * 1024;

/// Returns whether every tensor can take the single-pass path: contiguous `f32` on the CPU.
pub fn applies(tensors: &[&Tensor]) -> bool {
    tensors
        .iter()
        .all(|t| t.device().is_cpu() && t.dtype() == candle_core::DType::F32 && t.is_contiguous())
}

fn slice<'a>(storage: &'a CpuStorage, layout: &Layout) -> candle_core::Result<&'a [f32]> {
    match (storage, layout.contiguous_offsets()) {
        (CpuStorage::F32(values), Some((start, end))) => Ok(&values[start..end]),
        _ => candle_core::bail!("the fused optimizer takes contiguous f32 tensors"),
    }
}

fn slice_mut<'a>(
    storage: &'a mut CpuStorage,
    layout: &Layout,
) -> candle_core::Result<&'a mut [f32]> {
    match (storage, layout.contiguous_offsets()) {
        (CpuStorage::F32(values), Some((start, end))) => Ok(&mut values[start..end]),
        _ => candle_core::bail!("the fused optimizer takes contiguous f32 tensors"),
    }
}

/// Returns the sum of the squares of a contiguous `f32` CPU tensor, accumulated in `f64` over
/// fixed chunks added in order, so that every run gives the same value.
pub fn sum_of_squares(tensor: &Tensor) -> candle_core::Result<f64> {
    let (storage, layout) = tensor.storage_and_layout();
    let candle_core::Storage::Cpu(storage) = &*storage else {
        candle_core::bail!("the fused optimizer takes CPU tensors")
    };
    let values = slice(storage, layout)?;
    let partials: Vec<f64> = values
        .par_chunks(CHUNK)
        .map(|chunk| chunk.iter().map(|&v| f64::from(v) * f64::from(v)).sum())
        .collect();
    Ok(partials.iter().sum())
}

/// Moment update `m = decay * m + (1 - decay) * (scale * g)`, or of `(scale * g)²` when
/// `square`, applied to the moment in place.
pub struct MomentUpdate {
    pub decay: f32,
    pub grad_scale: f32,
    pub square: bool,
}

impl InplaceOp2 for MomentUpdate {
    fn name(&self) -> &'static str {
        "adamw-moment"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<()> {
        let moment = slice_mut(s1, l1)?;
        let grad = slice(s2, l2)?;
        if moment.len() != grad.len() {
            candle_core::bail!("adamw-moment: moment and gradient sizes differ")
        }
        let keep = 1.0 - self.decay;
        moment
            .par_chunks_mut(CHUNK)
            .zip(grad.par_chunks(CHUNK))
            .for_each(|(moment, grad)| {
                for (m, &g) in moment.iter_mut().zip(grad) {
                    let g = g * self.grad_scale;
                    let g = if self.square { g * g } else { g };
                    *m = self.decay * *m + keep * g;
                }
            });
        Ok(())
    }
}

/// Weight update `θ = θ * (1 - lr * weight_decay) - lr * m̂ / (sqrt(v̂) + eps)` in place, with
/// `m̂ = m / correction1` and `v̂ = v / correction2`.
pub struct WeightUpdate {
    pub lr: f32,
    pub shrink: f32,
    pub correction1: f32,
    pub correction2: f32,
    pub eps: f32,
}

impl InplaceOp3 for WeightUpdate {
    fn name(&self) -> &'static str {
        "adamw-weight"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<()> {
        let weight = slice_mut(s1, l1)?;
        let (m, v) = (slice(s2, l2)?, slice(s3, l3)?);
        if weight.len() != m.len() || weight.len() != v.len() {
            candle_core::bail!("adamw-weight: weight and moment sizes differ")
        }
        weight
            .par_chunks_mut(CHUNK)
            .zip(m.par_chunks(CHUNK).zip(v.par_chunks(CHUNK)))
            .for_each(|(weight, (m, v))| {
                for ((w, &m), &v) in weight.iter_mut().zip(m).zip(v) {
                    let update =
                        (m / self.correction1) / ((v / self.correction2).sqrt() + self.eps);
                    *w = *w * self.shrink - self.lr * update;
                }
            });
        Ok(())
    }
}
