//! Input and output settings shared by every pipeline, as they appear in a pipeline TOML file.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::bytesize::ByteSize;
use crate::sink::ShardOptions;
use crate::sink::writer::{
    DEFAULT_ROW_GROUP_BYTES, DEFAULT_ROW_GROUP_ROWS, DEFAULT_SHARD_BYTES, DEFAULT_ZSTD_LEVEL,
};

/// Default capacity of the bounded channel between two stages, in records.
pub const DEFAULT_CHANNEL_CAPACITY: usize = 256;

/// Layout of the input file or folder.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InputFormat {
    /// Chosen from the path: a folder is `text-dir`, `.jsonl`/`.ndjson` is `jsonl`,
    /// `.parquet` is `parquet`, and `.json` is `json` or `squad` depending on its content.
    #[default]
    Auto,
    /// One JSON object per line.
    Jsonl,
    /// A JSON array of objects, including the flattened SQuAD layout
    /// `[{title, context, questions}]`.
    Json,
    /// The official nested SQuAD v1.1/v2.0 layout `{version, data: [{title, paragraphs}]}`.
    Squad,
    /// A Parquet file with string columns.
    Parquet,
    /// A folder of `.txt` and `.md` files, read recursively.
    TextDir,
}

impl std::str::FromStr for InputFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "jsonl" => Ok(Self::Jsonl),
            "json" => Ok(Self::Json),
            "squad" => Ok(Self::Squad),
            "parquet" => Ok(Self::Parquet),
            "text-dir" => Ok(Self::TextDir),
            other => Err(format!(
                "unknown input format `{other}`: use auto, jsonl, json, squad, parquet or text-dir"
            )),
        }
    }
}

/// Input settings: the file or folder, its layout, and the fields with id, title and text.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputConfig {
    /// Input file or folder.
    pub path: PathBuf,
    #[serde(default)]
    pub format: InputFormat,
    /// Field with the document id; documents without one get a content-hash id.
    #[serde(default = "default_id_field")]
    pub id_field: String,
    /// Field with the title (optional in every document).
    #[serde(default = "default_title_field")]
    pub title_field: String,
    /// Field with the text. The SQuAD layouts read `context` unless this is set to another
    /// field than `text`.
    #[serde(default = "default_text_field")]
    pub text_field: String,
    /// Writes invalid records to `rejects.jsonl` with the reason instead of stopping the run.
    #[serde(default)]
    pub skip_invalid: bool,
    /// Reads at most this many valid documents, in input order.
    #[serde(default)]
    pub limit: Option<u64>,
}

fn default_id_field() -> String {
    "id".into()
}
fn default_title_field() -> String {
    "title".into()
}
fn default_text_field() -> String {
    "text".into()
}

impl InputConfig {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            format: InputFormat::Auto,
            id_field: default_id_field(),
            title_field: default_title_field(),
            text_field: default_text_field(),
            skip_invalid: false,
            limit: None,
        }
    }
}

/// Output settings: the folder and the limits and compression of the shards.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// Output folder; shards go to `data/` inside it.
    pub dir: PathBuf,
    /// Split name for records whose stage does not choose one.
    #[serde(default = "default_split")]
    pub split: String,
    /// License identifier written into the dataset card, such as `cc-by-sa-4.0`.
    #[serde(default = "default_license")]
    pub license: String,
    /// A shard is closed once its size reaches this many bytes.
    #[serde(default = "default_shard_bytes")]
    pub shard_bytes: ByteSize,
    /// Maximum rows in one Parquet row group.
    #[serde(default = "default_row_group_rows")]
    pub row_group_rows: usize,
    /// Maximum encoded bytes of one Parquet row group.
    #[serde(default = "default_row_group_bytes")]
    pub row_group_bytes: ByteSize,
    /// zstd compression level, 1 to 22.
    #[serde(default = "default_zstd_level")]
    pub zstd_level: i32,
    /// Records buffered between two stages.
    #[serde(default = "default_channel_capacity")]
    pub channel_capacity: usize,
}

fn default_split() -> String {
    "train".into()
}
fn default_license() -> String {
    "other".into()
}
fn default_shard_bytes() -> ByteSize {
    DEFAULT_SHARD_BYTES
}
fn default_row_group_rows() -> usize {
    DEFAULT_ROW_GROUP_ROWS
}
fn default_row_group_bytes() -> ByteSize {
    DEFAULT_ROW_GROUP_BYTES
}
fn default_zstd_level() -> i32 {
    DEFAULT_ZSTD_LEVEL
}
fn default_channel_capacity() -> usize {
    DEFAULT_CHANNEL_CAPACITY
}

impl OutputConfig {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            split: default_split(),
            license: default_license(),
            shard_bytes: DEFAULT_SHARD_BYTES,
            row_group_rows: DEFAULT_ROW_GROUP_ROWS,
            row_group_bytes: DEFAULT_ROW_GROUP_BYTES,
            zstd_level: DEFAULT_ZSTD_LEVEL,
            channel_capacity: DEFAULT_CHANNEL_CAPACITY,
        }
    }

    pub fn shard_options(&self) -> ShardOptions {
        ShardOptions {
            shard_bytes: self.shard_bytes,
            row_group_rows: self.row_group_rows,
            row_group_bytes: self.row_group_bytes,
            zstd_level: self.zstd_level,
        }
    }

    /// Checks every value without touching the file system.
    pub fn validate(&self) -> Result<(), String> {
        let split_ok = !self.split.is_empty()
            && self
                .split
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !split_ok {
            return Err(format!(
                "output.split `{}` is invalid: use letters, digits and `_` (for example `train`)",
                self.split
            ));
        }
        if self.license.trim().is_empty() {
            return Err(
                "output.license is empty: give a license id such as `cc-by-4.0` or `other`".into(),
            );
        }
        if self.channel_capacity == 0 {
            return Err("output.channel_capacity must be at least 1".into());
        }
        self.shard_options()
            .validate()
            .map_err(|e| format!("output.{e}"))
    }
}
