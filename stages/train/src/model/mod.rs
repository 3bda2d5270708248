//! The llama-style decoder, its config and its initialisation.

pub mod config;
pub mod init;
pub mod llama;
pub mod ops;

pub use config::ModelConfig;
pub use llama::{KvCache, Llama, weight_shapes};
