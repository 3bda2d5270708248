//! Reads the id, title and text fields of a JSON object.

use serde_json::{Map, Value};

use super::{FieldNames, Origin, RawDocument};

/// Returns the JSON type name of a value, for error messages.
pub fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Builds a raw document from `object`, or returns the reason it cannot be read.
///
/// `text_fallback` names a field read when the configured text field is absent, as
/// `context` is for the SQuAD layouts.
pub fn from_object(
    object: &Map<String, Value>,
    names: &FieldNames,
    text_fallback: Option<&str>,
    origin: Origin,
) -> Result<RawDocument, String> {
    let text_field = match (object.contains_key(&names.text), text_fallback) {
        (false, Some(fallback)) if names.text == "text" && object.contains_key(fallback) => {
            fallback
        }
        _ => names.text.as_str(),
    };
    let text = match object.get(text_field) {
        Some(Value::String(text)) => text.clone(),
        Some(other) => {
            return Err(format!(
                "field `{text_field}` is {}, expected a string. Store the text as a JSON string",
                kind(other)
            ));
        }
        None => {
            let present: Vec<&str> = object.keys().map(String::as_str).collect();
            return Err(format!(
                "missing field `{text_field}` (fields present: {}). Add it, or set --text-field \
                 (input.text_field) to the field that holds the text",
                if present.is_empty() {
                    "none".to_string()
                } else {
                    present.join(", ")
                }
            ));
        }
    };

    let id = match object.get(&names.id) {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) => Some(id.clone()),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        Some(other) => {
            return Err(format!(
                "field `{}` is {}, expected a string or an integer. Fix the id, or remove it \
                 to get a content-hash id",
                names.id,
                kind(other)
            ));
        }
    };

    let title = match object.get(&names.title) {
        None | Some(Value::Null) => None,
        Some(Value::String(title)) => Some(title.clone()),
        Some(other) => {
            return Err(format!(
                "field `{}` is {}, expected a string or null. Store the title as a JSON \
                 string, or remove it",
                names.title,
                kind(other)
            ));
        }
    };

    Ok(RawDocument {
        id,
        title,
        text,
        origin,
        raw: None,
    })
}

/// Rewrites a serde_json parse error into a message with the fix.
pub fn describe_json_error(error: &serde_json::Error) -> String {
    let message = error.to_string();
    // serde_json 1.0.154 reports a leading surrogate that no `\u` escape follows as
    // "unexpected end of hex escape", and other unpaired surrogates as "lone leading surrogate".
    if message.contains("surrogate") || message.contains("unexpected end of hex escape") {
        return format!(
            "contains a lone UTF-16 surrogate escape such as \\ud800 (column {}), which is not \
             valid Unicode. Replace it with the intended character or remove it",
            error.column()
        );
    }
    let detail = message
        .rsplit_once(" at line ")
        .map_or(message.as_str(), |(head, _)| head);
    format!(
        "invalid JSON at column {}: {detail}. Fix the syntax of this record",
        error.column()
    )
}
