//! The SwiGLU product `silu(gate) * up` of the feed-forward block.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Shape, Tensor};
use kenning_local::exp::exp;
use rayon::prelude::*;

use super::values;

/// Values handed to one parallel task at a time.
const CHUNK: usize = 16 * 1024;

/// Returns `silu(gate) * up` elementwise; both tensors have the same shape.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> candle_core::Result<Tensor> {
    gate.contiguous()?.apply_op2(&up.contiguous()?, SwiGlu)
}

pub(super) fn sigmoid(a: f32) -> f32 {
    1.0 / (1.0 + exp(-a))
}

/// Checks that two layouts hold the same number of values.
fn same_len(a: &[f32], b: &[f32], op: &'static str) -> candle_core::Result<()> {
    if a.len() != b.len() {
        candle_core::bail!(
            "{op} takes tensors of one shape, got {} and {} values",
            a.len(),
            b.len()
        )
    }
    Ok(())
}

/// Returns `f(a[i], b[i])` for every `i`, computed in parallel.
fn map_pairs(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32 + Sync) -> Vec<f32> {
    let mut out = vec![0f32; a.len()];
    out.par_chunks_mut(CHUNK)
        .zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK)))
        .for_each(|(out, (a, b))| {
            for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
                *o = f(x, y);
            }
        });
    out
}

struct SwiGlu;

impl CustomOp2 for SwiGlu {
    fn name(&self) -> &'static str {
        "swiglu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let gate = values(s1, l1, self.name())?;
        let up = values(s2, l2, self.name())?;
        same_len(gate, up, self.name())?;
        let out = map_pairs(gate, up, |a, u| a * sigmoid(a) * u);
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        gate: &Tensor,
        up: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let grad_gate = gate.apply_op3_no_bwd(up, &grad, &GateGrad)?;
        let grad_up = gate.apply_op2_no_bwd(&grad, &UpGrad)?;
        Ok((Some(grad_gate), Some(grad_up)))
    }
}

/// Gradient of the gate: `g * up * σ(a) * (1 + a * (1 - σ(a)))`.
struct GateGrad;

impl CustomOp3 for GateGrad {
    fn name(&self) -> &'static str {
        "swiglu-gate-grad"
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
        let gate = values(s1, l1, self.name())?;
        let up = values(s2, l2, self.name())?;
        let grad = values(s3, l3, self.name())?;
        same_len(gate, up, self.name())?;
        same_len(gate, grad, self.name())?;
        let mut out = vec![0f32; gate.len()];
        out.par_chunks_mut(CHUNK)
            .zip(gate.par_chunks(CHUNK).zip(up.par_chunks(CHUNK)))
            .zip(grad.par_chunks(CHUNK))
            .for_each(|((out, (gate, up)), grad)| {
                for (((o, &a), &u), &g) in out.iter_mut().zip(gate).zip(up).zip(grad) {
                    let s = sigmoid(a);
                    *o = g * u * s * (1.0 + a * (1.0 - s));
                }
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// Gradient of the up projection: `g * silu(a)`.
struct UpGrad;

impl CustomOp2 for UpGrad {
    fn name(&self) -> &'static str {
        "swiglu-up-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let gate = values(s1, l1, self.name())?;
        let grad = values(s2, l2, self.name())?;
        same_len(gate, grad, self.name())?;
        let out = map_pairs(gate, grad, |a, g| g * a * sigmoid(a));
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}
