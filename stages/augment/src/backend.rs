//! Generators that run in this process, such as the embedded local model, behind the same
//! retry, outcome and accounting logic as an HTTP server.

use std::future::Future;
use std::pin::Pin;

use serde_json::Value;

use crate::outcome::{Completion, Endpoint};

/// Failure of one attempt of an in-process generator.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The request can never succeed as written (like HTTP 400): not retried.
    #[error("{0}")]
    Invalid(String),
    /// The generator could not serve it this time: retried like a dropped connection.
    #[error("{0}")]
    Unavailable(String),
}

pub type BackendFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Completion, BackendError>> + Send + 'a>>;

/// Generator that completes OpenAI-style request bodies (`messages` or `prompt`, `max_tokens`,
/// `temperature`, `top_p`, `seed`, `stop`) without HTTP.
pub trait Backend: Send + Sync {
    fn complete<'a>(&'a self, endpoint: Endpoint, body: &'a Value) -> BackendFuture<'a>;
}
