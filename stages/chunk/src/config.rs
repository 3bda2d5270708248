//! Settings of the chunk stage.

use serde::{Deserialize, Serialize};

use crate::tokenizer::TokenizerSpec;

/// Default passage length in tokens.
pub const DEFAULT_MAX_TOKENS: usize = 512;
/// Default number of tokens shared by neighbouring passages.
pub const DEFAULT_OVERLAP: usize = 64;

/// `[[stages]] kind = "chunk"` in a pipeline file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkConfig {
    /// Maximum tokens in one passage.
    #[serde(default = "default_max_tokens")]
    pub max_tokens: usize,
    /// Tokens repeated at the start of a passage from the end of the previous one.
    #[serde(default = "default_overlap")]
    pub overlap: usize,
    /// `words` (Unicode words and punctuation), `whitespace`, or the path of a Hugging Face
    /// `tokenizer.json`.
    #[serde(default)]
    pub tokenizer: TokenizerSpec,
}

fn default_max_tokens() -> usize {
    DEFAULT_MAX_TOKENS
}
fn default_overlap() -> usize {
    DEFAULT_OVERLAP
}

impl Default for ChunkConfig {
    fn default() -> Self {
        Self {
            max_tokens: DEFAULT_MAX_TOKENS,
            overlap: DEFAULT_OVERLAP,
            tokenizer: TokenizerSpec::default(),
        }
    }
}

impl ChunkConfig {
    /// Checks the settings without reading any file but the tokenizer's.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_tokens == 0 {
            return Err("chunk.max_tokens must be at least 1".into());
        }
        if self.overlap >= self.max_tokens {
            return Err(format!(
                "chunk.overlap ({}) must be smaller than chunk.max_tokens ({})",
                self.overlap, self.max_tokens
            ));
        }
        if let TokenizerSpec::File(path) = &self.tokenizer
            && !path.is_file()
        {
            return Err(format!(
                "chunk.tokenizer file {} not found. Give the path of a tokenizer.json, or use \
                 `words` or `whitespace`",
                path.display()
            ));
        }
        Ok(())
    }
}
