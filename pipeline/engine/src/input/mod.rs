//! Input readers: JSONL, JSON arrays (flattened SQuAD included), nested SQuAD, Parquet and
//! folders of text files, all yielding validated [`Document`]s.
//!
//! Problems with one record (invalid JSON, a missing field, empty text, a NUL character, a
//! duplicate id, ...) are reported as [`Problem`]s that name the file, the line or record, and
//! the fix. Problems that make the whole input unusable are [`InputError`]s.

mod checks;
mod fields;
mod json;
mod jsonl;
mod parquet_file;
mod text_dir;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::{InputConfig, InputFormat};
pub use checks::{Documents, Item, content_id};

/// A source document that passed every check.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    pub id: String,
    pub title: Option<String>,
    pub text: String,
    pub origin: Origin,
}

/// The position of a record in its input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Location {
    /// A whole file, as in a folder of text files.
    File,
    /// 1-based line of a JSONL file.
    Line(u64),
    /// 1-based element of a JSON array.
    Record(u64),
    /// 1-based row of a Parquet file.
    Row(u64),
    /// 1-based article and paragraph of a nested SQuAD file.
    Paragraph { article: u64, paragraph: u64 },
}

/// The file and location a document or problem came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Origin {
    pub file: PathBuf,
    pub location: Location,
}

impl Origin {
    pub fn new(file: &Path, location: Location) -> Self {
        Self {
            file: file.to_path_buf(),
            location,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.display();
        match &self.location {
            Location::File => write!(f, "{file}"),
            Location::Line(line) => write!(f, "{file}:{line}"),
            Location::Record(record) => write!(f, "{file}: record {record}"),
            Location::Row(row) => write!(f, "{file}: row {row}"),
            Location::Paragraph { article, paragraph } => {
                write!(f, "{file}: article {article}, paragraph {paragraph}")
            }
        }
    }
}

/// One invalid record: where it is, what is wrong and how to fix it, and its raw content so
/// that a rejects file loses nothing.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Problem {
    pub origin: Origin,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.origin, self.reason)
    }
}

/// A fault that makes the whole input unusable.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("input not found: {path}. Check the --input path")]
    NotFound { path: PathBuf },
    #[error("input file {path} is empty (zero length). Give a file that contains documents")]
    Empty { path: PathBuf },
    #[error("input {path} contains no documents. Give a file that contains at least one record")]
    NoDocuments { path: PathBuf },
    #[error("folder {path} contains no .txt or .md files. Point --input at a folder of text files")]
    NoTextFiles { path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Json {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    Layout { path: PathBuf, message: String },
    #[error("{path}: invalid Parquet file: {source}")]
    Parquet {
        path: PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },
    #[error("{path}: input format `{format}` needs a file, but this is a folder")]
    NotAFile { path: PathBuf, format: &'static str },
}

/// Item of a format reader, before the common checks.
#[derive(Debug)]
pub(crate) enum Entry {
    Doc(RawDocument),
    Problem(Problem),
}

/// A record as read, before the common checks (empty text, NUL characters, duplicates).
#[derive(Debug)]
pub(crate) struct RawDocument {
    pub id: Option<String>,
    pub title: Option<String>,
    pub text: String,
    pub origin: Origin,
    /// The record as it appears in the input, kept for the rejects file.
    pub raw: Option<String>,
}

pub(crate) type EntryIter = Box<dyn Iterator<Item = Result<Entry, InputError>> + Send>;

/// Field names to read, taken from the input settings.
#[derive(Clone, Debug)]
pub(crate) struct FieldNames {
    pub id: String,
    pub title: String,
    pub text: String,
}

/// Resolves `auto` to a concrete format by looking at the path and, for `.json`, the content.
pub fn detect_format(config: &InputConfig) -> Result<InputFormat, InputError> {
    let path = &config.path;
    if !path.exists() {
        return Err(InputError::NotFound { path: path.clone() });
    }
    if config.format != InputFormat::Auto {
        return Ok(config.format);
    }
    if path.is_dir() {
        // A folder of Parquet shards, such as OUT/data/bios of `kenning bios`, reads as Parquet.
        if !parquet_file::files_in(path)?.is_empty() {
            return Ok(InputFormat::Parquet);
        }
        return Ok(InputFormat::TextDir);
    }

    let extension = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "jsonl" | "ndjson" => Ok(InputFormat::Jsonl),
        "parquet" => Ok(InputFormat::Parquet),
        "json" => json::detect_json_layout(path),
        _ => Err(InputError::Layout {
            path: path.clone(),
            message: format!(
                "cannot tell the input format from the extension `.{extension}`. \
                 Set --format (jsonl, json, squad, parquet or text-dir)"
            ),
        }),
    }
}

/// Opens the input and returns its documents, checked and deduplicated.
pub fn open(config: &InputConfig) -> Result<Documents, InputError> {
    let format = detect_format(config)?;
    let path = config.path.clone();
    let names = FieldNames {
        id: config.id_field.clone(),
        title: config.title_field.clone(),
        text: config.text_field.clone(),
    };

    if !matches!(format, InputFormat::TextDir | InputFormat::Parquet) && path.is_dir() {
        let format = match format {
            InputFormat::Jsonl => "jsonl",
            InputFormat::Json => "json",
            _ => "squad",
        };
        return Err(InputError::NotAFile { path, format });
    }

    let entries: EntryIter = match format {
        InputFormat::Jsonl => jsonl::read(&path, names)?,
        InputFormat::Json | InputFormat::Squad => json::read(&path, names)?,
        InputFormat::Parquet if path.is_dir() => parquet_file::read_folder(&path, names)?,
        InputFormat::Parquet => parquet_file::read(&path, names)?,
        InputFormat::TextDir => text_dir::read(&path)?,
        InputFormat::Auto => unreachable!("detect_format resolves auto"),
    };
    Ok(Documents::new(path, entries, config.limit))
}
