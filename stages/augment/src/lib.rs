//! The augment stage's building blocks: prompt templates, the retry policy of LLM requests,
//! and the classification of their responses.
//!
//! NOTE: the provider (HTTP requests to OpenAI-compatible servers), rate limits, the request
//! cache and the stage itself are not written yet; these modules are their tested base.

pub mod outcome;
pub mod retry;
pub mod template;
