//! Request keys: a hash of the canonical request and a cache version, stored with every row and
//! every failure.

use std::io::Write;

use serde_json::Value;
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
    let mut hash = HashWriter(Sha256::new());
    write_canonical(&mut hash, model, endpoint, body, sample).expect("hashing cannot fail");
    hex::encode(hash.0.finalize())
}

/// Writes the bytes that `serde_json` writes for the object {cache_version, endpoint, model,
/// request, sample}, keys in sorted order, without building that object.
fn write_canonical(
    out: &mut impl Write,
    model: &str,
    endpoint: &str,
    body: &Value,
    sample: u32,
) -> std::io::Result<()> {
    write!(out, "{{\"cache_version\":{CACHE_VERSION},\"endpoint\":")?;
    serde_json::to_writer(&mut *out, endpoint)?;
    out.write_all(b",\"model\":")?;
    serde_json::to_writer(&mut *out, model)?;
    out.write_all(b",\"request\":")?;
    serde_json::to_writer(&mut *out, body)?;
    write!(out, ",\"sample\":{sample}}}")
}

/// Feeds written bytes to a SHA-256.
struct HashWriter(Sha256);

impl Write for HashWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn key_hashes_the_canonical_object() {
        // Keys of earlier releases were the hash of this object; they must stay the same so
        // that existing output folders resume.
        let body = json!({"messages": [{"role": "user", "content": "Say \"hi\" {x}"}], "seed": 7});
        let canonical = json!({
            "cache_version": CACHE_VERSION,
            "model": "m\u{e9}",
            "endpoint": "chat",
            "request": body,
            "sample": 3,
        });
        let expected = hex::encode(Sha256::digest(serde_json::to_vec(&canonical).unwrap()));
        assert_eq!(request_key("m\u{e9}", Endpoint::Chat, &body, 3), expected);
    }

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
