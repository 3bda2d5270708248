//! `manifest.json`: the shards with their checksums, and how the data was made.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::sink::{FinishedShard, SinkStats};
use crate::stage::{Provenance, StageReport, Usage};

/// Version of the manifest layout; raised when a field changes meaning.
pub const MANIFEST_VERSION: u32 = 1;

/// One shard as listed in the manifest.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ShardEntry {
    pub split: String,
    /// Path relative to the output folder, such as `data/train-00000-of-00002.parquet`.
    pub path: String,
    pub rows: u64,
    pub bytes: u64,
    pub sha256: String,
}

/// Totals of one split.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SplitEntry {
    pub rows: u64,
    pub bytes: u64,
    pub shards: u32,
}

/// Summary of the input that was read.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InputSummary {
    pub path: String,
    pub format: String,
    pub documents: u64,
    pub rejected: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejects_file: Option<String>,
}

/// One column of the shards' schema.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ColumnEntry {
    pub name: String,
    pub dtype: String,
    pub description: String,
}

/// The whole manifest. It contains no secret, because the configuration is redacted first.
#[derive(Clone, Debug, Serialize)]
pub struct Manifest {
    pub manifest_version: u32,
    pub kenning_version: String,
    pub fingerprint: String,
    pub started_at: String,
    pub finished_at: String,
    /// Runs into this folder, the first one and every resume.
    pub attempts: u32,
    pub config: Value,
    pub input: InputSummary,
    /// Provenance of each stage, by stage name.
    pub provenance: BTreeMap<String, Provenance>,
    /// Counts of the last run's stages.
    pub stages: Vec<StageReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    pub sink: SinkStats,
    pub columns: Vec<ColumnEntry>,
    pub splits: BTreeMap<String, SplitEntry>,
    pub shards: Vec<ShardEntry>,
}

impl Manifest {
    pub fn total_rows(&self) -> u64 {
        self.shards.iter().map(|s| s.rows).sum()
    }

    pub fn total_bytes(&self) -> u64 {
        self.shards.iter().map(|s| s.bytes).sum()
    }
}

/// Converts finished shards into manifest entries and split totals.
pub fn shard_entries(
    out_dir: &Path,
    shards: &[FinishedShard],
) -> (Vec<ShardEntry>, BTreeMap<String, SplitEntry>) {
    let mut splits: BTreeMap<String, SplitEntry> = BTreeMap::new();
    let entries = shards
        .iter()
        .map(|shard| {
            let split = splits.entry(shard.split.clone()).or_default();
            split.rows += shard.rows;
            split.bytes += shard.bytes;
            split.shards += 1;

            let relative = shard.path.strip_prefix(out_dir).unwrap_or(&shard.path);
            ShardEntry {
                split: shard.split.clone(),
                path: relative.to_string_lossy().replace('\\', "/"),
                rows: shard.rows,
                bytes: shard.bytes,
                sha256: shard.sha256.clone(),
            }
        })
        .collect();
    (entries, splits)
}
