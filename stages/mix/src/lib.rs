//! The mix stage: interleaves the rows of two shard sets (for example synthetic biographies
//! and a web-text corpus) so that set A contributes a target share `ratio` of the tokens,
//! globally shuffled, and records the share it achieved.
//!
//! Three passes keep memory bounded: the first counts tokens on each side, the second samples
//! rows and scatters them into bucket files at random, and the third shuffles one bucket at a
//! time in memory and writes it into shards.

mod sample;

use std::fs::{self, File};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{StringBuilder, UInt32Builder};
use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use kenning_chunk::Tokens;
use kenning_pipeline::bytesize::ByteSize;
use kenning_pipeline::card::{size_category, yaml_string};
use kenning_pipeline::fsutil;
use kenning_pipeline::manifest::{ShardEntry, SplitEntry, shard_entries};
use kenning_pipeline::resume::{ResumeError, Start, StatePaths, Status, now_rfc3339};
use kenning_pipeline::sink::finalize;
use kenning_pipeline::sink::{ColumnSettings, ShardOptions, ShardWriter, SinkError};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::{Deserialize, Serialize};

pub use sample::{Plan, plan_sampling};

/// Rows per record batch handed to the shard writer.
const BATCH_ROWS: usize = 4096;

/// Settings of `kenning mix`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MixConfig {
    /// Parquet file or folder (read recursively) of side A, such as biographies.
    pub a: PathBuf,
    /// Parquet file or folder of side B, such as web text.
    pub b: PathBuf,
    /// Target share of side A in the output's tokens, 0 to 1.
    pub ratio: f64,
    /// Column that contains the text on both sides.
    pub text_column: String,
    pub seed: u64,
    /// Bytes of text per shuffle bucket; one bucket is held in memory at a time.
    pub bucket_bytes: ByteSize,
}

/// Output settings of `kenning mix`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MixOutput {
    pub dir: PathBuf,
    pub license: String,
    pub shard_bytes: ByteSize,
    pub row_group_rows: usize,
    pub row_group_bytes: ByteSize,
    pub zstd_level: i32,
}

/// Failure of a mix run.
#[derive(Debug, thiserror::Error)]
pub enum MixError {
    #[error("invalid mix setting: {0}")]
    Config(String),
    #[error("{path}: {message}")]
    Input { path: PathBuf, message: String },
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Resume(#[from] ResumeError),
    #[error(transparent)]
    Sink(#[from] SinkError),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> MixError + '_ {
    move |source| MixError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Token and row counts of one side.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SideStats {
    pub path: String,
    pub files: usize,
    pub rows: u64,
    pub tokens: u64,
    pub selected_rows: u64,
    pub selected_tokens: u64,
}

/// Result of a mix run: the ratio it reached and the rows it wrote.
#[derive(Clone, Debug, Serialize)]
pub struct MixSummary {
    pub out_dir: PathBuf,
    pub target_ratio: f64,
    /// Share of side A in the output's tokens.
    pub achieved_ratio: f64,
    pub a: SideStats,
    pub b: SideStats,
    pub rows: u64,
    pub shards: usize,
    pub already_complete: bool,
}

/// Lists the Parquet files of a side: the file itself, or every `.parquet` below a folder.
pub fn parquet_files(path: &Path) -> Result<Vec<PathBuf>, MixError> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    if !path.is_dir() {
        return Err(MixError::Input {
            path: path.to_path_buf(),
            message: "not found. Give a Parquet file or a folder of Parquet files".into(),
        });
    }
    let mut files = Vec::new();
    let mut pending = vec![path.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).map_err(io_error(&dir))? {
            let entry = entry.map_err(io_error(&dir))?.path();
            if entry.is_dir() {
                pending.push(entry);
            } else if entry.extension().is_some_and(|e| e == "parquet") {
                files.push(entry);
            }
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(MixError::Input {
            path: path.to_path_buf(),
            message: "contains no .parquet files".into(),
        });
    }
    Ok(files)
}

/// Calls `visit(row, key, text)` for every row of `file`; `key` is the `key` column when the
/// file has one.
fn for_each_row(
    file: &Path,
    text_column: &str,
    mut visit: impl FnMut(u64, Option<&str>, &str) -> Result<(), MixError>,
) -> Result<(), MixError> {
    let input_error = |message: String| MixError::Input {
        path: file.to_path_buf(),
        message,
    };
    let handle = File::open(file).map_err(io_error(file))?;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(handle).map_err(|e| input_error(e.to_string()))?;
    let schema = builder.schema().clone();
    let text_index = schema.index_of(text_column).map_err(|_| {
        input_error(format!(
            "has no `{text_column}` column. Set --text-column to the column with the text"
        ))
    })?;
    if schema.field(text_index).data_type() != &DataType::Utf8 {
        return Err(input_error(format!(
            "column `{text_column}` is not a string column"
        )));
    }
    let key_index = schema
        .index_of("key")
        .ok()
        .filter(|&i| schema.field(i).data_type() == &DataType::Utf8);
    let mut roots = vec![text_index];
    roots.extend(key_index);
    roots.sort();
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots.clone());
    let reader = builder
        .with_projection(mask)
        .build()
        .map_err(|e| input_error(e.to_string()))?;

    let position = |index: usize| roots.iter().position(|&r| r == index).expect("projected");
    let mut row = 0u64;
    for batch in reader {
        let batch = batch.map_err(|e| input_error(e.to_string()))?;
        let texts = batch.column(position(text_index)).as_string::<i32>();
        let keys = key_index.map(|k| batch.column(position(k)).as_string::<i32>().clone());
        for i in 0..batch.num_rows() {
            let key = keys.as_ref().filter(|k| k.is_valid(i)).map(|k| k.value(i));
            let text = if texts.is_valid(i) {
                texts.value(i)
            } else {
                ""
            };
            visit(row, key, text)?;
            row += 1;
        }
    }
    Ok(())
}

/// One row in a bucket file.
#[derive(Serialize, Deserialize)]
struct BucketRow {
    key: String,
    side: String,
    text: String,
    tokens: u32,
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, false),
        Field::new("text", DataType::Utf8, false),
        Field::new("tokens", DataType::UInt32, false),
    ]))
}

/// Runs the mix and writes `data/train-*.parquet`, `manifest.json` and `README.md` into
/// `output.dir`. An interrupted mix starts over: nothing is final before the last step.
pub fn run(config: MixConfig, output: MixOutput, restart: bool) -> Result<MixSummary, MixError> {
    if !(0.0..=1.0).contains(&config.ratio) {
        return Err(MixError::Config(format!(
            "ratio is {}, but must be between 0 and 1",
            config.ratio
        )));
    }
    if config.bucket_bytes.as_u64() == 0 {
        return Err(MixError::Config(
            "bucket_bytes must be greater than 0".into(),
        ));
    }
    let options = ShardOptions {
        shard_bytes: output.shard_bytes,
        row_group_rows: output.row_group_rows,
        row_group_bytes: output.row_group_bytes,
        zstd_level: output.zstd_level,
    };
    options.validate().map_err(MixError::Config)?;
    let files_a = parquet_files(&config.a)?;
    let files_b = parquet_files(&config.b)?;

    let recorded = serde_json::json!({ "mix": config, "output": output });
    let mut fingerprinted = recorded.clone();
    fingerprinted["output"]
        .as_object_mut()
        .expect("output is an object")
        .remove("dir");
    let paths = StatePaths::new(&output.dir);
    let mut state = match paths.prepare(&fingerprinted, restart)? {
        Start::Complete(_) => return already_complete(&paths, &config),
        Start::Fresh(state) | Start::Resume(state) => state,
    };
    let work = paths.state_dir.join("mix");
    if work.exists() {
        fs::remove_dir_all(&work).map_err(io_error(&work))?;
    }
    fs::create_dir_all(work.join("buckets")).map_err(io_error(&work))?;
    fs::create_dir_all(work.join("shards")).map_err(io_error(&work))?;

    // Pass 1: tokens and text bytes of each side.
    let tokens = Tokens::Words;
    let count = |files: &[PathBuf], path: &Path| -> Result<(SideStats, u64), MixError> {
        let mut stats = SideStats {
            path: path.display().to_string(),
            files: files.len(),
            ..SideStats::default()
        };
        let mut bytes = 0u64;
        for file in files {
            for_each_row(file, &config.text_column, |_, _, text| {
                stats.rows += 1;
                stats.tokens += token_count(&tokens, text);
                bytes += text.len() as u64;
                Ok(())
            })?;
        }
        Ok((stats, bytes))
    };
    let (mut a, bytes_a) = count(&files_a, &config.a)?;
    let (mut b, bytes_b) = count(&files_b, &config.b)?;
    let plan = plan_sampling(a.tokens, b.tokens, config.ratio)?;
    tracing::debug!(
        tokens_a = a.tokens,
        tokens_b = b.tokens,
        keep_a = plan.keep_a,
        keep_b = plan.keep_b,
        "mix planned"
    );

    // Pass 2: sample rows and scatter them into buckets at random.
    let selected_bytes = bytes_a as f64 * plan.keep_a + bytes_b as f64 * plan.keep_b;
    let buckets = ((selected_bytes / config.bucket_bytes.as_u64() as f64).ceil() as u64).max(1);
    let mut writers = Vec::with_capacity(buckets as usize);
    for bucket in 0..buckets {
        let path = work.join("buckets").join(format!("{bucket:05}.jsonl"));
        writers.push(BufWriter::new(
            File::create(&path).map_err(io_error(&path))?,
        ));
    }
    for (side, files, keep, stats) in [
        ("a", &files_a, plan.keep_a, &mut a),
        ("b", &files_b, plan.keep_b, &mut b),
    ] {
        for (file_index, file) in files.iter().enumerate() {
            for_each_row(file, &config.text_column, |row, key, text| {
                let draw = sample::draw(config.seed, side, file_index as u64, row);
                if draw.unit >= keep {
                    return Ok(());
                }
                let row_tokens = token_count(&tokens, text);
                stats.selected_rows += 1;
                stats.selected_tokens += row_tokens;
                let key = match key {
                    Some(key) => format!("{side}:{key}"),
                    None => format!("{side}:{file_index}:{row}"),
                };
                let line = BucketRow {
                    key,
                    side: side.to_string(),
                    text: text.to_string(),
                    tokens: row_tokens.min(u64::from(u32::MAX)) as u32,
                };
                let writer = &mut writers[(draw.bucket % buckets) as usize];
                serde_json::to_writer(&mut *writer, &line).expect("a bucket row serializes");
                writer.write_all(b"\n").map_err(io_error(&work))
            })?;
        }
    }
    for mut writer in writers {
        writer.flush().map_err(io_error(&work))?;
    }

    // Pass 3: shuffle each bucket in memory and write it into shards.
    let mut writer = ShardWriter::for_batches(
        &work.join("shards"),
        "train",
        schema(),
        options,
        0,
        &ColumnSettings {
            plain: &["key", "text"],
            ..ColumnSettings::default()
        },
    )?;
    let mut finished = Vec::new();
    for bucket in 0..buckets {
        let path = work.join("buckets").join(format!("{bucket:05}.jsonl"));
        let mut rows: Vec<BucketRow> = Vec::new();
        for line in BufReader::new(File::open(&path).map_err(io_error(&path))?).lines() {
            let line = line.map_err(io_error(&path))?;
            rows.push(serde_json::from_str(&line).map_err(|e| io_error(&path)(e.into()))?);
        }
        sample::shuffle(config.seed, bucket, &mut rows);
        for chunk in rows.chunks(BATCH_ROWS) {
            finished.extend(writer.write_batch(&batch(chunk))?);
        }
        fs::remove_file(&path).map_err(io_error(&path))?;
    }
    finished.extend(writer.finish()?);

    let moves = finalize::plan(&finished, &paths.dir.join("data"));
    let shards = finalize::complete_moves(&moves)?;
    let (entries, splits) = shard_entries(&paths.dir, &shards);
    let rows: u64 = entries.iter().map(|s| s.rows).sum();
    let selected = a.selected_tokens + b.selected_tokens;
    let achieved_ratio = if selected == 0 {
        0.0
    } else {
        a.selected_tokens as f64 / selected as f64
    };

    if (achieved_ratio - config.ratio).abs() > 0.05 {
        tracing::warn!(
            achieved = achieved_ratio,
            target = config.ratio,
            rows_a = a.selected_rows,
            rows_b = b.selected_rows,
            "the achieved share is far from the target, because too few rows were kept to sample finely; use larger inputs"
        );
    }
    let summary = MixSummary {
        out_dir: paths.dir.clone(),
        target_ratio: config.ratio,
        achieved_ratio,
        a,
        b,
        rows,
        shards: shards.len(),
        already_complete: false,
    };
    let manifest = serde_json::json!({
        "manifest_version": kenning_pipeline::manifest::MANIFEST_VERSION,
        "kenning_version": env!("CARGO_PKG_VERSION"),
        "fingerprint": state.fingerprint,
        "started_at": state.started_at,
        "finished_at": now_rfc3339(),
        "attempts": state.attempts,
        "config": recorded,
        "tokenizer": "words",
        "target_ratio": config.ratio,
        "achieved_ratio": achieved_ratio,
        "a": summary.a,
        "b": summary.b,
        "columns": [
            {"name": "key", "dtype": "string", "description": "Side (`a` or `b`) and the input row's key."},
            {"name": "source", "dtype": "string", "description": "`a` or `b`."},
            {"name": "text", "dtype": "string", "description": "The input row's text."},
            {"name": "tokens", "dtype": "uint32", "description": "Words and punctuation marks in the text."},
        ],
        "splits": splits,
        "shards": entries,
    });
    let write =
        |path: &Path, bytes: &[u8]| fsutil::write_atomic(path, bytes).map_err(io_error(path));
    write(
        &paths.dir.join("manifest.json"),
        &serde_json::to_vec_pretty(&manifest).expect("serializes"),
    )?;
    write(
        &paths.dir.join("README.md"),
        render_card(&summary, &output.license, &splits, &entries).as_bytes(),
    )?;

    state.status = Status::Complete;
    paths.save(&state)?;
    fs::remove_dir_all(&work).map_err(io_error(&work))?;
    Ok(summary)
}

fn token_count(tokens: &Tokens, text: &str) -> u64 {
    tokens.spans("", text).map_or(0, |spans| spans.len() as u64)
}

fn batch(rows: &[BucketRow]) -> RecordBatch {
    let mut key = StringBuilder::new();
    let mut source = StringBuilder::new();
    let mut text = StringBuilder::new();
    let mut tokens = UInt32Builder::new();
    for row in rows {
        key.append_value(&row.key);
        source.append_value(&row.side);
        text.append_value(&row.text);
        tokens.append_value(row.tokens);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(key.finish()),
        Arc::new(source.finish()),
        Arc::new(text.finish()),
        Arc::new(tokens.finish()),
    ];
    RecordBatch::try_new(schema(), columns).expect("columns match the schema")
}

fn already_complete(paths: &StatePaths, config: &MixConfig) -> Result<MixSummary, MixError> {
    let path = paths.dir.join("manifest.json");
    let bytes = fs::read(&path).map_err(io_error(&path))?;
    let manifest: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| io_error(&path)(e.into()))?;
    let shards = manifest["shards"].as_array().map_or(0, Vec::len);
    let rows = manifest["shards"]
        .as_array()
        .map_or(0, |s| s.iter().filter_map(|s| s["rows"].as_u64()).sum());
    Ok(MixSummary {
        out_dir: paths.dir.clone(),
        target_ratio: config.ratio,
        achieved_ratio: manifest["achieved_ratio"].as_f64().unwrap_or(0.0),
        a: SideStats::default(),
        b: SideStats::default(),
        rows,
        shards,
        already_complete: true,
    })
}

fn render_card(
    summary: &MixSummary,
    license: &str,
    splits: &std::collections::BTreeMap<String, SplitEntry>,
    shards: &[ShardEntry],
) -> String {
    let mut card = String::new();
    card.push_str("---\n");
    card.push_str(&format!("license: {}\n", yaml_string(license)));
    card.push_str("configs:\n- config_name: default\n  data_files:\n  - split: train\n    path: data/train-*\n");
    card.push_str("dataset_info:\n  features:\n");
    for (name, dtype) in [
        ("key", "string"),
        ("source", "string"),
        ("text", "string"),
        ("tokens", "uint32"),
    ] {
        card.push_str(&format!("  - name: {name}\n    dtype: {dtype}\n"));
    }
    card.push_str("  splits:\n");
    for (name, split) in splits {
        card.push_str(&format!(
            "  - name: {name}\n    num_bytes: {}\n    num_examples: {}\n",
            split.bytes, split.rows
        ));
    }
    card.push_str(&format!(
        "size_categories:\n- {}\ntags:\n- kenning\n- data-mixing\n---\n\n",
        size_category(summary.rows)
    ));
    card.push_str("# Mixed corpus\n\n");
    card.push_str(&format!(
        "Rows of two shard sets, globally shuffled. Side A (`{}`) makes up {:.4} of the tokens \
         (target {}); side B is `{}`. Tokens are words and punctuation marks (Unicode word \
         boundaries).\n\n",
        summary.a.path, summary.achieved_ratio, summary.target_ratio, summary.b.path
    ));
    card.push_str("| side | input rows | input tokens | rows kept | tokens kept |\n|---|---:|---:|---:|---:|\n");
    for (name, side) in [("a", &summary.a), ("b", &summary.b)] {
        card.push_str(&format!(
            "| {name} | {} | {} | {} | {} |\n",
            side.rows, side.tokens, side.selected_rows, side.selected_tokens
        ));
    }
    card.push_str(&format!(
        "\n{} rows in {} shards; checksums are in `manifest.json`.\n",
        summary.rows,
        shards.len()
    ));
    card
}
