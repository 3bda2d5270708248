//! The fused operations inside the whole decoder: loss and gradients in `f32` match the
//! composed operations in `f64` (the path checked against finite differences), and cached
//! decoding matches the full forward pass.

use candle_core::{DType, Device, Tensor};
use kenning_train::model::{Llama, ModelConfig};

fn tiny_config(tie: bool) -> ModelConfig {
    config(tie, 16)
}

fn config(tie: bool, max_seq_len: usize) -> ModelConfig {
    ModelConfig {
        vocab_size: 37,
        hidden_size: 16,
        intermediate_size: 24,
        num_layers: 2,
        num_heads: 4,
        num_kv_heads: 2,
        max_seq_len,
        tie_embeddings: tie,
        init_std: 0.2,
        ..ModelConfig::default()
    }
}

fn batch(device: &Device) -> Tensor {
    sequences(device, 9)
}

/// Returns two sequences of `len` token ids.
fn sequences(device: &Device, len: usize) -> Tensor {
    let ids: Vec<u32> = (0..2 * len as u32).map(|i| (i * 7 + 3) % 37).collect();
    Tensor::from_vec(ids, (2, len), device).unwrap()
}

/// Returns the largest absolute difference of two tensors relative to the larger of 1 and the
/// largest magnitude of `expected`.
fn relative_difference(got: &Tensor, expected: &Tensor) -> f64 {
    let got = got.to_dtype(DType::F64).unwrap().flatten_all().unwrap();
    let expected = expected
        .to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap();
    let scale = expected
        .abs()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    let difference = (got - expected).unwrap().abs().unwrap().max(0).unwrap();
    difference.to_scalar::<f64>().unwrap() / scale.max(1.0)
}

/// Checks loss and gradients of the fused f32 model against the composed f64 model on two
/// sequences of `len` + 1 tokens.
fn check_gradients(tie: bool, len: usize) {
    let device = Device::Cpu;
    {
        let fused = Llama::new(&config(tie, len), 5, DType::F32, &device).unwrap();
        let reference = Llama::new(&config(tie, len), 5, DType::F64, &device).unwrap();
        assert!(fused.fused_ops(), "f32 on the CPU takes the fused path");
        assert!(!reference.fused_ops(), "f64 takes the composed path");

        let input = sequences(&device, len + 1);
        let fused_loss = fused.loss(&input).unwrap();
        let reference_loss = reference.loss(&input).unwrap();
        let difference = relative_difference(&fused_loss, &reference_loss);
        assert!(
            difference < 1e-5,
            "loss differs by {difference} (tie_embeddings = {tie})"
        );

        let fused_grads = fused.gradients(&fused_loss.backward().unwrap());
        let reference_grads = reference.gradients(&reference_loss.backward().unwrap());
        assert_eq!(
            fused_grads.len(),
            fused.named_vars().len(),
            "every weight has a gradient"
        );
        for (name, expected) in &reference_grads {
            let got = fused_grads
                .get(name)
                .unwrap_or_else(|| panic!("{name} has no gradient"));
            let difference = relative_difference(got, expected);
            assert!(
                difference < 1e-4,
                "{name} gradient differs by {difference} (tie_embeddings = {tie})"
            );
        }
    }
}

#[test]
fn fused_gradients_match_composed_gradients() {
    for tie in [true, false] {
        check_gradients(tie, 8);
    }
}

#[test]
fn fused_gradients_match_over_several_attention_tiles() {
    // Attention runs in tiles of 32 positions: 70 positions make two whole tiles and a part.
    check_gradients(true, 70);
}

#[test]
fn fused_and_composed_f32_paths_agree() {
    let device = Device::Cpu;
    let mut model = Llama::new(&tiny_config(true), 9, DType::F32, &device).unwrap();
    let input = batch(&device);
    let fused = model.forward(&input).unwrap();
    model.set_fused_ops(false);
    assert!(!model.fused_ops());
    let composed = model.forward(&input).unwrap();
    let difference = relative_difference(&fused, &composed);
    assert!(difference < 1e-5, "logits differ by {difference}");
}

#[test]
fn fused_cached_forward_matches_full_forward() {
    let device = Device::Cpu;
    let model = Llama::new(&tiny_config(true), 3, DType::F32, &device).unwrap();
    let ids = batch(&device);
    let full = model.forward(&ids).unwrap();

    // A prompt of four positions, then two, then one at a time.
    let mut cache = model.new_cache();
    let mut pieces = Vec::new();
    for (start, len) in [(0, 4), (4, 2), (6, 1), (7, 1), (8, 1)] {
        let piece = ids.narrow(1, start, len).unwrap();
        pieces.push(model.forward_cached(&piece, &mut cache).unwrap());
    }
    let cached = Tensor::cat(&pieces, 1).unwrap();
    let difference = relative_difference(&cached, &full);
    assert!(difference < 1e-5, "cached logits differ by {difference}");
}
