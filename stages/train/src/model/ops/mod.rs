//! Fused operations with their own backward passes, for `f32` tensors on the CPU.
//!
//! Built from candle's elementary operations, RMSNorm, rotary embeddings, the attention
//! softmax, SwiGLU and the cross-entropy cost a dozen passes over memory and a dozen gradient
//! nodes each. Each operation here is one parallel pass forward and one or two backward. Other
//! devices and dtypes take the composed forms, and the tests check that both give the same
//! values and gradients.

mod block;
mod cross_entropy;
mod heads;
mod lanes;
mod linear;
mod rms_norm;
mod rotary;
mod softmax;
mod swiglu;

pub use block::{BlockShape, BlockWeights, GradSink, decoder_block};
pub use cross_entropy::{cross_entropy, linear_cross_entropy};
pub use heads::{merge_heads, split_heads};
pub use linear::linear;
pub use rms_norm::rms_norm;
pub use rotary::rope_interleaved;
pub use softmax::causal_softmax;
pub use swiglu::swiglu;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, DType, Layout, Tensor};

/// Rows handed to one parallel task at a time.
const ROWS_PER_TASK: usize = 16;

/// Returns whether `tensor` can take the fused path: `f32` on the CPU.
pub fn fused(tensor: &Tensor) -> bool {
    tensor.device().is_cpu() && tensor.dtype() == DType::F32
}

/// Returns the values of a contiguous `f32` storage.
fn values<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    op: &'static str,
) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(values) = storage else {
        candle_core::bail!("{op} takes f32 tensors, got {:?}", storage.dtype())
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{op} takes contiguous tensors")
    };
    Ok(&values[start..end])
}

/// Returns the length of the last dimension of `layout`, which must be positive.
fn row_len(layout: &Layout, op: &'static str) -> candle_core::Result<usize> {
    match layout.dims().last() {
        Some(&len) if len > 0 => Ok(len),
        _ => candle_core::bail!("{op} takes tensors with a non-empty last dimension"),
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{D, DType, Device, Tensor, Var};
    use candle_nn::ops::{rms_norm_slow, softmax};
    use candle_nn::rotary_emb::rope_i_slow;

    use super::*;

    fn random(shape: &[usize], seed: u64) -> Tensor {
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
        crate::model::init::normal_tensor(&mut rng, shape, 1.0, DType::F32, &Device::Cpu).unwrap()
    }

    fn largest_difference(a: &Tensor, b: &Tensor) -> f32 {
        let scale = b.abs().unwrap().flatten_all().unwrap().max(0).unwrap();
        let scale = scale.to_scalar::<f32>().unwrap().max(1.0);
        let difference = (a - b).unwrap().abs().unwrap().flatten_all().unwrap();
        difference.max(0).unwrap().to_scalar::<f32>().unwrap() / scale
    }

    /// Runs `fused` and `composed` on fresh variables holding `inputs`, backpropagates a random
    /// weighting of each output, and checks that outputs and gradients agree.
    fn check(
        name: &str,
        inputs: &[Tensor],
        fused: impl Fn(&[Tensor]) -> Tensor,
        composed: impl Fn(&[Tensor]) -> Tensor,
    ) {
        let run = |op: &dyn Fn(&[Tensor]) -> Tensor| {
            let vars: Vec<Var> = inputs
                .iter()
                .map(|t| Var::from_tensor(t).unwrap())
                .collect();
            let tensors: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
            let out = op(&tensors);
            let weighting = random(out.dims(), 99);
            let grads = (&out * &weighting)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let grads: Vec<Tensor> = vars
                .iter()
                .map(|v| {
                    grads
                        .get(v.as_tensor())
                        .expect("every input gets a gradient")
                        .clone()
                })
                .collect();
            (out, grads)
        };
        let (fused_out, fused_grads) = run(&fused);
        let (composed_out, composed_grads) = run(&composed);
        let difference = largest_difference(&fused_out, &composed_out);
        assert!(difference < 1e-5, "{name}: outputs differ by {difference}");
        for (i, (a, b)) in fused_grads.iter().zip(&composed_grads).enumerate() {
            let difference = largest_difference(a, b);
            assert!(
                difference < 1e-4,
                "{name}: gradient of input {i} differs by {difference}"
            );
        }
    }

    #[test]
    fn rms_norm_matches_composed_form() {
        let inputs = [random(&[3, 5, 24], 1), random(&[24], 2)];
        check(
            "rms_norm",
            &inputs,
            |t| rms_norm(&t[0], &t[1], 1e-5).unwrap(),
            |t| rms_norm_slow(&t[0], &t[1], 1e-5).unwrap(),
        );
    }

    #[test]
    fn rotary_matches_composed_form() {
        let (time, dim) = (6, 8);
        let angles: Vec<f32> = (0..time * dim / 2).map(|i| i as f32 * 0.37).collect();
        let cos = Tensor::from_vec(
            angles.iter().map(|a| a.cos()).collect(),
            (time, dim / 2),
            &Device::Cpu,
        );
        let sin = Tensor::from_vec(
            angles.iter().map(|a| a.sin()).collect(),
            (time, dim / 2),
            &Device::Cpu,
        );
        let (cos, sin) = (cos.unwrap(), sin.unwrap());
        let inputs = [random(&[2, 3, time, dim], 3)];
        check(
            "rope",
            &inputs,
            |t| rope_interleaved(&t[0], &cos, &sin).unwrap(),
            |t| rope_i_slow(&t[0], &cos, &sin).unwrap(),
        );
    }

    #[test]
    fn causal_softmax_matches_masked_softmax() {
        for offset in [0, 3] {
            let time = 5;
            let width = offset + time;
            let mask: Vec<f32> = (0..time)
                .flat_map(|i| (0..width).map(move |j| if j > offset + i { -1e9 } else { 0.0 }))
                .collect();
            let mask = Tensor::from_vec(mask, (time, width), &Device::Cpu).unwrap();
            let inputs = [random(&[2, 3, time, width], 4)];
            check(
                "causal_softmax",
                &inputs,
                |t| causal_softmax(&t[0], 0.5, offset).unwrap(),
                |t| {
                    softmax(
                        &(&t[0] * 0.5).unwrap().broadcast_add(&mask).unwrap(),
                        D::Minus1,
                    )
                    .unwrap()
                },
            );
        }
    }

    #[test]
    fn swiglu_matches_composed_form() {
        let inputs = [random(&[7, 40], 5), random(&[7, 40], 6)];
        check(
            "swiglu",
            &inputs,
            |t| swiglu(&t[0], &t[1]).unwrap(),
            |t| (t[0].silu().unwrap() * &t[1]).unwrap(),
        );
    }

    #[test]
    fn cross_entropy_matches_candle() {
        let targets =
            Tensor::from_vec((0..40u32).map(|i| i * 7 % 33).collect(), 40, &Device::Cpu).unwrap();
        let inputs = [(random(&[40, 33], 7) * 3.0).unwrap()];
        check(
            "cross_entropy",
            &inputs,
            |t| cross_entropy(&t[0], &targets).unwrap(),
            |t| candle_nn::loss::cross_entropy(&t[0], &targets).unwrap(),
        );
    }

    #[test]
    fn linear_matches_composed_form() {
        let inputs = [random(&[2, 5, 12], 10), random(&[7, 12], 11)];
        check(
            "linear",
            &inputs,
            |t| linear(&t[0], &t[1]).unwrap(),
            |t| t[0].broadcast_matmul(&t[1].t().unwrap()).unwrap(),
        );
    }

    #[test]
    fn head_moves_match_composed_forms() {
        let inputs = [random(&[2, 5, 12], 12)];
        check(
            "split_heads",
            &inputs,
            |t| split_heads(&t[0], 3).unwrap(),
            |t| {
                t[0].reshape((2, 5, 3, 4))
                    .unwrap()
                    .transpose(1, 2)
                    .unwrap()
                    .contiguous()
                    .unwrap()
            },
        );
        let inputs = [random(&[2, 3, 5, 4], 13)];
        check(
            "merge_heads",
            &inputs,
            |t| merge_heads(&t[0]).unwrap(),
            |t| t[0].transpose(1, 2).unwrap().reshape((2, 5, 12)).unwrap(),
        );
    }

    #[test]
    fn linear_cross_entropy_matches_composed_form() {
        let targets = Tensor::from_vec((0..40u32).map(|i| i * 5 % 33).collect(), 40, &Device::Cpu);
        let targets = targets.unwrap();
        let inputs = [random(&[40, 12], 14), random(&[33, 12], 15)];
        check(
            "linear_cross_entropy",
            &inputs,
            |t| linear_cross_entropy(&t[0], &t[1], &targets).unwrap(),
            |t| {
                let logits = t[0].matmul(&t[1].t().unwrap()).unwrap();
                candle_nn::loss::cross_entropy(&logits, &targets).unwrap()
            },
        );
    }

    #[test]
    fn cross_entropy_rejects_targets_outside_the_vocabulary() {
        let targets = Tensor::from_vec(vec![0u32, 9], 2, &Device::Cpu).unwrap();
        let error = cross_entropy(&random(&[2, 9], 8), &targets).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("target 9 is outside the vocabulary of 9"),
            "{error}"
        );
    }
}
