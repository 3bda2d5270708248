//! Tolerant reading of OpenAI-compatible responses, and what each one means for the dataset.
//!
//! Responses are read as plain JSON, so unknown fields and unknown `finish_reason` values
//! (such as `"abort"` from some servers) never reject a whole response.

use serde_json::Value;

use crate::retry::Failure;

/// Token counts a response reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TokenUsage {
    pub prompt: u64,
    pub completion: u64,
    /// Prompt tokens served from the provider's prompt cache.
    pub cached: u64,
}

/// The first choice of a chat or text completion.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Completion {
    pub text: String,
    pub finish_reason: Option<String>,
    /// The model's refusal message, when the server reports one separately.
    pub refusal: Option<String>,
    /// `None` when the server sent no `usage`.
    pub usage: Option<TokenUsage>,
    pub model: Option<String>,
}

/// Meaning of a completion for the dataset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Usable text.
    Complete,
    /// Cut off at `max_tokens` (`finish_reason` `length`).
    Truncated,
    /// The model refused; the message is kept for the failures table.
    Refused(String),
    /// The provider's content filter stopped it.
    Filtered,
    /// Empty or whitespace-only text.
    Empty,
}

/// The endpoint that produced a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Completions,
}

/// Reads the first choice of a response body.
pub fn parse(endpoint: Endpoint, body: &[u8]) -> Result<Completion, Failure> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Failure::EmptyBody);
    }
    let value: Value = serde_json::from_slice(body).map_err(|_| Failure::Malformed)?;
    let choice = value
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|choices| choices.first())
        .ok_or(Failure::Malformed)?;

    let (text, refusal) = match endpoint {
        Endpoint::Chat => {
            let message = choice.get("message").ok_or(Failure::Malformed)?;
            let text = message
                .get("content")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let refusal = message
                .get("refusal")
                .and_then(Value::as_str)
                .map(str::to_string);
            (text.to_string(), refusal)
        }
        Endpoint::Completions => {
            let text = choice
                .get("text")
                .and_then(Value::as_str)
                .ok_or(Failure::Malformed)?;
            (text.to_string(), None)
        }
    };

    let usage = value
        .get("usage")
        .filter(|u| u.is_object())
        .map(|usage| TokenUsage {
            prompt: usage
                .get("prompt_tokens")
                .and_then(Value::as_u64)
                .unwrap_or(0),
            completion: usage
                .get("completion_tokens")
                .and_then(Value::as_u64)
                .unwrap_or(0),
            cached: usage
                .pointer("/prompt_tokens_details/cached_tokens")
                .and_then(Value::as_u64)
                .unwrap_or(0),
        });

    Ok(Completion {
        text,
        finish_reason: choice
            .get("finish_reason")
            .and_then(Value::as_str)
            .map(str::to_string),
        refusal,
        usage,
        model: value
            .get("model")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

/// Decides what a completion means; `length` counts as usable only with `keep_truncated`.
pub fn classify(completion: &Completion, keep_truncated: bool) -> Outcome {
    if let Some(refusal) = completion
        .refusal
        .as_deref()
        .filter(|r| !r.trim().is_empty())
    {
        return Outcome::Refused(refusal.to_string());
    }
    match completion.finish_reason.as_deref() {
        Some("content_filter") => return Outcome::Filtered,
        Some("length") if !keep_truncated => return Outcome::Truncated,
        _ => {}
    }
    if completion.text.trim().is_empty() {
        return Outcome::Empty;
    }
    Outcome::Complete
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(body: &str) -> Result<Completion, Failure> {
        parse(Endpoint::Chat, body.as_bytes())
    }

    #[test]
    fn unknown_fields_and_finish_reasons_are_accepted() {
        let completion = chat(
            r#"{"id":"x","object":"chat.completion","model":"m","system_fingerprint":"fp","extra":{"a":1},
                "choices":[{"index":0,"message":{"role":"assistant","content":"Mainz, 1440.","tool_calls":null},
                "finish_reason":"abort","logprobs":null}],
                "usage":{"prompt_tokens":12,"completion_tokens":4,"total_tokens":16,"prompt_tokens_details":{"cached_tokens":8}}}"#,
        )
        .unwrap();
        assert_eq!(completion.text, "Mainz, 1440.");
        assert_eq!(completion.finish_reason.as_deref(), Some("abort"));
        assert_eq!(
            completion.usage,
            Some(TokenUsage {
                prompt: 12,
                completion: 4,
                cached: 8
            })
        );
        assert_eq!(classify(&completion, false), Outcome::Complete);
    }

    #[test]
    fn missing_usage_is_none() {
        let completion =
            chat(r#"{"choices":[{"message":{"content":"ok"},"finish_reason":"stop"}]}"#).unwrap();
        assert_eq!(completion.usage, None);
    }

    #[test]
    fn empty_and_malformed_bodies_are_failures() {
        assert_eq!(chat(""), Err(Failure::EmptyBody));
        assert_eq!(chat("  \n"), Err(Failure::EmptyBody));
        assert_eq!(
            chat("{\"choices\": [{\"message\": {\"content\": \"cut"),
            Err(Failure::Malformed)
        );
        assert_eq!(chat("{\"choices\": []}"), Err(Failure::Malformed));
        assert_eq!(chat("<html>Bad gateway</html>"), Err(Failure::Malformed));
    }

    #[test]
    fn outcomes_follow_finish_reason_and_refusal() {
        let length =
            chat(r#"{"choices":[{"message":{"content":"partial te"},"finish_reason":"length"}]}"#)
                .unwrap();
        assert_eq!(classify(&length, false), Outcome::Truncated);
        assert_eq!(classify(&length, true), Outcome::Complete);

        let refusal = chat(r#"{"choices":[{"message":{"content":null,"refusal":"I can't help with that."},"finish_reason":"stop"}]}"#).unwrap();
        assert_eq!(
            classify(&refusal, false),
            Outcome::Refused("I can't help with that.".into())
        );

        let filtered =
            chat(r#"{"choices":[{"message":{"content":""},"finish_reason":"content_filter"}]}"#)
                .unwrap();
        assert_eq!(classify(&filtered, false), Outcome::Filtered);

        let blank = chat(r#"{"choices":[{"message":{"content":"  \n "},"finish_reason":"stop"}]}"#)
            .unwrap();
        assert_eq!(classify(&blank, false), Outcome::Empty);
    }

    #[test]
    fn text_completions_read_the_text_field() {
        let completion = parse(
            Endpoint::Completions,
            br#"{"choices":[{"text":" continued","finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2}}"#,
        )
        .unwrap();
        assert_eq!(completion.text, " continued");
        assert_eq!(completion.usage.unwrap().completion, 2);
    }
}
