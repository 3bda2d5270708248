//! Kenning's embedded generator: a llama-family GGUF model (SmolLM2-135M-Instruct by default)
//! run with candle, with the tokenizer and chat template read from the file itself and
//! requests decoded together in batches.

pub mod chat;
pub mod config;
pub mod engine;
pub mod error;
pub mod exp;
pub mod export;
pub mod fetch;
pub mod generate;
pub mod gguf;
pub mod model;
pub mod openai;
pub mod q8;
pub mod sampling;
mod step;
pub mod tokenizer;

pub use chat::Message;
pub use engine::{DecodeStats, LoadOptions, LocalModel, ModelInfo};
pub use error::LocalError;
pub use generate::{FinishReason, GenerateRequest, Generation, Prompt};
pub use model::WeightFormat;
pub use sampling::SamplingParams;
