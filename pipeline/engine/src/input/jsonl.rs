//! JSONL input: one JSON object per line.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::fields::{self, describe_json_error};
use super::{Entry, EntryIter, FieldNames, InputError, Location, Origin, Problem};

/// The UTF-8 encoding of U+FEFF, which some editors put at the start of a file.
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

pub fn read(path: &Path, names: FieldNames) -> Result<EntryIter, InputError> {
    let file = File::open(path).map_err(|source| InputError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let length = file.metadata().map(|m| m.len()).unwrap_or(0);
    if length == 0 {
        return Err(InputError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(Box::new(JsonlEntries {
        path: path.to_path_buf(),
        reader: BufReader::new(file),
        names,
        line: 0,
        buffer: Vec::new(),
        failed: false,
    }))
}

struct JsonlEntries {
    path: PathBuf,
    reader: BufReader<File>,
    names: FieldNames,
    line: u64,
    buffer: Vec<u8>,
    failed: bool,
}

impl Iterator for JsonlEntries {
    type Item = Result<Entry, InputError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.failed {
                return None;
            }
            self.buffer.clear();
            match self.reader.read_until(b'\n', &mut self.buffer) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(source) => {
                    self.failed = true;
                    return Some(Err(InputError::Io {
                        path: self.path.clone(),
                        source,
                    }));
                }
            }
            self.line += 1;

            let mut bytes = self.buffer.as_slice();
            while let [rest @ .., b'\n' | b'\r'] = bytes {
                bytes = rest;
            }
            if bytes.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Some(Ok(self.parse_line(bytes)));
        }
    }
}

impl JsonlEntries {
    fn parse_line(&self, bytes: &[u8]) -> Entry {
        let origin = Origin::new(&self.path, Location::Line(self.line));
        let problem = |reason: String| {
            Entry::Problem(Problem {
                origin: origin.clone(),
                reason,
                raw: Some(String::from_utf8_lossy(bytes).into_owned()),
            })
        };

        if self.line == 1 && bytes.starts_with(BOM) {
            return problem(
                "the file starts with a UTF-8 byte order mark (BOM). Save it as UTF-8 without a \
                 BOM, for example with `sed -i '1s/^\\xEF\\xBB\\xBF//' FILE`"
                    .to_string(),
            );
        }
        // serde_json would report a raw NUL byte as a control character in a string, or as a
        // syntax error outside one, so it is named here first.
        if let Some(offset) = bytes.iter().position(|&b| b == 0) {
            return problem(format!(
                "contains a NUL byte (0x00) at byte {} of the line. Remove it, because NUL is \
                 never valid in text",
                offset + 1
            ));
        }
        let text = match std::str::from_utf8(bytes) {
            Ok(text) => text,
            Err(error) => {
                return problem(format!(
                    "invalid UTF-8 at byte {} of the line. Re-encode the file as UTF-8",
                    error.valid_up_to() + 1
                ));
            }
        };
        let value: Value = match serde_json::from_str(text) {
            Ok(value) => value,
            Err(error) => return problem(describe_json_error(&error)),
        };
        let Value::Object(object) = &value else {
            return problem(format!(
                "the line holds {}, expected a JSON object such as {{\"id\": \"...\", \"text\": \"...\"}}",
                fields::kind(&value)
            ));
        };

        match fields::from_object(object, &self.names, None, origin.clone()) {
            Ok(mut doc) => {
                doc.raw = Some(text.to_string());
                Entry::Doc(doc)
            }
            Err(reason) => problem(reason),
        }
    }
}
