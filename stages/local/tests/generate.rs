//! Generation with the default model: determinism, topic, stop strings, limits and errors.

mod common;

use kenning_local::{
    FinishReason, GenerateRequest, LoadOptions, LocalError, LocalModel, Message, Prompt,
    SamplingParams,
};

fn chat(question: &str, max_tokens: usize, temperature: f32, seed: u64) -> GenerateRequest {
    GenerateRequest {
        prompt: Prompt::Chat(vec![Message::new("user", question)]),
        max_tokens,
        sampling: SamplingParams {
            temperature,
            seed,
            ..SamplingParams::default()
        },
        stop: Vec::new(),
    }
}

#[test]
fn chat_reply_mentions_the_prompt_topic() {
    let model = common::model();
    let reply = model
        .generate_blocking(chat(
            "Write two sentences about the ocean and its waves.",
            60,
            0.0,
            0,
        ))
        .unwrap();
    let text = reply.text.to_lowercase();
    assert!(
        ["ocean", "wave", "sea", "water"]
            .iter()
            .any(|w| text.contains(w)),
        "reply: {}",
        reply.text
    );
    assert!(reply.prompt_tokens > 10);
    assert!(reply.completion_tokens >= 1);
    assert!(reply.completion_tokens <= 60);
}

#[test]
fn seed_fixes_the_text() {
    let model = common::model();
    let request = |seed| chat("Name three kinds of trees.", 24, 1.0, seed);
    let first = model.generate_blocking(request(11)).unwrap();
    let again = model.generate_blocking(request(11)).unwrap();
    assert_eq!(first, again);

    let others: Vec<String> = (12..15)
        .map(|seed| model.generate_blocking(request(seed)).unwrap().text)
        .collect();
    assert!(
        others.iter().any(|t| *t != first.text),
        "{first:?} {others:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batching_keeps_each_text() {
    let model = common::model();
    let requests: Vec<GenerateRequest> = (0..4)
        .map(|i| {
            chat(
                &format!("Count from {i} to {} in words.", i + 5),
                20,
                0.9,
                100 + i,
            )
        })
        .collect();

    let mut alone = Vec::new();
    for request in &requests {
        alone.push(model.generate(request.clone()).await.unwrap());
    }
    let handles: Vec<_> = requests
        .iter()
        .cloned()
        .map(|request| {
            let model = model.clone();
            tokio::spawn(async move { model.generate(request).await })
        })
        .collect();
    for (handle, single) in handles.into_iter().zip(&alone) {
        assert_eq!(&handle.await.unwrap().unwrap(), single);
    }
}

#[test]
fn max_tokens_ends_with_length() {
    let model = common::model();
    let reply = model
        .generate_blocking(chat("Tell me a long story about a dragon.", 5, 0.0, 0))
        .unwrap();
    assert_eq!(reply.finish_reason, FinishReason::Length);
    assert_eq!(reply.completion_tokens, 5);
}

#[test]
fn stop_string_ends_generation_and_is_dropped() {
    let model = common::model();
    let question = "List four fruits, one per line.";
    let free = model.generate_blocking(chat(question, 40, 0.0, 0)).unwrap();
    // Stop at the first line break the model writes.
    assert!(free.text.contains('\n'), "{}", free.text);
    let mut request = chat(question, 40, 0.0, 0);
    request.stop = vec!["\n".into()];
    let stopped = model.generate_blocking(request).unwrap();
    assert_eq!(stopped.finish_reason, FinishReason::Stop);
    assert_eq!(stopped.text, free.text[..free.text.find('\n').unwrap()]);
}

#[test]
fn end_of_turn_ends_with_stop() {
    let model = common::model();
    let reply = model
        .generate_blocking(chat("What is the capital of France?", 60, 0.0, 0))
        .unwrap();
    assert_eq!(reply.finish_reason, FinishReason::Stop, "{reply:?}");
    assert!(!reply.text.contains("<|im_end|>"));
}

#[test]
fn prompt_over_context_window_is_rejected() {
    let model = common::model();
    let long = "word ".repeat(9000);
    let error = model
        .generate_blocking(chat(&long, 10, 0.0, 0))
        .unwrap_err();
    assert!(
        matches!(error, LocalError::PromptTooLong { context: 8192, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("context window"));
}

#[test]
fn bad_model_files_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();

    let missing = dir.path().join("missing.gguf");
    let error = LocalModel::load(&LoadOptions::new(&missing)).err().unwrap();
    assert!(error.to_string().contains("missing.gguf"), "{error}");

    let text = dir.path().join("notes.gguf");
    std::fs::write(&text, "just some text, not a model").unwrap();
    let error = LocalModel::load(&LoadOptions::new(&text)).err().unwrap();
    assert!(matches!(error, LocalError::NotGguf { .. }), "{error}");
    assert!(error.to_string().contains("magic"), "{error}");

    // A well-formed GGUF file of another architecture.
    let other = dir.path().join("other.gguf");
    let architecture = candle_core::quantized::gguf_file::Value::String("qwen2".into());
    let mut writer = std::fs::File::create(&other).unwrap();
    candle_core::quantized::gguf_file::write(
        &mut writer,
        &[("general.architecture", &architecture)],
        &[],
    )
    .unwrap();
    drop(writer);
    let error = LocalModel::load(&LoadOptions::new(&other)).err().unwrap();
    assert!(matches!(error, LocalError::Architecture { .. }), "{error}");
    assert!(error.to_string().contains("qwen2"), "{error}");

    // The first 10 MB of the real file: a valid header whose tensors run past the end.
    let truncated = dir.path().join("truncated.gguf");
    let bytes = std::fs::read(common::model_path()).unwrap();
    std::fs::write(&truncated, &bytes[..10 << 20]).unwrap();
    let error = LocalModel::load(&LoadOptions::new(&truncated))
        .err()
        .unwrap();
    assert!(error.to_string().contains("truncated"), "{error}");
}
