//! Size and shape of a llama-style decoder.

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// Shape of a llama-style decoder: RMSNorm, interleaved rotary embeddings, SwiGLU feed-forward
/// blocks and optionally an output layer tied to the token embeddings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Vocabulary size. Zero means "take it from the tokenizer".
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the SwiGLU feed-forward block.
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    /// Key/value heads; fewer than `num_heads` gives grouped-query attention.
    pub num_kv_heads: usize,
    /// Base of the rotary embedding frequencies.
    pub rope_theta: f64,
    pub rms_norm_eps: f64,
    /// Reuse the token embedding matrix as the output layer, so there is no `output.weight`.
    pub tie_embeddings: bool,
    /// Longest sequence the rotary tables cover.
    pub max_seq_len: usize,
    /// Standard deviation of the normal initialisation of the weight matrices.
    pub init_std: f64,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            vocab_size: 0,
            hidden_size: 128,
            intermediate_size: 384,
            num_layers: 4,
            num_heads: 4,
            num_kv_heads: 4,
            rope_theta: 10_000.0,
            rms_norm_eps: 1e-5,
            tie_embeddings: true,
            max_seq_len: 512,
            init_std: 0.02,
        }
    }
}

impl ModelConfig {
    /// Checks that the heads divide the width and every size is positive.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_layers", self.num_layers),
            ("num_heads", self.num_heads),
            ("num_kv_heads", self.num_kv_heads),
            ("max_seq_len", self.max_seq_len),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(TrainError::Config(format!(
                    "model.{name} must be greater than 0"
                )));
            }
        }
        if !self.hidden_size.is_multiple_of(self.num_heads) {
            return Err(TrainError::Config(format!(
                "model.hidden_size {} is not a multiple of model.num_heads {}",
                self.hidden_size, self.num_heads
            )));
        }
        if !self.head_dim().is_multiple_of(2) {
            return Err(TrainError::Config(format!(
                "the head width hidden_size / num_heads = {} must be even for rotary embeddings",
                self.head_dim()
            )));
        }
        if !self.num_heads.is_multiple_of(self.num_kv_heads) {
            return Err(TrainError::Config(format!(
                "model.num_heads {} is not a multiple of model.num_kv_heads {}",
                self.num_heads, self.num_kv_heads
            )));
        }
        if !(self.rope_theta > 0.0 && self.rms_norm_eps > 0.0 && self.init_std > 0.0) {
            return Err(TrainError::Config(
                "model.rope_theta, model.rms_norm_eps and model.init_std must be greater than 0"
                    .into(),
            ));
        }
        Ok(())
    }

    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_heads
    }

    /// Returns the number of trainable parameters.
    pub fn parameter_count(&self) -> usize {
        let h = self.hidden_size;
        let kv = self.num_kv_heads * self.head_dim();
        let attention = h * h * 2 + h * kv * 2;
        let feed_forward = 3 * h * self.intermediate_size;
        let layer = attention + feed_forward + 2 * h;
        let embeddings = self.vocab_size * h;
        let output = if self.tie_embeddings { 0 } else { embeddings };
        embeddings + output + self.num_layers * layer + h
    }
}
