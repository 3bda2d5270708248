//! The augment stage's building blocks: prompt templates, the retry policy of LLM requests,
//! and the classification of their responses.
//!
//! NOTE: the token budget, costs, corpus statistics, the two-step entity-graph generation and
//! the OpenAI Batch API are not written yet.

pub mod builtin;
pub mod cost;
pub mod outcome;
pub mod provider;
pub mod retry;
pub mod stage;
pub mod stats;
pub mod template;
