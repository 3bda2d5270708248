//! Reads the text column of Parquet shards and hashes the files, so a run records the exact
//! data it saw.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use arrow_array::{Array, LargeStringArray, RecordBatch, StringArray, StringViewArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{Result, TrainError};

/// One file that a run read, with its SHA-256.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SourceFile {
    pub path: PathBuf,
    pub sha256: String,
    /// Rows read from the file; zero for a manifest.
    pub rows: u64,
}

/// Documents read from shards, with the files they came from.
#[derive(Clone, Debug, Default)]
pub struct Corpus {
    pub documents: Vec<String>,
    pub sources: Vec<SourceFile>,
}

impl Corpus {
    /// Wraps documents that did not come from files, such as text built by an experiment.
    pub fn from_documents(documents: Vec<String>) -> Self {
        Self {
            documents,
            sources: Vec::new(),
        }
    }
}

/// Returns the Parquet files of a shard directory: `DIR/data/*.parquet`, or `DIR/*.parquet` when
/// DIR has no `data` folder (such as `out/bios/data/bios`), sorted by name.
pub fn shard_paths(dir: &Path) -> Result<Vec<PathBuf>> {
    let data = dir.join("data");
    let folder = if data.is_dir() {
        data
    } else {
        dir.to_path_buf()
    };
    let entries = std::fs::read_dir(&folder).map_err(TrainError::io("read folder", &folder))?;
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(TrainError::io("read folder", &folder))?
            .path();
        if path.extension().is_some_and(|e| e == "parquet") && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    if paths.is_empty() {
        return Err(TrainError::NoShards {
            path: dir.to_path_buf(),
        });
    }
    Ok(paths)
}

/// Reads the non-empty values of `column` from every shard of `dir`, and hashes each shard and
/// the nearest `manifest.json` in DIR or up to two folders above it.
pub fn read_shards(dir: &Path, column: &str) -> Result<Corpus> {
    let mut corpus = Corpus::default();
    for path in shard_paths(dir)? {
        let before = corpus.documents.len();
        read_column(&path, column, &mut corpus.documents)?;
        corpus.sources.push(SourceFile {
            sha256: sha256_file(&path)?,
            rows: (corpus.documents.len() - before) as u64,
            path,
        });
    }
    if let Some(manifest) = dir
        .ancestors()
        .take(3)
        .map(|d| d.join("manifest.json"))
        .find(|p| p.is_file())
    {
        corpus.sources.push(SourceFile {
            sha256: sha256_file(&manifest)?,
            rows: 0,
            path: manifest,
        });
    }
    tracing::info!(
        dir = %dir.display(),
        documents = corpus.documents.len(),
        // Shards plus the folder's manifest.
        files_hashed = corpus.sources.len(),
        "read training shards"
    );
    Ok(corpus)
}

/// Reads every record batch of one Parquet file.
pub fn read_batches(path: &Path) -> Result<Vec<RecordBatch>> {
    let shard_error = |message: String| TrainError::Shard {
        path: path.to_path_buf(),
        message,
    };
    let file = File::open(path).map_err(TrainError::io("open", path))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| shard_error(e.to_string()))?
        .build()
        .map_err(|e| shard_error(e.to_string()))?;
    reader
        .map(|batch| batch.map_err(|e| shard_error(e.to_string())))
        .collect()
}

/// Returns the values of a string column of one batch; nulls become `None`.
pub fn string_column(
    batch: &RecordBatch,
    column: &str,
    path: &Path,
) -> Result<Vec<Option<String>>> {
    let missing = || TrainError::MissingColumn {
        path: path.to_path_buf(),
        column: column.to_string(),
    };
    let array = batch.column_by_name(column).ok_or_else(missing)?;
    let any = array.as_any();
    let values: Vec<Option<String>> = if let Some(a) = any.downcast_ref::<StringArray>() {
        a.iter().map(|v| v.map(str::to_string)).collect()
    } else if let Some(a) = any.downcast_ref::<LargeStringArray>() {
        a.iter().map(|v| v.map(str::to_string)).collect()
    } else if let Some(a) = any.downcast_ref::<StringViewArray>() {
        a.iter().map(|v| v.map(str::to_string)).collect()
    } else {
        return Err(missing());
    };
    debug_assert_eq!(values.len(), array.len());
    Ok(values)
}

fn read_column(path: &Path, column: &str, out: &mut Vec<String>) -> Result<()> {
    for batch in read_batches(path)? {
        let values = string_column(&batch, column, path)?;
        out.extend(
            values
                .into_iter()
                .flatten()
                .filter(|text| !text.trim().is_empty()),
        );
    }
    Ok(())
}

/// Returns the hex SHA-256 of a file.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).map_err(TrainError::io("open", path))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let read = file
            .read(&mut buffer)
            .map_err(TrainError::io("read", path))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hex::encode(hasher.finalize()))
}
