//! Requests and results of the local model, shaped like OpenAI completions so the augment
//! stage and `kenning serve` handle them exactly as they handle an HTTP server's.

use crate::chat::Message;
use crate::sampling::SamplingParams;

/// Prompt of a request: a chat, rendered with the model's chat template, or raw text for the
/// completions endpoint.
#[derive(Clone, Debug, PartialEq)]
pub enum Prompt {
    Chat(Vec<Message>),
    Text(String),
}

/// One generation request.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerateRequest {
    pub prompt: Prompt,
    pub max_tokens: usize,
    pub sampling: SamplingParams,
    /// Generation stops before the first of these strings; the string is not returned.
    pub stop: Vec<String>,
}

/// Reason a generation ended, with OpenAI's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// End of turn, end of sequence or a stop string.
    Stop,
    /// `max_tokens` reached.
    Length,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Length => "length",
        }
    }
}

/// A finished generation.
#[derive(Clone, Debug, PartialEq)]
pub struct Generation {
    pub text: String,
    pub finish_reason: FinishReason,
    pub prompt_tokens: usize,
    /// Tokens the model produced, the end-of-turn token included.
    pub completion_tokens: usize,
}
