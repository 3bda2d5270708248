//! Model dimensions read from a GGUF file's metadata.

use crate::error::{LocalError, Result};
use crate::gguf::GgufFile;

/// Shape of a llama-family decoder.
#[derive(Clone, Debug, PartialEq)]
pub struct LlamaConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub context_length: usize,
    pub rope_theta: f32,
    pub rms_norm_eps: f64,
}

impl LlamaConfig {
    /// Reads the `llama.*` keys. Files of other architectures are refused with the name they
    /// give, since their tensors differ (biases, fused projections, other norms).
    pub fn from_gguf(file: &GgufFile) -> Result<Self> {
        let architecture = file.string("general.architecture")?;
        if architecture != "llama" {
            return Err(LocalError::Architecture {
                path: file.path().to_path_buf(),
                architecture: architecture.to_string(),
            });
        }

        let int = |key: &str| file.integer(key).map(|v| v as usize);
        let hidden_size = int("llama.embedding_length")?;
        let heads = int("llama.attention.head_count")?;
        let kv_heads = file
            .integer("llama.attention.head_count_kv")
            .map_or(heads, |v| v as usize);
        let vocab_size = match int("llama.vocab_size") {
            Ok(n) => n,
            Err(_) => file.strings("tokenizer.ggml.tokens")?.len(),
        };
        let config = Self {
            vocab_size,
            hidden_size,
            intermediate_size: int("llama.feed_forward_length")?,
            layers: int("llama.block_count")?,
            heads,
            kv_heads,
            head_dim: hidden_size / heads.max(1),
            context_length: int("llama.context_length")?,
            rope_theta: file.float("llama.rope.freq_base").unwrap_or(10_000.0) as f32,
            rms_norm_eps: file
                .float("llama.attention.layer_norm_rms_epsilon")
                .unwrap_or(1e-5),
        };

        if heads == 0 || kv_heads == 0 || heads % kv_heads != 0 || hidden_size % heads != 0 {
            return Err(LocalError::NotGguf {
                path: file.path().to_path_buf(),
                reason: format!(
                    "inconsistent attention shape: {heads} heads, {kv_heads} key/value heads, width {hidden_size}"
                ),
            });
        }
        Ok(config)
    }
}
