//! Gradient checks of the decoder: every weight receives a gradient, and one layer's analytic
//! gradients match central finite differences in f64.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use kenning_train::model::{Llama, ModelConfig, weight_shapes};

fn tiny_config(layers: usize, tie: bool) -> ModelConfig {
    ModelConfig {
        vocab_size: 37,
        hidden_size: 16,
        intermediate_size: 24,
        num_layers: layers,
        num_heads: 4,
        num_kv_heads: 2,
        max_seq_len: 16,
        tie_embeddings: tie,
        init_std: 0.2,
        ..ModelConfig::default()
    }
}

fn batch(device: &Device) -> Tensor {
    let ids: Vec<u32> = (0..2 * 9).map(|i| (i * 7 + 3) % 37).collect();
    Tensor::from_vec(ids, (2, 9), device).unwrap()
}

#[test]
fn every_weight_receives_gradient() {
    let device = Device::Cpu;
    for tie in [true, false] {
        let model = Llama::new(&tiny_config(2, tie), 1, DType::F32, &device).unwrap();
        let loss = model.loss(&batch(&device)).unwrap();
        let grads = model.gradients(&loss.backward().unwrap());
        let vars = model.named_vars();
        assert_eq!(vars.len(), weight_shapes(model.config()).len());
        for (name, _) in vars {
            let grad = grads
                .get(&name)
                .unwrap_or_else(|| panic!("{name} received no gradient (tie_embeddings = {tie})"));
            let norm: f32 = grad.sqr().unwrap().sum_all().unwrap().to_scalar().unwrap();
            assert!(
                norm > 0.0,
                "{name} has an all-zero gradient (tie_embeddings = {tie})"
            );
        }
    }
}

#[test]
fn one_layer_gradients_match_finite_differences() {
    let device = Device::Cpu;
    let config = tiny_config(1, false);
    let model = Llama::new(&config, 7, DType::F64, &device).unwrap();
    let input = batch(&device);
    let grads = model.loss(&input).unwrap().backward().unwrap();
    let loss_of = |m: &Llama| -> f64 { m.loss(&input).unwrap().to_scalar::<f64>().unwrap() };

    let checked = [
        "blk.0.attn_norm.weight",
        "blk.0.attn_q.weight",
        "blk.0.attn_k.weight",
        "blk.0.attn_v.weight",
        "blk.0.attn_output.weight",
        "blk.0.ffn_norm.weight",
        "blk.0.ffn_gate.weight",
        "blk.0.ffn_up.weight",
        "blk.0.ffn_down.weight",
    ];
    let base: HashMap<String, Tensor> = model.tensors();
    let h = 1e-5;
    for name in checked {
        let (_, var) = model
            .named_vars()
            .into_iter()
            .find(|(n, _)| n == name)
            .unwrap();
        let analytic: Vec<f64> = grads
            .get(var.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let values: Vec<f64> = base[name].flatten_all().unwrap().to_vec1().unwrap();
        let dims = base[name].dims().to_vec();
        for index in [0, values.len() / 3, values.len() - 1] {
            let shifted = |delta: f64| -> f64 {
                let mut v = values.clone();
                v[index] += delta;
                let mut tensors = base.clone();
                tensors.insert(
                    name.to_string(),
                    Tensor::from_vec(v, dims.as_slice(), &device).unwrap(),
                );
                model.load_tensors(&tensors).unwrap();
                loss_of(&model)
            };
            let numeric = (shifted(h) - shifted(-h)) / (2.0 * h);
            let difference = (numeric - analytic[index]).abs();
            let scale = numeric.abs().max(analytic[index].abs()).max(1e-6);
            assert!(
                difference / scale < 1e-4 || difference < 1e-8,
                "{name}[{index}]: analytic {} vs finite difference {numeric}",
                analytic[index]
            );
        }
        model.load_tensors(&base).unwrap();
    }
}

#[test]
fn from_tensors_rejects_wrong_shape() {
    let device = Device::Cpu;
    let config = tiny_config(1, true);
    let model = Llama::new(&config, 1, DType::F32, &device).unwrap();
    let mut tensors = model.tensors();
    tensors.insert(
        "blk.0.attn_q.weight".into(),
        Tensor::zeros((3, 3), DType::F32, &device).unwrap(),
    );
    let error = Llama::from_tensors(&config, tensors, &device)
        .err()
        .unwrap();
    assert!(error.to_string().contains("blk.0.attn_q.weight"), "{error}");
}

#[test]
fn from_tensors_reproduces_logits() {
    let device = Device::Cpu;
    let config = tiny_config(2, true);
    let model = Llama::new(&config, 3, DType::F32, &device).unwrap();
    let copy = Llama::from_tensors(&config, model.tensors(), &device).unwrap();
    let input = batch(&device);
    let a: Vec<f32> = model
        .forward(&input)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let b: Vec<f32> = copy
        .forward(&input)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_eq!(a, b);
}

#[test]
fn cached_forward_matches_full_forward() {
    let device = Device::Cpu;
    let model = Llama::new(&tiny_config(2, true), 3, DType::F64, &device).unwrap();
    let ids = batch(&device);
    let full = model.forward(&ids).unwrap();

    // A prompt of four positions, then one position at a time.
    let mut cache = model.new_cache();
    let mut pieces = vec![
        model
            .forward_cached(&ids.narrow(1, 0, 4).unwrap(), &mut cache)
            .unwrap(),
    ];
    for position in 4..9 {
        let step = ids.narrow(1, position, 1).unwrap();
        pieces.push(model.forward_cached(&step, &mut cache).unwrap());
    }
    assert_eq!(cache.len(), 9);
    let cached = Tensor::cat(&pieces, 1).unwrap();

    let largest = (full - cached)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert!(largest < 1e-9, "cached logits differ by {largest}");
}

#[test]
fn cached_forward_rejects_overflowing_window() {
    let device = Device::Cpu;
    let model = Llama::new(&tiny_config(1, true), 3, DType::F32, &device).unwrap();
    let mut cache = model.new_cache();
    let ids = Tensor::zeros((1, 12), DType::U32, &device).unwrap();
    model.forward_cached(&ids, &mut cache).unwrap();
    let error = model.forward_cached(&ids, &mut cache).unwrap_err();
    assert!(error.to_string().contains("24 tokens"), "{error}");
    assert_eq!(cache.len(), 12);
}
