//! Removal of secrets from anything that is logged or written next to the data.

use serde_json::Value;

/// The text that replaces a secret value.
pub const REDACTED: &str = "[redacted]";

/// Returns whether a settings key names a secret, such as `api_key` or `Authorization`.
pub fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase().replace('-', "_");
    const NAMES: [&str; 7] = [
        "api_key",
        "apikey",
        "secret",
        "password",
        "authorization",
        "bearer",
        "access_token",
    ];
    NAMES.iter().any(|name| key.contains(name)) || key == "token" || key.ends_with("_token")
}

/// Returns whether a string value looks like an API key, whatever its key is named.
fn looks_like_secret(value: &str) -> bool {
    let value = value.trim();
    let bearer = value.len() > 7 && value[..7].eq_ignore_ascii_case("bearer ");
    bearer || (value.starts_with("sk-") && value.len() >= 20)
}

/// Replaces every secret in a JSON value with [`REDACTED`], in place.
pub fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                if is_secret_key(key) && !inner.is_null() {
                    *inner = Value::String(REDACTED.into());
                } else {
                    redact(inner);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        Value::String(text) if looks_like_secret(text) => *text = REDACTED.into(),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redact_hides_keys_and_bearer_values() {
        let mut config = json!({
            "provider": {
                "api_key": "sk-live-0123456789abcdefghij",
                "headers": {"Authorization": "Bearer abc", "X-Trace": "Bearer xyz"},
                "max_tokens": 512,
            },
            "note": "sk-0123456789abcdefghijkl",
            "tokenizer": "words",
        });
        redact(&mut config);
        let text = config.to_string();

        assert!(!text.contains("sk-live"), "{text}");
        assert!(!text.contains("abc"), "{text}");
        assert!(!text.contains("xyz"), "{text}");
        assert!(!text.contains("sk-0123"), "{text}");
        assert_eq!(config["provider"]["max_tokens"], 512);
        assert_eq!(config["tokenizer"], "words");
    }
}
