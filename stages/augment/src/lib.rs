//! The augment stage's building blocks: prompt templates, the retry policy of LLM requests,
//! and the classification of their responses.
//!
//! NOTE: the request cache, the token budget, the accounting and the stage that turns records
//! into requests are not written yet; these modules are their tested base.

pub mod outcome;
pub mod provider;
pub mod retry;
pub mod template;
