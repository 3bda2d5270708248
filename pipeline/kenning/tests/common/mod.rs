//! Helpers shared by the integration tests: run the `kenning` binary and read what it wrote.
//!
//! Every test binary compiles this module and uses only part of it, so unused helpers are
//! allowed.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type, UInt32Type, UInt64Type};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Map, Value};

/// The exit status and decoded output of one `kenning` run.
#[derive(Debug)]
pub struct Run {
    pub success: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Self {
        Self {
            success: output.status.success(),
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Run {
    /// Panics with both output streams unless the run exited with status 0.
    pub fn assert_success(&self) -> &Self {
        assert!(
            self.success,
            "kenning failed with exit code {:?}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    /// Panics with both output streams unless the run exited with a non-zero status.
    pub fn assert_failure(&self) -> &Self {
        assert!(
            !self.success,
            "kenning succeeded but was expected to fail\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        assert_eq!(
            self.code,
            Some(1),
            "kenning must exit with code 1 on an error"
        );
        self
    }

    /// Panics with the whole standard error unless it contains `needle`.
    pub fn assert_stderr_contains(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "stderr does not contain {needle:?}\nstderr:\n{}",
            self.stderr
        );
        self
    }

    /// Panics with the whole standard output unless it contains `needle`.
    pub fn assert_stdout_contains(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle),
            "stdout does not contain {needle:?}\nstdout:\n{}",
            self.stdout
        );
        self
    }
}

/// Returns a command for the `kenning` binary that Cargo built for these tests.
pub fn kenning() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kenning"));
    // Logs come without colour codes, so that stderr can be matched as plain text.
    command.env("NO_COLOR", "1").env_remove("RUST_LOG");
    command
}

/// Runs `kenning` with `args` and waits for it to exit.
pub fn run<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    kenning()
        .args(args)
        .output()
        .expect("the kenning binary starts")
        .into()
}

/// Runs `kenning chunk --input INPUT --out OUT --no-progress` followed by `extra`.
pub fn chunk(input: &Path, out: &Path, extra: &[&str]) -> Run {
    let mut args: Vec<&OsStr> = vec![
        OsStr::new("chunk"),
        OsStr::new("--input"),
        input.as_os_str(),
        OsStr::new("--out"),
        out.as_os_str(),
        OsStr::new("--no-progress"),
    ];
    args.extend(extra.iter().map(OsStr::new));
    run(args)
}

/// Writes `contents` to `dir/name`, creating parent folders, and returns the path.
pub fn write_file(dir: &Path, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).expect("the parent folder can be created");
    }
    fs::write(&path, contents).expect("the test input can be written");
    path
}

/// Returns the Parquet shards in `out/data`, sorted by file name.
pub fn shard_paths(out: &Path) -> Vec<PathBuf> {
    let data = out.join("data");
    let mut paths: Vec<PathBuf> = fs::read_dir(&data)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", data.display()))
        .map(|entry| entry.expect("a folder entry can be read").path())
        .filter(|path| path.extension() == Some(OsStr::new("parquet")))
        .collect();
    paths.sort();
    paths
}

/// Reads every row of every shard in `out/data`, in shard order, as JSON objects keyed by
/// column name.
///
/// String columns become JSON strings, integer and float columns JSON numbers, boolean
/// columns JSON booleans and nulls JSON null.
pub fn read_rows(out: &Path) -> Vec<Map<String, Value>> {
    shard_paths(out)
        .iter()
        .flat_map(|path| read_parquet_rows(path))
        .collect()
}

/// Reads every row of one Parquet file as JSON objects keyed by column name.
pub fn read_parquet_rows(path: &Path) -> Vec<Map<String, Value>> {
    let file =
        fs::File::open(path).unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|builder| builder.build())
        .unwrap_or_else(|e| panic!("{} is not a readable Parquet file: {e}", path.display()));

    let mut rows = Vec::new();
    for batch in reader {
        let batch =
            batch.unwrap_or_else(|e| panic!("cannot read a batch of {}: {e}", path.display()));
        rows.extend(batch_rows(&batch));
    }
    rows
}

fn batch_rows(batch: &RecordBatch) -> Vec<Map<String, Value>> {
    let schema = batch.schema();
    (0..batch.num_rows())
        .map(|i| {
            schema
                .fields()
                .iter()
                .zip(batch.columns())
                .map(|(field, column)| (field.name().clone(), cell_to_json(column.as_ref(), i)))
                .collect()
        })
        .collect()
}

fn cell_to_json(array: &dyn Array, i: usize) -> Value {
    if array.is_null(i) {
        return Value::Null;
    }
    match array.data_type() {
        DataType::Utf8 => Value::from(array.as_string::<i32>().value(i)),
        DataType::LargeUtf8 => Value::from(array.as_string::<i64>().value(i)),
        DataType::UInt32 => Value::from(array.as_primitive::<UInt32Type>().value(i)),
        DataType::UInt64 => Value::from(array.as_primitive::<UInt64Type>().value(i)),
        DataType::Int32 => Value::from(array.as_primitive::<Int32Type>().value(i)),
        DataType::Int64 => Value::from(array.as_primitive::<Int64Type>().value(i)),
        DataType::Float64 => Value::from(
            array
                .as_primitive::<arrow_array::types::Float64Type>()
                .value(i),
        ),
        DataType::Boolean => Value::from(array.as_boolean().value(i)),
        other => panic!("the test helpers cannot read a column of type {other}"),
    }
}

/// Returns the string column `name` of every row, panicking on a missing or non-string value.
pub fn column_strings(rows: &[Map<String, Value>], name: &str) -> Vec<String> {
    rows.iter()
        .map(|row| match row.get(name) {
            Some(Value::String(value)) => value.clone(),
            other => panic!("column `{name}` is {other:?}, expected a string, in row {row:?}"),
        })
        .collect()
}

/// Returns the `doc_id` of every row, in row order.
pub fn doc_ids(rows: &[Map<String, Value>]) -> Vec<String> {
    column_strings(rows, "doc_id")
}

/// Reads and parses `out/manifest.json`.
pub fn read_manifest(out: &Path) -> Value {
    let path = out.join("manifest.json");
    let bytes = fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Reads `out/rejects.jsonl`, one JSON object per line.
pub fn read_rejects(out: &Path) -> Vec<Value> {
    let path = out.join("rejects.jsonl");
    let text =
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| {
                panic!("a line of {} is not JSON ({e}): {line}", path.display())
            })
        })
        .collect()
}

/// Returns the id that kenning gives a document without one: the first 16 hex digits of the
/// SHA-256 of the title, a NUL byte and the text.
pub fn content_id(title: Option<&str>, text: &str) -> String {
    use sha2::{Digest, Sha256};

    let mut hasher = Sha256::new();
    hasher.update(title.unwrap_or("").as_bytes());
    hasher.update([0u8]);
    hasher.update(text.as_bytes());
    hasher.finalize()[..8]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}
