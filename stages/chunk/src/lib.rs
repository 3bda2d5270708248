//! The chunk stage: splits long documents into passages of at most `max_tokens` tokens, with
//! `overlap` tokens shared between neighbours, so long articles fit a model's context window.
//!
//! Passages are byte ranges of the original text cut at token boundaries, so no character is
//! changed.

mod config;
mod splitter;
mod stage;
mod tokenizer;

pub use config::{ChunkConfig, DEFAULT_MAX_TOKENS, DEFAULT_OVERLAP};
pub use splitter::{Passage, split_passages};
pub use stage::ChunkStage;
pub use tokenizer::{TokenizerError, TokenizerSpec, Tokens};
