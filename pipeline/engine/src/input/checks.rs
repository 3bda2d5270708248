//! Checks every format shares: non-empty text, no NUL characters, a usable id, unique ids.

use std::collections::HashMap;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use super::{Document, Entry, EntryIter, InputError, Problem, RawDocument};

/// One item of the input: a valid document or a rejected record.
#[derive(Debug)]
pub enum Item {
    Valid(Document),
    Rejected(Problem),
}

/// The checked documents of one input, in input order.
pub struct Documents {
    path: PathBuf,
    entries: EntryIter,
    limit: Option<u64>,
    seen: HashMap<String, String>,
    valid: u64,
    entries_read: u64,
    finished: bool,
}

impl Documents {
    pub(crate) fn new(path: PathBuf, entries: EntryIter, limit: Option<u64>) -> Self {
        Self {
            path,
            entries,
            limit,
            seen: HashMap::new(),
            valid: 0,
            entries_read: 0,
            finished: false,
        }
    }

    fn check(&mut self, raw: RawDocument) -> Item {
        let reject = |raw: &RawDocument, reason: String| {
            Item::Rejected(Problem {
                origin: raw.origin.clone(),
                reason,
                raw: raw.raw.clone(),
            })
        };

        if raw.id.as_deref().is_some_and(|id| id.trim().is_empty()) {
            return reject(
                &raw,
                "the id is empty. Give a non-empty id, or remove the id field to get a \
                 content-hash id"
                    .into(),
            );
        }
        if raw.text.trim().is_empty() {
            return reject(
                &raw,
                "the text is empty. Add text or remove the record".into(),
            );
        }
        let fields = [
            ("text", Some(raw.text.as_str())),
            ("title", raw.title.as_deref()),
            ("id", raw.id.as_deref()),
        ];
        for (name, value) in fields {
            if let Some(offset) = value.and_then(|v| v.find('\0')) {
                let value = value.expect("offset implies a value");
                let character = value[..offset].chars().count() + 1;
                return reject(
                    &raw,
                    format!(
                        "the {name} contains a NUL character (U+0000) at character {character}. \
                         Remove it; NUL is never valid in text"
                    ),
                );
            }
        }

        let (id, hashed) = match &raw.id {
            Some(id) => (id.clone(), false),
            None => (content_id(raw.title.as_deref(), &raw.text), true),
        };
        let origin = raw.origin.to_string();
        if let Some(first) = self.seen.get(&id) {
            let reason = if hashed {
                format!("the same title and text already appear at {first}. Remove the duplicate")
            } else {
                format!(
                    "id `{id}` is already used at {first}. Ids must be unique: fix the id, or \
                     remove the id field to get content-hash ids"
                )
            };
            return reject(&raw, reason);
        }
        self.seen.insert(id.clone(), origin);

        Item::Valid(Document {
            id,
            title: raw.title,
            text: raw.text,
            origin: raw.origin,
        })
    }
}

/// Returns the id of a document that has none: the first 16 hex digits of the SHA-256 of its
/// title and text.
pub fn content_id(title: Option<&str>, text: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(title.unwrap_or("").as_bytes());
    hasher.update([0u8]);
    hasher.update(text.as_bytes());
    hex::encode(&hasher.finalize()[..8])
}

impl Iterator for Documents {
    type Item = Result<Item, InputError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        if self.limit.is_some_and(|limit| self.valid >= limit) {
            self.finished = true;
            return None;
        }

        let Some(entry) = self.entries.next() else {
            self.finished = true;
            if self.entries_read == 0 {
                return Some(Err(InputError::NoDocuments {
                    path: self.path.clone(),
                }));
            }
            return None;
        };
        self.entries_read += 1;

        let item = match entry {
            Ok(Entry::Doc(raw)) => self.check(raw),
            Ok(Entry::Problem(problem)) => Item::Rejected(problem),
            Err(error) => {
                self.finished = true;
                return Some(Err(error));
            }
        };
        if matches!(item, Item::Valid(_)) {
            self.valid += 1;
        }
        Some(Ok(item))
    }
}
