//! A biographies run: plans shards over row ranges, writes them on several threads, resumes
//! after a crash, and finishes with the manifest and the dataset card.
//!
//! Every row is a pure function of the seed and its position, so a shard is a fixed row
//! range. A shard that an interrupted run completed is kept; any other is written again from
//! its first row. That gives exactly one row per key after any crash without a journal, and
//! byte-identical shards for the same seed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, mpsc};

use arrow_array::{Array, RecordBatch};
use kenning_pipeline::bytesize::ByteSize;
use kenning_pipeline::fsutil;
use kenning_pipeline::progress;
use kenning_pipeline::resume::{Start, StatePaths, Status};
use kenning_pipeline::secrets;
use kenning_pipeline::sink::finalize::{self, PlannedMove};
use kenning_pipeline::sink::reader::scan_shard;
use kenning_pipeline::sink::{FinishedShard, ShardOptions, ShardWriter, SinkError, UnsyncedShard};
use serde::Serialize;
use serde_json::Value;

use crate::config::BiosConfig;
use crate::error::BiosError;
use crate::manifest::{self, BiosManifest};
use crate::names::NamePools;
use crate::people::Generator;
use crate::pools::AttributePools;
use crate::tables::{Table, TableBuilder};
use crate::templates::TemplateSet;

/// Rows built into one record batch.
const BATCH_ROWS: u64 = 8192;
/// Rows whose size is measured to size the shards.
const SAMPLE_ROWS: u64 = 256;
/// Minimum shards of a large table, so that up to this many threads share the work. It is a
/// constant rather than the thread count, so the same settings give the same shards on any
/// machine.
const MIN_SHARDS: u64 = 16;
/// Version of the generation rules; raised whenever the same settings would produce different
/// rows, so that a resumed run never mixes shards of two versions.
const GENERATOR_VERSION: u32 = 3;
/// Assumed zstd compression ratio of the text, used to turn a target file size into rows per
/// shard. An estimate: template text compresses well, so shards come out at or below target.
const ASSUMED_COMPRESSION: u64 = 3;

/// Output settings of a biographies run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BiosOutput {
    pub dir: PathBuf,
    pub license: String,
    pub shard_bytes: ByteSize,
    pub row_group_rows: usize,
    pub row_group_bytes: ByteSize,
    pub zstd_level: i32,
    /// Tables to write; all three unless the user picks some.
    pub tables: Vec<Table>,
}

/// Execution settings of a run; none of them changes the output.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub threads: usize,
    pub restart: bool,
    pub progress: bool,
}

/// Result of a run: the tables it wrote and where.
#[derive(Clone, Debug)]
pub struct BiosSummary {
    pub out_dir: PathBuf,
    pub manifest_path: PathBuf,
    pub card_path: PathBuf,
    /// Rows and shards of each table.
    pub tables: BTreeMap<String, (u64, usize)>,
    /// Shards kept from an interrupted run.
    pub resumed_shards: usize,
    pub already_complete: bool,
}

/// One shard to write: a row range of a table's split.
#[derive(Clone, Debug)]
struct Job {
    table: Table,
    split: &'static str,
    index: u32,
    rows: std::ops::Range<u64>,
}

/// Generates people, biographies and QA rows and writes them as shards under `output.dir`.
pub fn run(
    config: BiosConfig,
    output: BiosOutput,
    options: RunOptions,
) -> Result<BiosSummary, BiosError> {
    config.validate().map_err(BiosError::Config)?;
    let shard_options = ShardOptions {
        shard_bytes: ByteSize(u64::MAX),
        row_group_rows: output.row_group_rows,
        row_group_bytes: output.row_group_bytes,
        zstd_level: output.zstd_level,
    };
    shard_options.validate().map_err(BiosError::Config)?;
    if output.tables.is_empty() {
        return Err(BiosError::Config(
            "tables is empty: choose from bios, qa and people".into(),
        ));
    }
    if output.shard_bytes.as_u64() == 0 {
        return Err(BiosError::Config(
            "shard_bytes must be greater than 0".into(),
        ));
    }

    let names = match &config.pools.names {
        Some(path) => NamePools::from_file(path)?,
        None => NamePools::builtin(),
    };
    let pools = AttributePools::load(&config.pools)?;
    let templates = TemplateSet::load(config.templates.as_deref())?;
    let generator = Generator::new(config.clone(), names, pools)?;
    let builder = TableBuilder::new(&generator, &templates);

    let recorded = recorded_config(&config, &output);
    let paths = StatePaths::new(&output.dir);
    let state = match paths.prepare(&fingerprinted(&recorded), options.restart)? {
        Start::Complete(_) => return already_complete(&paths),
        Start::Fresh(state) | Start::Resume(state) => state,
    };

    let mut resumed_shards = 0;
    let moves = if paths.finalize_plan.exists() {
        read_plan(&paths.finalize_plan)?
    } else {
        let jobs = plan_jobs(&builder, &output.tables, output.shard_bytes.as_u64());
        let (shards, resumed) =
            write_shards(&builder, &jobs, &paths.state_dir, &shard_options, &options)?;
        resumed_shards = resumed;
        if resumed > 0 {
            tracing::info!(
                shards = resumed,
                "kept shards that an interrupted run completed"
            );
        }
        let mut moves = Vec::new();
        for &table in &output.tables {
            let table_shards: Vec<FinishedShard> = shards
                .iter()
                .filter(|(t, _)| *t == table)
                .map(|(_, s)| s.clone())
                .collect();
            moves.extend(finalize::plan(
                &table_shards,
                &paths.dir.join("data").join(table.name()),
            ));
        }
        let json = serde_json::to_vec_pretty(&moves).expect("a plan serializes");
        fsutil::write_atomic(&paths.finalize_plan, &json).map_err(|source| BiosError::Io {
            path: paths.finalize_plan.clone(),
            source,
        })?;
        moves
    };
    let shards = finalize::complete_moves(&moves)?;

    let manifest = BiosManifest::build(
        &generator,
        &templates,
        &state,
        recorded,
        &paths.dir,
        &shards,
        &output.tables,
    );
    let manifest_path = paths.dir.join("manifest.json");
    let card_path = paths.dir.join("README.md");
    let write = |path: &Path, bytes: &[u8]| {
        fsutil::write_atomic(path, bytes).map_err(|source| BiosError::Io {
            path: path.to_path_buf(),
            source,
        })
    };
    write(
        &manifest_path,
        &serde_json::to_vec_pretty(&manifest).expect("the manifest serializes"),
    )?;
    write(
        &card_path,
        manifest::render_card(&manifest, &generator, &output.license).as_bytes(),
    )?;

    let mut state = state;
    state.status = Status::Complete;
    paths.save(&state)?;
    for leftover in [paths.state_dir.join("shards")] {
        if leftover.exists() {
            std::fs::remove_dir_all(&leftover).map_err(|source| BiosError::Io {
                path: leftover.clone(),
                source,
            })?;
        }
    }
    std::fs::remove_file(&paths.finalize_plan).map_err(|source| BiosError::Io {
        path: paths.finalize_plan.clone(),
        source,
    })?;

    Ok(BiosSummary {
        out_dir: paths.dir.clone(),
        manifest_path,
        card_path,
        tables: manifest.table_totals(),
        resumed_shards,
        already_complete: false,
    })
}

/// Cuts every table's splits into row ranges of about `shard_bytes` on disk, and into at least
/// [`MIN_SHARDS`] ranges when the table is large enough, so that every thread gets work.
fn plan_jobs(builder: &TableBuilder<'_>, tables: &[Table], shard_bytes: u64) -> Vec<Job> {
    let mut jobs = Vec::new();
    for &table in tables {
        for (split, rows) in builder.splits(table) {
            if rows == 0 {
                continue;
            }
            let sample = builder.batch(table, split, 0..rows.min(SAMPLE_ROWS));
            let row_bytes = (data_bytes(&sample) / sample.num_rows() as u64).max(1);
            let by_size =
                (shard_bytes.saturating_mul(ASSUMED_COMPRESSION) / row_bytes).max(BATCH_ROWS);
            let by_count = rows.div_ceil(MIN_SHARDS).max(BATCH_ROWS);
            let per_shard = by_size.min(by_count);
            let count = rows.div_ceil(per_shard);
            for index in 0..count {
                let start = index * per_shard;
                jobs.push(Job {
                    table,
                    split,
                    index: index as u32,
                    rows: start..(start + per_shard).min(rows),
                });
            }
        }
    }
    jobs
}

/// Returns the bytes of the values in `batch`, without the spare capacity of its buffers.
fn data_bytes(batch: &RecordBatch) -> u64 {
    batch
        .columns()
        .iter()
        .map(|column| column.to_data().get_slice_memory_size().unwrap_or(0) as u64)
        .sum()
}

/// Writes every job's shard that is not already staged, on `options.threads` threads.
/// Returns all staged shards by table, and how many were kept from an earlier run.
fn write_shards(
    builder: &TableBuilder<'_>,
    jobs: &[Job],
    state_dir: &Path,
    shard_options: &ShardOptions,
    options: &RunOptions,
) -> Result<(Vec<(Table, FinishedShard)>, usize), BiosError> {
    let total_rows: u64 = jobs.iter().map(|j| j.rows.end - j.rows.start).sum();
    let bar = progress::rows_bar(total_rows, options.progress);
    bar.set_prefix("bios");

    let threads = options.threads.max(1);
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Mutex<Vec<(Table, FinishedShard, bool)>> = Mutex::new(Vec::new());
    let first_error: Mutex<Option<BiosError>> = Mutex::new(None);
    let fail = |error: BiosError| {
        failed.store(true, Ordering::Relaxed);
        first_error
            .lock()
            .expect("no thread panics holding the lock")
            .get_or_insert(error);
    };
    let keep = |table: Table, shard: FinishedShard, resumed: bool| {
        results
            .lock()
            .expect("no thread panics holding the lock")
            .push((table, shard, resumed));
    };

    std::thread::scope(|scope| {
        // Writers hand each written shard to one syncing thread, which fsyncs and renames it,
        // so that no writer leaves its CPU idle while the disk catches up.
        let (to_sync, written) = mpsc::sync_channel::<(Table, UnsyncedShard)>(threads);
        scope.spawn(|| {
            for (table, shard) in written {
                match shard.sync() {
                    Ok(shard) => keep(table, shard, false),
                    Err(error) => fail(error.into()),
                }
            }
        });

        for _ in 0..threads {
            let to_sync = to_sync.clone();
            let (next, failed, fail, keep, bar) = (&next, &failed, &fail, &keep, &bar);
            scope.spawn(move || {
                while !failed.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(i) else { break };
                    match write_job(builder, job, state_dir, shard_options, bar) {
                        Ok(JobShard::Staged(shard)) => keep(job.table, shard, true),
                        Ok(JobShard::Written(shard)) => to_sync
                            .send((job.table, shard))
                            .expect("the syncing thread runs until every writer has finished"),
                        Err(error) => fail(error),
                    }
                }
            });
        }
        drop(to_sync);
    });
    bar.finish_and_clear();

    if let Some(error) = first_error.into_inner().expect("threads have finished") {
        return Err(error);
    }
    let results = results.into_inner().expect("threads have finished");
    let resumed = results.iter().filter(|(_, _, resumed)| *resumed).count();
    Ok((
        results.into_iter().map(|(t, s, _)| (t, s)).collect(),
        resumed,
    ))
}

/// The shard of one job.
enum JobShard {
    /// Staged by an earlier run, which completed it.
    Staged(FinishedShard),
    /// Written now, and still waiting for its fsync and rename.
    Written(UnsyncedShard),
}

/// Writes one shard, or returns the staged one when an earlier run completed it.
fn write_job(
    builder: &TableBuilder<'_>,
    job: &Job,
    state_dir: &Path,
    shard_options: &ShardOptions,
    bar: &indicatif::ProgressBar,
) -> Result<JobShard, BiosError> {
    let dir = state_dir.join("shards").join(job.table.name());
    std::fs::create_dir_all(&dir).map_err(|source| BiosError::Io {
        path: dir.clone(),
        source,
    })?;
    let name = kenning_pipeline::sink::writer::staged_name(job.split, job.index);
    let staged = dir.join(&name);
    if staged.exists() {
        let shard = scan_shard(&staged, &job.table.schema(), job.split, job.index, |_| {})?;
        if shard.rows == job.rows.end - job.rows.start {
            bar.inc(shard.rows);
            return Ok(JobShard::Staged(shard));
        }
        return Err(SinkError::SchemaMismatch {
            path: staged,
            detail: format!(
                "it holds {} rows, the plan expects {}",
                shard.rows,
                job.rows.end - job.rows.start
            ),
        }
        .into());
    }

    let mut writer = ShardWriter::for_batches(
        &dir,
        job.split,
        job.table.schema(),
        shard_options.clone(),
        job.index,
        &job.table.column_settings(),
    )?;
    let mut start = job.rows.start;
    while start < job.rows.end {
        let end = (start + BATCH_ROWS).min(job.rows.end);
        let batch = builder.batch(job.table, job.split, start..end);
        writer.write_batch(&batch)?;
        bar.inc(end - start);
        start = end;
    }
    let shard = writer
        .finish_unsynced()?
        .expect("a job has at least one row");
    Ok(JobShard::Written(shard))
}

/// Returns the configuration as the state and the manifest store it, redacted.
fn recorded_config(config: &BiosConfig, output: &BiosOutput) -> Value {
    let mut value = serde_json::json!({
        "bios": config,
        "output": output,
        "generator_version": GENERATOR_VERSION,
    });
    secrets::redact(&mut value);
    value
}

/// Drops the settings that may differ on resume because they do not change the output.
fn fingerprinted(recorded: &Value) -> Value {
    let mut value = recorded.clone();
    if let Some(output) = value.get_mut("output").and_then(Value::as_object_mut) {
        output.remove("dir");
    }
    value
}

fn read_plan(path: &Path) -> Result<Vec<PlannedMove>, BiosError> {
    let bytes = std::fs::read(path).map_err(|source| BiosError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|e| BiosError::Io {
        path: path.to_path_buf(),
        source: e.into(),
    })
}

fn already_complete(paths: &StatePaths) -> Result<BiosSummary, BiosError> {
    let manifest_path = paths.dir.join("manifest.json");
    let bytes = std::fs::read(&manifest_path).map_err(|source| BiosError::Io {
        path: manifest_path.clone(),
        source,
    })?;
    let manifest: Value = serde_json::from_slice(&bytes).map_err(|e| BiosError::Io {
        path: manifest_path.clone(),
        source: e.into(),
    })?;
    let mut tables = BTreeMap::new();
    if let Some(map) = manifest["tables"].as_object() {
        for (name, table) in map {
            let shards = table["shards"].as_array().map_or(0, Vec::len);
            let rows = table["shards"]
                .as_array()
                .map_or(0, |s| s.iter().filter_map(|s| s["rows"].as_u64()).sum());
            tables.insert(name.clone(), (rows, shards));
        }
    }
    Ok(BiosSummary {
        out_dir: paths.dir.clone(),
        card_path: paths.dir.join("README.md"),
        manifest_path,
        tables,
        resumed_shards: 0,
        already_complete: true,
    })
}
