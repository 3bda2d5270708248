//! Records: the unit that flows between stages and becomes one row of a shard.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The stable name of a record across runs: source document id, stage, variant and sample index.
///
/// Resume relies on it: a record whose key is already in a finished shard or in the
/// write-ahead journal is not produced again.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RecordKey {
    pub doc_id: String,
    pub stage: String,
    pub variant: String,
    pub sample: u32,
}

impl RecordKey {
    pub fn new(
        doc_id: impl Into<String>,
        stage: impl Into<String>,
        variant: impl Into<String>,
        sample: u32,
    ) -> Self {
        Self {
            doc_id: doc_id.into(),
            stage: stage.into(),
            variant: variant.into(),
            sample,
        }
    }

    /// Returns a 128-bit digest of the key, which the resume index stores instead of the text.
    pub fn digest(&self) -> u128 {
        digest_key_text(&self.to_string())
    }
}

/// Hashes the `key` column's text form; equal to [`RecordKey::digest`] for the same key.
pub fn digest_key_text(key: &str) -> u128 {
    let hash = Sha256::digest(key.as_bytes());
    let mut first = [0u8; 16];
    first.copy_from_slice(&hash[..16]);
    u128::from_le_bytes(first)
}

/// Returns the stage and variant of a key in its text form `doc_id/stage/variant/sample`, or
/// `None` for text of another form. The key is read from the right because document ids may
/// contain `/`.
pub fn stage_and_variant(key: &str) -> Option<(&str, &str)> {
    let mut parts = key.rsplitn(4, '/');
    let _sample = parts.next()?;
    let variant = parts.next()?;
    let stage = parts.next()?;
    parts.next()?;
    Some((stage, variant))
}

/// Formats as `doc_id/stage/variant/sample`. Stage and variant names never contain `/`, so
/// the form stays unambiguous when read from the right, whatever the document id holds.
impl fmt::Display for RecordKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}/{}",
            self.doc_id, self.stage, self.variant, self.sample
        )
    }
}

/// One value of a stage-specific column.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Cell {
    Null,
    Utf8(String),
    UInt32(u32),
    UInt64(u64),
    Int64(i64),
    Float64(f64),
    Boolean(bool),
}

/// A document, passage or generated text moving through the pipeline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub key: RecordKey,
    /// Dataset split the record is written to, such as `train`.
    pub split: String,
    /// Origin of the source document: file and line or record number.
    pub source: String,
    pub title: Option<String>,
    pub text: String,
    /// Values of the columns that the producing stage declares, by column name.
    pub fields: Vec<(String, Cell)>,
}

impl Record {
    /// Returns the value of the stage-specific column `name`, if the record carries it.
    pub fn field(&self, name: &str) -> Option<&Cell> {
        self.fields
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, cell)| cell)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_text_and_digest_agree() {
        let key = RecordKey::new("doc/with/slashes", "chunk", "passage", 3);
        assert_eq!(key.to_string(), "doc/with/slashes/chunk/passage/3");
        assert_eq!(
            key.digest(),
            digest_key_text("doc/with/slashes/chunk/passage/3")
        );
        assert_ne!(
            key.digest(),
            RecordKey::new("doc", "chunk", "passage", 4).digest()
        );
    }

    #[test]
    fn stage_and_variant_read_from_the_right() {
        let key = RecordKey::new("doc/with/slashes", "augment", "implications", 1);
        assert_eq!(
            stage_and_variant(&key.to_string()),
            Some(("augment", "implications"))
        );
        assert_eq!(stage_and_variant("no-slashes"), None);
        assert_eq!(stage_and_variant("stage/variant/0"), None);
    }
}
