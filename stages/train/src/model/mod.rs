//! The llama-style decoder, its config and its initialisation.

pub mod config;
pub mod init;
pub mod llama;

pub use config::ModelConfig;
pub use llama::{Llama, weight_shapes};
