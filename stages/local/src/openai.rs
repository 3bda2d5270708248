//! OpenAI-compatible request bodies and responses for the local model, shared by the augment
//! stage's `local` provider and `kenning serve`.

use serde_json::{Value, json};

use crate::chat::Message;
use crate::generate::{GenerateRequest, Generation, Prompt};
use crate::sampling::SamplingParams;

/// Completion length when a request gives no `max_tokens`.
pub const DEFAULT_MAX_TOKENS: usize = 256;

/// The two generation endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Completions,
}

/// Reads a request body. Errors are meant for an HTTP 400 reply and name the field.
/// A request without `seed` gets `default_seed`.
pub fn parse_request(
    endpoint: Endpoint,
    body: &Value,
    default_seed: u64,
) -> Result<GenerateRequest, String> {
    let prompt = match endpoint {
        Endpoint::Chat => {
            let messages = body
                .get("messages")
                .and_then(Value::as_array)
                .ok_or("`messages` must be an array of {role, content} objects")?;
            let mut out = Vec::with_capacity(messages.len());
            for (i, message) in messages.iter().enumerate() {
                let role = message
                    .get("role")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("messages[{i}].role must be a string"))?;
                let content = content_text(message.get("content")).ok_or_else(|| {
                    format!("messages[{i}].content must be a string or text parts")
                })?;
                out.push(Message::new(role, content));
            }
            if out.is_empty() {
                return Err("`messages` is empty".into());
            }
            Prompt::Chat(out)
        }
        Endpoint::Completions => match body.get("prompt") {
            Some(Value::String(text)) => Prompt::Text(text.clone()),
            Some(Value::Array(parts)) if parts.len() == 1 && parts[0].is_string() => {
                Prompt::Text(parts[0].as_str().unwrap_or_default().to_string())
            }
            _ => return Err("`prompt` must be a string".into()),
        },
    };

    let number = |name: &str| -> Result<Option<f64>, String> {
        match body.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => value
                .as_f64()
                .map(Some)
                .ok_or_else(|| format!("`{name}` must be a number")),
        }
    };
    let max_tokens = number("max_completion_tokens")?
        .or(number("max_tokens")?)
        .map_or(Ok(DEFAULT_MAX_TOKENS), |n| {
            if n >= 1.0 && n.fract() == 0.0 {
                Ok(n as usize)
            } else {
                Err(format!(
                    "`max_tokens` must be a whole number of at least 1, got {n}"
                ))
            }
        })?;
    if body
        .get("n")
        .and_then(Value::as_u64)
        .is_some_and(|n| n != 1)
    {
        return Err("`n` other than 1 is not supported; send one request per sample".into());
    }
    let sampling = SamplingParams {
        temperature: number("temperature")?.unwrap_or(1.0) as f32,
        top_p: number("top_p")?.unwrap_or(1.0) as f32,
        top_k: number("top_k")?.map_or(0, |k| k.max(0.0) as usize),
        min_p: number("min_p")?.unwrap_or(0.0) as f32,
        seed: match body.get("seed") {
            None | Some(Value::Null) => default_seed,
            Some(value) => value
                .as_u64()
                .ok_or("`seed` must be a whole number of 0 or more")?,
        },
    };
    sampling.check().map_err(|e| e.to_string())?;
    let stop = match body.get("stop") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|s| {
                s.as_str()
                    .map(str::to_string)
                    .ok_or("`stop` must hold strings")
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("`stop` must be a string or an array of strings".into()),
    };

    Ok(GenerateRequest {
        prompt,
        max_tokens,
        sampling,
        stop,
    })
}

/// Text of a message `content`: a string, or an array of `{type: "text", text}` parts.
fn content_text(content: Option<&Value>) -> Option<String> {
    match content? {
        Value::String(text) => Some(text.clone()),
        Value::Array(parts) => parts
            .iter()
            .map(|part| part.get("text").and_then(Value::as_str))
            .collect::<Option<Vec<_>>>()
            .map(|texts| texts.concat()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

/// Builds the response body for a finished generation.
pub fn response(
    endpoint: Endpoint,
    id: &str,
    model: &str,
    created: u64,
    generation: &Generation,
) -> Value {
    let choice = match endpoint {
        Endpoint::Chat => json!({
            "index": 0,
            "message": {"role": "assistant", "content": generation.text},
            "finish_reason": generation.finish_reason.as_str(),
        }),
        Endpoint::Completions => json!({
            "index": 0,
            "text": generation.text,
            "finish_reason": generation.finish_reason.as_str(),
        }),
    };
    json!({
        "id": id,
        "object": match endpoint {
            Endpoint::Chat => "chat.completion",
            Endpoint::Completions => "text_completion",
        },
        "created": created,
        "model": model,
        "choices": [choice],
        "usage": {
            "prompt_tokens": generation.prompt_tokens,
            "completion_tokens": generation.completion_tokens,
            "total_tokens": generation.prompt_tokens + generation.completion_tokens,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::FinishReason;

    #[test]
    fn reads_a_chat_request() {
        let body = json!({
            "model": "x",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]},
            ],
            "max_tokens": 20, "temperature": 0.5, "top_p": 0.9, "seed": 3, "stop": "\n",
            "unknown_field": true,
        });
        let request = parse_request(Endpoint::Chat, &body, 0).unwrap();
        assert_eq!(
            request.prompt,
            Prompt::Chat(vec![
                Message::new("system", "Be brief."),
                Message::new("user", "Hi there")
            ])
        );
        assert_eq!(request.max_tokens, 20);
        assert_eq!(request.sampling.seed, 3);
        assert_eq!(request.sampling.top_p, 0.9);
        assert_eq!(request.stop, vec!["\n".to_string()]);
    }

    #[test]
    fn names_the_bad_field() {
        let bad = [
            (json!({"messages": "hi"}), "messages"),
            (
                json!({"messages": [{"role": "user"}]}),
                "messages[0].content",
            ),
            (
                json!({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}),
                "max_tokens",
            ),
            (
                json!({"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}),
                "temperature",
            ),
            (
                json!({"messages": [{"role": "user", "content": "x"}], "top_p": 2}),
                "top_p",
            ),
            (
                json!({"messages": [{"role": "user", "content": "x"}], "n": 2}),
                "`n`",
            ),
        ];
        for (body, field) in bad {
            let error = parse_request(Endpoint::Chat, &body, 0).unwrap_err();
            assert!(error.contains(field), "{body}: {error}");
        }
    }

    #[test]
    fn writes_usage_and_finish_reason() {
        let generation = Generation {
            text: "Hello".into(),
            finish_reason: FinishReason::Length,
            prompt_tokens: 7,
            completion_tokens: 3,
        };
        let body = response(Endpoint::Completions, "cmpl-1", "m", 0, &generation);
        assert_eq!(body["choices"][0]["text"], "Hello");
        assert_eq!(body["choices"][0]["finish_reason"], "length");
        assert_eq!(body["usage"]["total_tokens"], 10);
    }
}
