//! The augment stage: LLM rewrites of documents with prompt templates over OpenAI-compatible
//! servers, with the retry policy and rate limits of the requests, the classification of their
//! responses, request keys, costs, the two-step entity-graph generation and corpus statistics.
//!
//! NOTE: the OpenAI Batch API is not used; every request goes to the online endpoints.

pub mod backend;
pub mod builtin;
pub mod cache;
pub mod cooldown;
pub mod cost;
pub mod entigraph;
pub mod failures;
pub mod outcome;
pub mod progress;
pub mod provider;
pub mod report;
pub mod retry;
mod run;
pub mod stage;
pub mod stats;
pub mod template;
