//! Errors of the local model.

use std::path::PathBuf;

/// Failure to load or run the local model.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("cannot read the model file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error(
        "{path} is not a usable GGUF model: {reason}; pass a llama-family .gguf file with --model-path, or run `kenning model fetch` to get the default model"
    )]
    NotGguf { path: PathBuf, reason: String },

    #[error(
        "{path}: architecture `{architecture}` is not supported; the local provider runs llama-family GGUF models (Llama, SmolLM, Mistral-style)"
    )]
    Architecture { path: PathBuf, architecture: String },

    #[error(
        "{path}: tensor `{tensor}` is stored as {dtype:?}, which the local provider cannot run"
    )]
    Quantization {
        path: PathBuf,
        tensor: String,
        dtype: candle_core::quantized::GgmlDType,
    },

    #[error("{path}: metadata key `{key}` is missing or has the wrong type")]
    Metadata { path: PathBuf, key: String },

    #[error("{path}: tensor `{tensor}` is missing; the file is not a complete llama-family model")]
    MissingTensor { path: PathBuf, tensor: String },

    #[error("{path}: the tokenizer in the file's metadata is unusable: {reason}")]
    Tokenizer { path: PathBuf, reason: String },

    #[error("the chat template cannot be rendered: {0}")]
    Template(String),

    #[error(
        "the prompt has {prompt} tokens and asks for {max_tokens} more, but the model's context window is {context} tokens; shorten the input or lower max_tokens"
    )]
    PromptTooLong {
        prompt: usize,
        max_tokens: usize,
        context: usize,
    },

    #[error("invalid generation setting: {0}")]
    Setting(String),

    #[error("the model computation failed: {0}")]
    Compute(#[from] candle_core::Error),

    #[error("the local model worker has stopped")]
    WorkerStopped,

    #[error("cannot fetch the default model: {0}")]
    Fetch(String),
}

pub type Result<T, E = LocalError> = std::result::Result<T, E>;
