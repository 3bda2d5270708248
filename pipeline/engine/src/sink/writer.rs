//! One split's shard writer: zstd Parquet files rolled by size, each written to a temporary
//! name, fsynced and renamed when it is complete.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::SinkError;
use super::batch::BatchBuilder;
use crate::bytesize::ByteSize;
use crate::fsutil;
use crate::record::Record;
use crate::schema::RecordSchema;

/// Default size at which a shard is closed and the next one started.
pub const DEFAULT_SHARD_BYTES: ByteSize = ByteSize::mib(256);
/// Default maximum rows in one Parquet row group.
pub const DEFAULT_ROW_GROUP_ROWS: usize = 100_000;
/// Default maximum encoded bytes of one Parquet row group.
pub const DEFAULT_ROW_GROUP_BYTES: ByteSize = ByteSize::mib(64);
/// Default zstd level: level 3 is zstd's own default and the usual speed/size trade-off.
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

/// Rows buffered before they are handed to the Parquet writer as one record batch.
const BATCH_ROWS: usize = 4096;
/// Buffered string bytes that also cut a record batch, so long texts do not pile up.
const BATCH_BYTES: usize = 8 << 20;

/// Size limits and compression for shards.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShardOptions {
    pub shard_bytes: ByteSize,
    pub row_group_rows: usize,
    pub row_group_bytes: ByteSize,
    pub zstd_level: i32,
}

impl Default for ShardOptions {
    fn default() -> Self {
        Self {
            shard_bytes: DEFAULT_SHARD_BYTES,
            row_group_rows: DEFAULT_ROW_GROUP_ROWS,
            row_group_bytes: DEFAULT_ROW_GROUP_BYTES,
            zstd_level: DEFAULT_ZSTD_LEVEL,
        }
    }
}

impl ShardOptions {
    /// Checks the limits without touching the file system.
    pub fn validate(&self) -> Result<(), String> {
        if self.shard_bytes.as_u64() == 0 {
            return Err("shard_bytes must be greater than 0".into());
        }
        if self.row_group_rows == 0 {
            return Err("row_group_rows must be greater than 0".into());
        }
        if self.row_group_bytes.as_u64() == 0 {
            return Err("row_group_bytes must be greater than 0".into());
        }
        ZstdLevel::try_new(self.zstd_level)
            .map_err(|_| format!("zstd_level {} is invalid: use 1 to 22", self.zstd_level))?;
        Ok(())
    }

    /// Builds the Parquet writer settings, with the per-column settings of `columns`.
    fn writer_properties(
        &self,
        columns: &ColumnSettings<'_>,
    ) -> Result<WriterProperties, SinkError> {
        let level = ZstdLevel::try_new(self.zstd_level)?;
        let mut builder = WriterProperties::builder()
            .set_compression(Compression::ZSTD(level))
            .set_max_row_group_row_count(Some(self.row_group_rows))
            .set_max_row_group_bytes(Some(self.row_group_bytes.as_u64() as usize))
            .set_created_by(format!("kenning {}", env!("CARGO_PKG_VERSION")));
        for column in columns.plain {
            builder = builder.set_column_dictionary_enabled(ColumnPath::from(*column), false);
        }
        for column in columns.delta {
            builder = builder
                .set_column_dictionary_enabled(ColumnPath::from(*column), false)
                .set_column_encoding(ColumnPath::from(*column), Encoding::DELTA_BYTE_ARRAY);
        }
        for column in columns.no_statistics {
            builder = builder
                .set_column_statistics_enabled(ColumnPath::from(*column), EnabledStatistics::None);
        }
        Ok(builder.build())
    }
}

/// Parquet settings of some columns of a table, by column name. A column that no list names
/// keeps the Parquet writer's defaults: dictionary encoding and min/max statistics per page.
#[derive(Clone, Copy, Debug, Default)]
pub struct ColumnSettings<'a> {
    /// Columns whose values rarely repeat, written with plain encoding. For them a dictionary
    /// only costs time, and the writer drops it anyway once it grows past its page limit.
    pub plain: &'a [&'a str],
    /// Byte-array columns whose neighbouring values share long prefixes, such as sorted keys,
    /// written with DELTA_BYTE_ARRAY: each value is stored as the length of the prefix it
    /// shares with the previous value plus the rest, so zstd gets far fewer bytes.
    pub delta: &'a [&'a str],
    /// Columns written without min/max statistics. Comparing every value costs time, and for
    /// long texts or shuffled keys the bounds never let a reader skip a page or row group.
    pub no_statistics: &'a [&'a str],
}

/// A complete shard in the staging folder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FinishedShard {
    pub split: String,
    pub index: u32,
    pub path: PathBuf,
    pub rows: u64,
    pub bytes: u64,
    pub sha256: String,
}

/// Returns the staging file name of shard `index` of `split`.
pub fn staged_name(split: &str, index: u32) -> String {
    format!("{split}-{index:05}.parquet")
}

/// A file that hashes and counts what is written to it.
struct HashingFile {
    file: File,
    hasher: Sha256,
    bytes: u64,
}

impl Write for HashingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.file.write(buf)?;
        self.hasher.update(&buf[..written]);
        self.bytes += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

struct OpenShard {
    index: u32,
    tmp_path: PathBuf,
    writer: ArrowWriter<HashingFile>,
    rows: u64,
}

/// Writes one split's records, or record batches of any fixed schema, into a sequence of
/// shards.
pub struct ShardWriter {
    dir: PathBuf,
    split: String,
    schema: SchemaRef,
    options: ShardOptions,
    properties: WriterProperties,
    next_index: u32,
    open: Option<OpenShard>,
    /// Row buffer of the record mode; `None` for a writer made by [`ShardWriter::for_batches`].
    batch: Option<BatchBuilder>,
    batch_rows: usize,
    batch_bytes: usize,
}

impl ShardWriter {
    /// Creates a writer whose first shard gets number `first_index` in folder `dir`.
    pub fn new(
        dir: &Path,
        split: &str,
        schema: RecordSchema,
        options: ShardOptions,
        first_index: u32,
    ) -> Result<Self, SinkError> {
        let properties = options.writer_properties(&ColumnSettings {
            plain: &["key", "text"],
            ..ColumnSettings::default()
        })?;
        // Sizes are checked once per batch, so a batch is kept well below the shard and row
        // group limits. Otherwise a small shard would overshoot its target by a whole batch.
        let batch_rows = BATCH_ROWS.min(options.row_group_rows);
        let batch_bytes = BATCH_BYTES
            .min((options.shard_bytes.as_u64() / 8) as usize)
            .max(1);
        Ok(Self {
            batch_rows,
            batch_bytes,
            dir: dir.to_path_buf(),
            split: split.to_string(),
            schema: schema.arrow().clone(),
            batch: Some(BatchBuilder::new(schema)),
            options,
            properties,
            next_index: first_index,
            open: None,
        })
    }

    /// Creates a writer that takes whole record batches of `schema` through
    /// [`ShardWriter::write_batch`], for tables that do not have the record columns.
    /// `columns` sets the encoding and statistics of the columns it names.
    pub fn for_batches(
        dir: &Path,
        name: &str,
        schema: SchemaRef,
        options: ShardOptions,
        first_index: u32,
        columns: &ColumnSettings<'_>,
    ) -> Result<Self, SinkError> {
        let properties = options.writer_properties(columns)?;
        Ok(Self {
            batch_rows: 0,
            batch_bytes: 0,
            dir: dir.to_path_buf(),
            split: name.to_string(),
            schema,
            batch: None,
            options,
            properties,
            next_index: first_index,
            open: None,
        })
    }

    /// Writes a record batch of the writer's schema; returns the shard that this write
    /// completed, if any.
    pub fn write_batch(&mut self, batch: &RecordBatch) -> Result<Option<FinishedShard>, SinkError> {
        if batch.schema().fields() != self.schema.fields() {
            return Err(SinkError::SchemaMismatch {
                path: self
                    .dir
                    .join(staged_name(&self.split, self.current_index())),
                detail: format!(
                    "a record batch has schema {:?}, the writer was created for {:?}",
                    batch.schema().fields(),
                    self.schema.fields()
                ),
            });
        }
        self.write_to_shard(batch)
    }

    /// Returns the number of the shard that the next pushed record will land in.
    pub fn current_index(&self) -> u32 {
        self.open
            .as_ref()
            .map_or(self.next_index, |open| open.index)
    }

    /// Buffers one record; returns the shard that this push completed, if any.
    ///
    /// # Panics
    /// On a writer made by [`ShardWriter::for_batches`], which takes no records.
    pub fn push(&mut self, record: &Record) -> Result<Option<FinishedShard>, SinkError> {
        let buffer = self
            .batch
            .as_mut()
            .expect("push needs a writer made by ShardWriter::new");
        buffer.append(record)?;
        if buffer.rows() >= self.batch_rows || buffer.buffered_bytes() >= self.batch_bytes {
            let batch = buffer.finish()?;
            return self.write_to_shard(&batch);
        }
        Ok(None)
    }

    /// Writes the buffered rows and completes the open shard, unless it is empty.
    pub fn finish(self) -> Result<Option<FinishedShard>, SinkError> {
        match self.finish_unsynced()? {
            Some(shard) => shard.sync().map(Some),
            None => Ok(None),
        }
    }

    /// Writes the buffered rows and the footer of the open shard, unless it is empty, and
    /// returns it before the slow part of completing it: the fsync and the rename to its
    /// staged name. [`UnsyncedShard::sync`] does that part, on another thread if the caller
    /// wants to keep generating rows meanwhile.
    pub fn finish_unsynced(mut self) -> Result<Option<UnsyncedShard>, SinkError> {
        if let Some(buffer) = self.batch.as_mut().filter(|b| b.rows() > 0) {
            let batch = buffer.finish()?;
            self.open_shard()?.write(&batch)?;
            self.open.as_mut().expect("shard was just opened").rows += batch.num_rows() as u64;
        }
        match self.open.take() {
            Some(open) => self.close_unsynced(open).map(Some),
            None => Ok(None),
        }
    }

    fn write_to_shard(&mut self, batch: &RecordBatch) -> Result<Option<FinishedShard>, SinkError> {
        let target = self.options.shard_bytes.as_u64();

        let writer = self.open_shard()?;
        writer.write(batch)?;
        let size = (writer.bytes_written() + writer.in_progress_size()) as u64;
        let open = self.open.as_mut().expect("shard was just opened");
        open.rows += batch.num_rows() as u64;

        if size >= target {
            let open = self.open.take().expect("shard is open");
            return self.close(open).map(Some);
        }
        Ok(None)
    }

    fn open_shard(&mut self) -> Result<&mut ArrowWriter<HashingFile>, SinkError> {
        if self.open.is_none() {
            let index = self.next_index;
            let tmp_path = self
                .dir
                .join(format!("{}.tmp", staged_name(&self.split, index)));
            let file = File::create(&tmp_path).map_err(|source| SinkError::Io {
                path: tmp_path.clone(),
                source,
            })?;
            let sink = HashingFile {
                file,
                hasher: Sha256::new(),
                bytes: 0,
            };
            let writer =
                ArrowWriter::try_new(sink, self.schema.clone(), Some(self.properties.clone()))?;
            self.next_index += 1;
            self.open = Some(OpenShard {
                index,
                tmp_path,
                writer,
                rows: 0,
            });
        }
        Ok(&mut self.open.as_mut().expect("shard is open").writer)
    }

    fn close(&mut self, open: OpenShard) -> Result<FinishedShard, SinkError> {
        self.close_unsynced(open)?.sync()
    }

    fn close_unsynced(&mut self, open: OpenShard) -> Result<UnsyncedShard, SinkError> {
        let sink = open.writer.into_inner()?;
        Ok(UnsyncedShard {
            split: self.split.clone(),
            index: open.index,
            tmp_path: open.tmp_path,
            path: self.dir.join(staged_name(&self.split, open.index)),
            rows: open.rows,
            sink,
        })
    }
}

/// A shard whose bytes are all written to its temporary file, but not yet fsynced nor renamed
/// to its staged name. Until [`UnsyncedShard::sync`] returns, a crash loses it and a resumed
/// run writes it again.
pub struct UnsyncedShard {
    split: String,
    index: u32,
    tmp_path: PathBuf,
    path: PathBuf,
    rows: u64,
    sink: HashingFile,
}

impl UnsyncedShard {
    /// Fsyncs the file, renames it to its staged name and fsyncs the folder.
    pub fn sync(self) -> Result<FinishedShard, SinkError> {
        let io_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SinkError::Io { path, source }
        };

        self.sink
            .file
            .sync_all()
            .map_err(io_error(&self.tmp_path))?;
        fs::rename(&self.tmp_path, &self.path).map_err(io_error(&self.path))?;
        fsutil::sync_parent(&self.path).map_err(io_error(&self.path))?;

        tracing::debug!(split = %self.split, index = self.index, rows = self.rows, bytes = self.sink.bytes, "shard finished");
        Ok(FinishedShard {
            split: self.split,
            index: self.index,
            path: self.path,
            rows: self.rows,
            bytes: self.sink.bytes,
            sha256: hex::encode(self.sink.hasher.finalize()),
        })
    }
}
