//! Reads back shards that earlier runs finished.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{UInt32Type, UInt64Type};
use arrow_array::{Array, RecordBatch, StringArray};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use sha2::{Digest, Sha256};

use super::{FinishedShard, SinkError};
use crate::record::digest_key_text;

/// Checks a finished shard against `schema`, calls `on_key` with the digest of every value of
/// its first column (the `key` column), and returns its description.
pub fn scan_shard(
    path: &Path,
    schema: &arrow_schema::Schema,
    split: &str,
    index: u32,
    mut on_key: impl FnMut(u128),
) -> Result<FinishedShard, SinkError> {
    let io_error = |source| SinkError::Io {
        path: path.to_path_buf(),
        source,
    };

    let file = File::open(path).map_err(io_error)?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)?;
    let found = builder.schema().fields();
    let expected = schema.fields();
    if found != expected {
        let describe = |fields: &arrow_schema::Fields| {
            fields
                .iter()
                .map(|f| format!("{}: {}", f.name(), f.data_type()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(SinkError::SchemaMismatch {
            path: path.to_path_buf(),
            detail: format!(
                "expected [{}], found [{}]",
                describe(expected),
                describe(found)
            ),
        });
    }

    let key_column = ProjectionMask::roots(builder.parquet_schema(), [0]);
    let reader = builder.with_projection(key_column).build()?;
    let mut rows = 0u64;
    for batch in reader {
        let batch = batch?;
        let keys = keys_of(&batch);
        for i in 0..keys.len() {
            on_key(digest_key_text(keys.value(i)));
        }
        rows += batch.num_rows() as u64;
    }

    let mut hasher = Sha256::new();
    let mut file = File::open(path).map_err(io_error)?;
    let mut buffer = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = file.read(&mut buffer).map_err(io_error)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        bytes += n as u64;
    }

    Ok(FinishedShard {
        split: split.to_string(),
        index,
        path: path.to_path_buf(),
        rows,
        bytes,
        sha256: hex::encode(hasher.finalize()),
    })
}

/// Calls `on_row` with the key and the value of integer column `column` (UInt32 or UInt64) of
/// every row of a shard that [`scan_shard`] checked. A null or non-integer value is `None`.
pub fn scan_column(
    path: &Path,
    column: usize,
    mut on_row: impl FnMut(&str, Option<u64>),
) -> Result<(), SinkError> {
    let file = File::open(path).map_err(|source| SinkError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)?;
    let projection = ProjectionMask::roots(builder.parquet_schema(), [0, column]);
    let reader = builder.with_projection(projection).build()?;
    for batch in reader {
        let batch = batch?;
        let keys = keys_of(&batch);
        let values = batch.column(1);
        let value = |i: usize| -> Option<u64> {
            if values.is_null(i) {
                return None;
            }
            if let Some(array) = values.as_primitive_opt::<UInt32Type>() {
                return Some(u64::from(array.value(i)));
            }
            values
                .as_primitive_opt::<UInt64Type>()
                .map(|array| array.value(i))
        };
        for i in 0..keys.len() {
            on_row(keys.value(i), value(i));
        }
    }
    Ok(())
}

/// Returns the first column of a batch read from a checked shard: the `key` column.
fn keys_of(batch: &RecordBatch) -> &StringArray {
    batch
        .column(0)
        .as_any()
        .downcast_ref::<StringArray>()
        .expect("the schema check guarantees a Utf8 key column")
}
