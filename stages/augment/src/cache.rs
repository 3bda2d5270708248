//! Request keys: a hash of the canonical request and a cache version, stored with every row and
//! every failure.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::outcome::Endpoint;

/// Version of the request key. Raise it when the same request should no longer match rows
/// made by an earlier release (for example after a change in how responses are read). It is part
/// of the recorded configuration, so a raised version makes an existing output folder refuse to
/// resume instead of mixing old and new rows.
pub const CACHE_VERSION: u32 = 1;

/// Returns the hex SHA-256 of the canonical request: cache version, model, endpoint, the
/// request body (messages or prompt, and the sampling parameters) and the sample index.
///
/// The body is serialized with sorted object keys, so the same request always gives the same
/// key, whatever order its fields were set in.
pub fn request_key(model: &str, endpoint: Endpoint, body: &Value, sample: u32) -> String {
    let endpoint = match endpoint {
        Endpoint::Chat => "chat",
        Endpoint::Completions => "completions",
    };
    let canonical = json!({
        "cache_version": CACHE_VERSION,
        "model": model,
        "endpoint": endpoint,
        "request": body,
        "sample": sample,
    });
    let bytes = serde_json::to_vec(&canonical).expect("a JSON value always serializes");
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ignores_field_order() {
        let a: Value = serde_json::from_str(r#"{"max_tokens": 5, "prompt": "x"}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"prompt": "x", "max_tokens": 5}"#).unwrap();
        assert_eq!(
            request_key("m", Endpoint::Completions, &a, 0),
            request_key("m", Endpoint::Completions, &b, 0)
        );
    }

    #[test]
    fn key_changes_with_each_part() {
        let body = json!({"prompt": "x"});
        let base = request_key("m", Endpoint::Completions, &body, 0);
        assert_ne!(base, request_key("n", Endpoint::Completions, &body, 0));
        assert_ne!(base, request_key("m", Endpoint::Chat, &body, 0));
        assert_ne!(base, request_key("m", Endpoint::Completions, &body, 1));
        assert_ne!(
            base,
            request_key("m", Endpoint::Completions, &json!({"prompt": "y"}), 0)
        );
    }
}
