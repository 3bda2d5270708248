//! JSON input: an array of objects (the flattened SQuAD layout included), or the official
//! nested SQuAD layout `{version, data: [{title, paragraphs: [{context, qas}]}]}`.
//!
//! The whole file is parsed at once, so its size is bounded by memory.

use std::path::Path;

use serde_json::{Map, Value};

use super::fields::{self, describe_json_error};
use super::jsonl::BOM;
use super::{Entry, EntryIter, FieldNames, InputError, Location, Origin, Problem};
use crate::config::InputFormat;

/// The field the SQuAD layouts keep passages in.
const SQUAD_TEXT: &str = "context";

fn load(path: &Path) -> Result<Value, InputError> {
    let bytes = std::fs::read(path).map_err(|source| InputError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if bytes.is_empty() {
        return Err(InputError::Empty {
            path: path.to_path_buf(),
        });
    }
    if bytes.starts_with(BOM) {
        return Err(InputError::Layout {
            path: path.to_path_buf(),
            message: "the file starts with a UTF-8 byte order mark (BOM). Save it as UTF-8 \
                      without a BOM, for example with `sed -i '1s/^\\xEF\\xBB\\xBF//' FILE`"
                .to_string(),
        });
    }
    serde_json::from_slice(&bytes).map_err(|error| {
        let message = if error.to_string().contains("invalid unicode code point") {
            "invalid UTF-8. Re-encode the file as UTF-8".to_string()
        } else {
            describe_json_error(&error)
        };
        InputError::Json {
            path: path.to_path_buf(),
            line: error.line(),
            column: error.column(),
            message,
        }
    })
}

/// Tells a JSON array from a nested SQuAD file by parsing it.
pub fn detect_json_layout(path: &Path) -> Result<InputFormat, InputError> {
    match load(path)? {
        Value::Object(object) if object.contains_key("data") => Ok(InputFormat::Squad),
        _ => Ok(InputFormat::Json),
    }
}

pub fn read(path: &Path, names: FieldNames) -> Result<EntryIter, InputError> {
    let entries = match load(path)? {
        Value::Array(items) => read_array(path, items, &names),
        Value::Object(object) if object.contains_key("data") => read_squad(path, object, &names)?,
        other => {
            return Err(InputError::Layout {
                path: path.to_path_buf(),
                message: format!(
                    "the file holds {}, expected a JSON array of objects or a SQuAD file \
                     with a `data` list",
                    fields::kind(&other)
                ),
            });
        }
    };
    Ok(Box::new(entries.into_iter().map(Ok)))
}

fn read_array(path: &Path, items: Vec<Value>, names: &FieldNames) -> Vec<Entry> {
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let origin = Origin::new(path, Location::Record(i as u64 + 1));
            let result = match &item {
                Value::Object(object) => {
                    fields::from_object(object, names, Some(SQUAD_TEXT), origin.clone())
                }
                other => Err(format!(
                    "the record is {}, expected a JSON object",
                    fields::kind(other)
                )),
            };
            to_entry(result, origin, &item)
        })
        .collect()
}

fn read_squad(
    path: &Path,
    mut root: Map<String, Value>,
    names: &FieldNames,
) -> Result<Vec<Entry>, InputError> {
    let Some(Value::Array(articles)) = root.remove("data") else {
        return Err(InputError::Layout {
            path: path.to_path_buf(),
            message: "field `data` must be a list of articles, as in SQuAD v1.1 and v2.0".into(),
        });
    };

    let mut entries = Vec::new();
    for (a, article) in articles.iter().enumerate() {
        let article_number = a as u64 + 1;
        let title = article.get("title").and_then(Value::as_str);
        let Some(paragraphs) = article.get("paragraphs").and_then(Value::as_array) else {
            let origin = Origin::new(
                path,
                Location::Paragraph {
                    article: article_number,
                    paragraph: 0,
                },
            );
            entries.push(Entry::Problem(Problem {
                origin,
                reason: "the article has no `paragraphs` list, as SQuAD articles must".into(),
                raw: Some(article.to_string()),
            }));
            continue;
        };

        for (p, paragraph) in paragraphs.iter().enumerate() {
            let origin = Origin::new(
                path,
                Location::Paragraph {
                    article: article_number,
                    paragraph: p as u64 + 1,
                },
            );
            let result = match paragraph {
                Value::Object(object) => {
                    let mut object = object.clone();
                    if let (Some(title), false) = (title, object.contains_key(&names.title)) {
                        object.insert(names.title.clone(), Value::String(title.to_string()));
                    }
                    fields::from_object(&object, names, Some(SQUAD_TEXT), origin.clone())
                }
                other => Err(format!(
                    "the paragraph is {}, expected a JSON object",
                    fields::kind(other)
                )),
            };
            entries.push(to_entry(result, origin, paragraph));
        }
    }
    Ok(entries)
}

fn to_entry(result: Result<super::RawDocument, String>, origin: Origin, item: &Value) -> Entry {
    match result {
        Ok(mut doc) => {
            doc.raw = Some(item.to_string());
            Entry::Doc(doc)
        }
        Err(reason) => Entry::Problem(Problem {
            origin,
            reason,
            raw: Some(item.to_string()),
        }),
    }
}
