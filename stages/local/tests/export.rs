//! Dense weights read from the default model and written back as an f32 GGUF file generate the
//! same text as the original file.

mod common;

use candle_core::Device;
use kenning_local::{
    GenerateRequest, LoadOptions, LocalModel, Message, Prompt, SamplingParams, WeightFormat,
};

#[test]
fn dense_export_generates_like_the_original() {
    let original = common::model_path();
    let (config, tensors) = kenning_local::export::read_dense(&original, &Device::Cpu).unwrap();
    assert_eq!(config.layers, 30);
    assert!(tensors.contains_key("token_embd.weight"));

    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.gguf");
    kenning_local::export::write_dense(&original, &tensors, &copy).unwrap();

    let request = GenerateRequest {
        prompt: Prompt::Chat(vec![Message::new("user", "What is the capital of France?")]),
        max_tokens: 8,
        sampling: SamplingParams {
            temperature: 0.0,
            ..SamplingParams::default()
        },
        stop: Vec::new(),
    };
    let generate = |path| {
        let mut options = LoadOptions::new(path);
        options.weights = WeightFormat::F32;
        LocalModel::load(&options)
            .unwrap()
            .generate_blocking(request.clone())
            .unwrap()
    };
    assert_eq!(generate(copy), generate(original));
}
