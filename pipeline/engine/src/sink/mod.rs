//! The shard sink: writes records into per-split shards, journals them, and recovers after a
//! crash.
//!
//! While a run is going on, complete shards sit in the staging folder
//! `.kenning/shards/{split}-{i:05}.parquet`; [`finalize`] moves them to their Hugging Face names
//! `data/{split}-{i:05}-of-{n:05}.parquet` once the number of shards is known.

mod batch;
pub mod finalize;
pub mod journal;
pub mod reader;
pub mod writer;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::record::{self, Cell, Record};
use crate::schema::{ColumnType, RecordSchema};
use crate::stage::{ColumnTotal, StoredTotals};
use journal::Journal;
pub use writer::{ColumnSettings, FinishedShard, ShardOptions, ShardWriter, UnsyncedShard};

/// Failure while writing, reading back or recovering shards.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Parquet error: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("Arrow error: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    #[error("record {key} carries field `{field}`, which its stage did not declare as a column")]
    UndeclaredField { key: String, field: String },
    #[error(
        "record {key}: field `{field}` must be {expected:?}{}, found {found}",
        if *nullable { " or null" } else { "" }
    )]
    FieldType {
        key: String,
        field: String,
        expected: ColumnType,
        nullable: bool,
        found: String,
    },
    #[error("record key {key} was produced twice in one run; keys must be unique")]
    DuplicateKey { key: String },
    #[error(
        "shard {path} does not match this run's schema: {detail}. Pass --restart to rewrite the output"
    )]
    SchemaMismatch { path: PathBuf, detail: String },
}

/// Outcome of [`ShardSink::write`] for one record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    Written,
    /// An earlier, interrupted run already stored this key.
    AlreadyDone,
}

/// Counts of one sink's work, for the run summary and the manifest.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SinkStats {
    /// Rows found in shards finished by earlier runs.
    pub resumed_rows: u64,
    /// Rows recovered from the write-ahead journal of an interrupted run.
    pub replayed_rows: u64,
    /// Records that a stage produced again and were skipped because an earlier run stored them.
    pub skipped_done: u64,
    /// Rows written by this run, replayed rows included.
    pub written_rows: u64,
}

struct SplitSink {
    writer: ShardWriter,
    journal: Journal,
}

/// Writes records of any split into shards, at most once per key across runs.
pub struct ShardSink {
    shards_dir: PathBuf,
    wal_dir: PathBuf,
    schema: RecordSchema,
    options: ShardOptions,
    splits: BTreeMap<String, SplitSink>,
    next_index: BTreeMap<String, u32>,
    finished: Vec<FinishedShard>,
    previous: Arc<HashSet<u128>>,
    current: HashSet<u128>,
    stats: SinkStats,
    /// The column to total for the rows of each stage, by stage name.
    totaled: BTreeMap<String, String>,
    /// Totals of the `totaled` columns over the rows of earlier runs, by stage and variant.
    totals: HashMap<(String, String), ColumnTotal>,
}

impl ShardSink {
    /// Opens the sink in `state_dir`, taking in the shards and journals of earlier runs.
    pub fn open(
        state_dir: &Path,
        schema: RecordSchema,
        options: ShardOptions,
    ) -> Result<Self, SinkError> {
        Self::open_with_totals(state_dir, schema, options, BTreeMap::new())
    }

    /// Opens the sink like [`ShardSink::open`], and also sums, for the rows of earlier runs, the
    /// integer column that `totaled` names for their stage, by stage and variant. A column
    /// that is not in the schema is not totaled.
    pub fn open_with_totals(
        state_dir: &Path,
        schema: RecordSchema,
        options: ShardOptions,
        totaled: BTreeMap<String, String>,
    ) -> Result<Self, SinkError> {
        let shards_dir = state_dir.join("shards");
        let wal_dir = state_dir.join("wal");
        let replay_dir = wal_dir.join("replay");
        for dir in [&shards_dir, &wal_dir, &replay_dir] {
            fs::create_dir_all(dir).map_err(|source| SinkError::Io {
                path: dir.clone(),
                source,
            })?;
        }

        let mut sink = Self {
            shards_dir,
            wal_dir,
            schema,
            options,
            splits: BTreeMap::new(),
            next_index: BTreeMap::new(),
            finished: Vec::new(),
            previous: Arc::new(HashSet::new()),
            current: HashSet::new(),
            stats: SinkStats::default(),
            totaled,
            totals: HashMap::new(),
        };
        sink.load_finished_shards()?;
        sink.replay_journals(&replay_dir)?;
        Ok(sink)
    }

    /// Returns whether a record with this key digest is already stored.
    pub fn contains(&self, digest: u128) -> bool {
        self.previous.contains(&digest) || self.current.contains(&digest)
    }

    /// Returns the key digests stored by earlier runs, for stages to skip finished work.
    pub fn previous_keys(&self) -> Arc<HashSet<u128>> {
        Arc::clone(&self.previous)
    }

    pub fn stats(&self) -> &SinkStats {
        &self.stats
    }

    /// Returns the totals of the rows that earlier runs stored (see [`ShardSink::open_with_totals`]).
    pub fn stored_totals(&self) -> StoredTotals {
        StoredTotals::new(self.totals.clone())
    }

    /// Stores one record unless an earlier run already did. Its journal line reaches the kernel
    /// before this returns.
    pub fn write(&mut self, record: &Record) -> Result<WriteOutcome, SinkError> {
        let outcome = self.admit(record)?;
        self.flush_journals()?;
        Ok(outcome)
    }

    /// Stores `records` as [`ShardSink::write`] stores one, then hands all their journal lines
    /// to the kernel in one write.
    pub fn write_batch(&mut self, records: &[Record]) -> Result<(), SinkError> {
        for record in records {
            self.admit(record)?;
        }
        self.flush_journals()
    }

    fn flush_journals(&mut self) -> Result<(), SinkError> {
        self.splits
            .values_mut()
            .try_for_each(|split| split.journal.flush())
    }

    fn admit(&mut self, record: &Record) -> Result<WriteOutcome, SinkError> {
        let digest = record.key.digest();
        if self.previous.contains(&digest) {
            self.stats.skipped_done += 1;
            return Ok(WriteOutcome::AlreadyDone);
        }
        if !self.current.insert(digest) {
            return Err(SinkError::DuplicateKey {
                key: record.key.to_string(),
            });
        }
        self.store(record)?;
        Ok(WriteOutcome::Written)
    }

    /// Completes every open shard and returns all finished shards, earlier runs' included.
    pub fn close(mut self) -> Result<Vec<FinishedShard>, SinkError> {
        for (_, split) in std::mem::take(&mut self.splits) {
            let SplitSink {
                writer,
                mut journal,
            } = split;
            let index = writer.current_index();
            if let Some(shard) = writer.finish()? {
                self.finished.push(shard);
            }
            journal.retire(index)?;
        }
        self.finished
            .sort_by(|a, b| (&a.split, a.index).cmp(&(&b.split, b.index)));
        Ok(self.finished)
    }

    fn store(&mut self, record: &Record) -> Result<(), SinkError> {
        let split = self.split_sink(&record.split)?;
        let index = split.writer.current_index();
        split.journal.buffer(index, record)?;
        let finished = split.writer.push(record)?;
        if let Some(shard) = finished {
            split.journal.retire(shard.index)?;
            self.finished.push(shard);
        }
        self.stats.written_rows += 1;
        Ok(())
    }

    fn split_sink(&mut self, split: &str) -> Result<&mut SplitSink, SinkError> {
        if !self.splits.contains_key(split) {
            let first_index = self.next_index.get(split).copied().unwrap_or(0);
            let writer = ShardWriter::new(
                &self.shards_dir,
                split,
                self.schema.clone(),
                self.options.clone(),
                first_index,
            )?;
            let journal = Journal::new(&self.wal_dir, split);
            self.splits
                .insert(split.to_string(), SplitSink { writer, journal });
        }
        Ok(self
            .splits
            .get_mut(split)
            .expect("split sink was just inserted"))
    }

    /// Indexes the keys of shards that earlier runs completed and removes half-written ones.
    fn load_finished_shards(&mut self) -> Result<(), SinkError> {
        for entry in read_dir_sorted(&self.shards_dir)? {
            let name = entry
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            if name.ends_with(".tmp") {
                tracing::info!(file = %entry.display(), "removing a shard that an interrupted run left half-written");
                fs::remove_file(&entry).map_err(|source| SinkError::Io {
                    path: entry.clone(),
                    source,
                })?;
                continue;
            }
            let Some((split, index)) = parse_staged_name(&name) else {
                continue;
            };

            let previous = Arc::get_mut(&mut self.previous)
                .expect("the key index is not shared while shards are loaded");
            let shard = reader::scan_shard(&entry, self.schema.arrow(), split, index, |digest| {
                previous.insert(digest);
            })?;
            self.stats.resumed_rows += shard.rows;
            self.total_shard(&entry)?;
            let next = self.next_index.entry(split.to_string()).or_insert(0);
            *next = (*next).max(index + 1);
            self.finished.push(shard);
        }
        Ok(())
    }

    /// Adds the `totaled` columns of a finished shard's rows to the totals.
    fn total_shard(&mut self, path: &Path) -> Result<(), SinkError> {
        for (stage, column) in &self.totaled {
            let Some(index) = self.schema.arrow().index_of(column).ok() else {
                continue;
            };
            reader::scan_column(path, index, |key, value| {
                if let Some((key_stage, variant)) = record::stage_and_variant(key)
                    && key_stage == stage.as_str()
                {
                    self.totals
                        .entry((stage.clone(), variant.to_string()))
                        .or_default()
                        .add(value);
                }
            })?;
        }
        Ok(())
    }

    /// Adds the `totaled` column of a replayed record to the totals.
    fn total_record(&mut self, record: &Record) {
        let Some(column) = self.totaled.get(&record.key.stage) else {
            return;
        };
        if self.schema.arrow().index_of(column).is_err() {
            return;
        }
        let value = match record.field(column) {
            Some(Cell::UInt32(value)) => Some(u64::from(*value)),
            Some(Cell::UInt64(value)) => Some(*value),
            _ => None,
        };
        self.totals
            .entry((record.key.stage.clone(), record.key.variant.clone()))
            .or_default()
            .add(value);
    }

    /// Writes the records of interrupted journals into new shards.
    ///
    /// Journals are first moved into `replay/`, so the new journals that this replay writes
    /// can take the same names. A crash during the replay leaves both kinds, and the next
    /// recovery reads both; keys seen twice are stored once.
    fn replay_journals(&mut self, replay_dir: &Path) -> Result<(), SinkError> {
        let mut moved = read_dir_sorted(replay_dir)?.len();
        for entry in read_dir_sorted(&self.wal_dir)? {
            if entry.extension().is_some_and(|ext| ext == "jsonl") {
                let target = replay_dir.join(format!("{moved:06}.jsonl"));
                fs::rename(&entry, &target).map_err(|source| SinkError::Io {
                    path: entry.clone(),
                    source,
                })?;
                moved += 1;
            }
        }

        let journals = read_dir_sorted(replay_dir)?;
        if journals.is_empty() {
            return Ok(());
        }
        for path in &journals {
            let (records, _) = journal::read_journal(path)?;
            for record in records {
                let digest = record.key.digest();
                if self.contains(digest) {
                    continue;
                }
                // Replayed rows count as done before this run, so that a stage producing
                // them again is skipped like any row of a finished shard.
                Arc::get_mut(&mut self.previous)
                    .expect("the key index is not shared while journals are replayed")
                    .insert(digest);
                self.total_record(&record);
                self.store(&record)?;
                self.stats.replayed_rows += 1;
            }
        }

        for split in self.splits.values_mut() {
            split.journal.sync()?;
        }
        for path in &journals {
            fs::remove_file(path).map_err(|source| SinkError::Io {
                path: path.clone(),
                source,
            })?;
        }
        tracing::info!(
            rows = self.stats.replayed_rows,
            "replayed the write-ahead journal of an interrupted run"
        );
        Ok(())
    }
}

/// Splits a staging file name `{split}-{index:05}.parquet` into its parts.
fn parse_staged_name(name: &str) -> Option<(&str, u32)> {
    let stem = name.strip_suffix(".parquet")?;
    let (split, index) = stem.rsplit_once('-')?;
    Some((split, index.parse().ok()?))
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>, SinkError> {
    let io_error = |source| SinkError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut paths = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_error)? {
        let path = entry.map_err(io_error)?.path();
        if path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths)
}
