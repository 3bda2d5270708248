//! Runs a pipeline: checks the input, wires source, stages and sink with bounded channels,
//! then finalizes the shards and writes the manifest and the dataset card.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::card;
use crate::config::{InputConfig, OutputConfig};
use crate::fsutil;
use crate::input::{self, InputError, Item, Problem};
use crate::manifest::{self, ColumnEntry, InputSummary, MANIFEST_VERSION, Manifest};
use crate::progress;
use crate::record::{Record, RecordKey};
use crate::resume::{self, ResumeError, RunState, Start, StatePaths, Status};
use crate::schema::{RecordSchema, SchemaError};
use crate::secrets;
use crate::sink::finalize::{self, PlannedMove};
use crate::sink::{FinishedShard, ShardSink, SinkError, SinkStats};
use crate::stage::{
    DoneKeys, Provenance, SinkProgress, Stage, StageContext, StageError, StageReport,
};

/// The stage name of records read from the input.
pub const SOURCE_STAGE: &str = "source";
/// Invalid records listed in full in the error message; the rest are counted.
const LISTED_PROBLEMS: usize = 20;

/// Most records the sink takes from its channel at once.
const SINK_BATCH: usize = 256;

/// Failure of a run.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(
        "the input has {count} invalid record(s):\n{listing}\nFix them, or pass --skip-invalid \
         (input.skip_invalid = true) to write them to rejects.jsonl and go on"
    )]
    InvalidRecords { count: usize, listing: String },
    #[error(transparent)]
    Resume(#[from] ResumeError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Stage(#[from] StageError),
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error("a pipeline task panicked: {0}")]
    Task(String),
}

/// Result of a run: its counts and where its output is.
#[derive(Clone, Debug)]
pub struct RunSummary {
    pub out_dir: PathBuf,
    pub data_dir: PathBuf,
    pub manifest_path: PathBuf,
    pub card_path: PathBuf,
    pub rejects_path: Option<PathBuf>,
    pub documents: u64,
    pub rejected: u64,
    pub rows: u64,
    pub shards: usize,
    pub sink: SinkStats,
    pub stages: Vec<StageReport>,
    /// True when an earlier run with the same configuration had already finished.
    pub already_complete: bool,
}

/// Finalize step input besides the moves, kept in `finalize.json` so that a run
/// that crashes while moving shards can still write a complete manifest.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct FinalizeContext {
    moves: Vec<PlannedMove>,
    stages: Vec<StageReport>,
    sink: SinkStats,
    provenance: BTreeMap<String, Provenance>,
}

/// A configured pipeline run.
pub struct Engine {
    pub input: InputConfig,
    pub output: OutputConfig,
    /// The whole configuration, as the manifest records it. It is redacted before it is
    /// stored, and fingerprinted without `output.dir`, `output.channel_capacity` and the
    /// `unfingerprinted` settings.
    pub config: Value,
    /// Deletes an earlier run's output instead of continuing it.
    pub restart: bool,
    /// Draws progress bars on standard error when it is a terminal.
    pub progress: bool,
    /// Continues a complete run with the same configuration instead of returning at once, so
    /// that stages can add the records it lacks (augment's `--retry-failed`).
    pub reopen_complete: bool,
    /// JSON pointers into `config` of settings that may change between runs into one output
    /// folder, such as augment's token budget. They are set to null before fingerprinting.
    pub unfingerprinted: Vec<String>,
}

impl Engine {
    /// Runs `stages` over the input and returns where the output went.
    pub async fn run(self, stages: Vec<Box<dyn Stage>>) -> Result<RunSummary, EngineError> {
        self.output.validate().map_err(EngineError::Config)?;
        let schema = RecordSchema::new(stages.last().map(|s| s.columns()).unwrap_or_default())?;
        let pipeline = std::iter::once(SOURCE_STAGE)
            .chain(stages.iter().map(|s| s.name()))
            .collect::<Vec<_>>()
            .join(" → ");
        let provenance: BTreeMap<String, Provenance> = stages
            .iter()
            .map(|s| (s.name().to_string(), s.provenance()))
            .collect();

        let scan = {
            let input = self.input.clone();
            tokio::task::spawn_blocking(move || scan_input(&input))
                .await
                .map_err(|e| EngineError::Task(e.to_string()))??
        };
        if !scan.problems.is_empty() && !self.input.skip_invalid {
            return Err(invalid_records(&scan.problems));
        }

        let paths = StatePaths::new(&self.output.dir);
        let recorded_config = self.recorded_config();
        let compared = fingerprinted(&recorded_config, &self.unfingerprinted);
        let state = match paths.prepare(&compared, self.restart)? {
            Start::Complete(state) if self.reopen_complete => paths.reopen(state)?,
            Start::Complete(_) => return self.already_complete(&paths, &scan),
            Start::Fresh(state) | Start::Resume(state) => state,
        };
        if !paths.finalize_plan.exists() {
            // The shards of a reopened run go back to staging, where the sink finds them.
            finalize::restage(&paths.dir.join("data"), &paths.state_dir.join("shards"))?;
        }
        let rejects_path = write_rejects(&paths.dir, &scan.problems)?;

        let context = if paths.finalize_plan.exists() {
            tracing::info!("completing the shard moves of an interrupted run");
            read_finalize_context(&paths.finalize_plan)?
        } else {
            let (stage_reports, finished, sink_stats) = self
                .stream(stages, schema.clone(), &paths.state_dir, scan.documents)
                .await?;
            let context = FinalizeContext {
                moves: finalize::plan(&finished, &paths.dir.join("data")),
                stages: stage_reports,
                sink: sink_stats,
                provenance,
            };
            let json = serde_json::to_vec_pretty(&context).expect("finalize context serializes");
            fsutil::write_atomic(&paths.finalize_plan, &json).map_err(|source| SinkError::Io {
                path: paths.finalize_plan.clone(),
                source,
            })?;
            context
        };
        let shards = finalize::complete_moves(&context.moves)?;

        self.write_outputs(
            &paths,
            state,
            recorded_config,
            &schema,
            &scan,
            rejects_path.as_deref(),
            context,
            shards,
            &pipeline,
        )
    }

    /// Streams the input through the stages into the sink and returns the finished shards.
    async fn stream(
        &self,
        stages: Vec<Box<dyn Stage>>,
        schema: RecordSchema,
        state_dir: &Path,
        documents: u64,
    ) -> Result<(Vec<StageReport>, Vec<FinishedShard>, SinkStats), EngineError> {
        let capacity = self.output.channel_capacity;
        let totaled: BTreeMap<String, String> = stages
            .iter()
            .filter_map(|s| Some((s.name().to_string(), s.totaled_column()?.to_string())))
            .collect();
        let sink = {
            let state_dir = state_dir.to_path_buf();
            let options = self.output.shard_options();
            tokio::task::spawn_blocking(move || {
                ShardSink::open_with_totals(&state_dir, schema, options, totaled)
            })
            .await
            .map_err(|e| EngineError::Task(e.to_string()))??
        };
        let done = DoneKeys::new(sink.previous_keys());
        let stored = sink.stored_totals();
        if !done.is_empty() {
            tracing::info!(
                rows = done.len(),
                "resuming: rows of earlier runs are kept and not produced again"
            );
        }

        let bar = progress::documents_bar(documents, self.progress);
        bar.set_prefix("stream");

        let (source_tx, mut receiver) = mpsc::channel::<Record>(capacity);
        let progress = SinkProgress::default();
        let last = stages.len().saturating_sub(1);
        let mut stage_tasks = Vec::new();
        for (index, stage) in stages.into_iter().enumerate() {
            let (sender, next) = mpsc::channel::<Record>(capacity);
            let context = StageContext {
                input: receiver,
                output: sender,
                done: done.clone(),
                stored: stored.clone(),
                sink: (index == last).then(|| progress.clone()),
            };
            let name = stage.name();
            stage_tasks.push((name, tokio::spawn(stage.run(context))));
            receiver = next;
        }

        let sink_task = {
            let bar = bar.clone();
            tokio::task::spawn_blocking(move || -> Result<ShardSink, SinkError> {
                let mut sink = sink;
                // Records waiting in the channel are taken together, so a busy stage costs one
                // journal write and one wake-up per batch instead of one per record.
                let mut batch = Vec::with_capacity(SINK_BATCH);
                let mut written = 0u64;
                while receiver.blocking_recv_many(&mut batch, SINK_BATCH) > 0 {
                    sink.write_batch(&batch)?;
                    progress.advance(batch.len() as u64);
                    let before = written;
                    written += batch.len() as u64;
                    batch.clear();
                    if written / 1024 != before / 1024 {
                        bar.set_message(format!("{written} rows written"));
                    }
                }
                Ok(sink)
            })
        };

        let source_task = {
            let input = self.input.clone();
            let split = self.output.split.clone();
            let bar = bar.clone();
            tokio::task::spawn_blocking(move || send_documents(&input, &split, &source_tx, &bar))
        };

        let source_result = source_task
            .await
            .map_err(|e| EngineError::Task(e.to_string()))?;
        let mut reports = Vec::new();
        let mut stage_error = None;
        for (name, task) in stage_tasks {
            match task
                .await
                .map_err(|e| EngineError::Task(format!("stage {name}: {e}")))?
            {
                Ok(report) => reports.push(report),
                Err(error @ StageError::Failed { .. }) => {
                    stage_error.get_or_insert(error);
                }
                Err(closed @ StageError::Closed { .. }) => {
                    tracing::debug!(%closed, "stage stopped early");
                }
            }
        }
        let sink_result = sink_task
            .await
            .map_err(|e| EngineError::Task(e.to_string()))?;
        bar.finish_and_clear();

        source_result?;
        if let Some(error) = stage_error {
            return Err(error.into());
        }
        let sink = sink_result?;
        let stats = sink.stats().clone();
        let finished = tokio::task::spawn_blocking(move || sink.close())
            .await
            .map_err(|e| EngineError::Task(e.to_string()))??;
        Ok((reports, finished, stats))
    }

    /// Returns the configuration as the state and the manifest store it, redacted.
    fn recorded_config(&self) -> Value {
        let mut config = self.config.clone();
        secrets::redact(&mut config);
        config
    }

    fn already_complete(&self, paths: &StatePaths, scan: &Scan) -> Result<RunSummary, EngineError> {
        let manifest_path = paths.dir.join("manifest.json");
        let manifest: Value = std::fs::read(&manifest_path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(|| ResumeError::CorruptState {
                path: manifest_path.clone(),
                message: "the run state is complete but the manifest is missing or unreadable"
                    .into(),
            })?;
        let shards = manifest["shards"].as_array().map_or(0, Vec::len);
        let rows = manifest["shards"]
            .as_array()
            .map_or(0, |s| s.iter().filter_map(|s| s["rows"].as_u64()).sum());
        let rejects = paths.dir.join("rejects.jsonl");
        Ok(RunSummary {
            data_dir: paths.dir.join("data"),
            card_path: paths.dir.join("README.md"),
            manifest_path,
            rejects_path: rejects.exists().then_some(rejects),
            out_dir: paths.dir.clone(),
            documents: scan.documents,
            rejected: scan.problems.len() as u64,
            rows,
            shards,
            sink: SinkStats::default(),
            stages: Vec::new(),
            already_complete: true,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn write_outputs(
        &self,
        paths: &StatePaths,
        mut state: RunState,
        config: Value,
        schema: &RecordSchema,
        scan: &Scan,
        rejects_path: Option<&Path>,
        context: FinalizeContext,
        shards: Vec<FinishedShard>,
        pipeline: &str,
    ) -> Result<RunSummary, EngineError> {
        let (shard_entries, splits) = manifest::shard_entries(&paths.dir, &shards);
        let usage = context
            .stages
            .iter()
            .filter_map(|r| r.usage.clone())
            .reduce(|mut total, usage| {
                total.prompt_tokens += usage.prompt_tokens;
                total.completion_tokens += usage.completion_tokens;
                total.cost_usd = match (total.cost_usd, usage.cost_usd) {
                    (Some(a), Some(b)) => Some(a + b),
                    (a, b) => a.or(b),
                };
                total
            });

        let manifest = Manifest {
            manifest_version: MANIFEST_VERSION,
            kenning_version: env!("CARGO_PKG_VERSION").to_string(),
            fingerprint: state.fingerprint.clone(),
            started_at: state.started_at.clone(),
            finished_at: resume::now_rfc3339(),
            attempts: state.attempts,
            config,
            input: InputSummary {
                path: self.input.path.display().to_string(),
                format: scan.format.clone(),
                documents: scan.documents,
                rejected: scan.problems.len() as u64,
                rejects_file: rejects_path.map(|_| "rejects.jsonl".to_string()),
            },
            provenance: context.provenance.clone(),
            stages: context.stages.clone(),
            usage,
            sink: context.sink.clone(),
            columns: schema
                .describe()
                .into_iter()
                .map(|(name, dtype, description)| ColumnEntry {
                    name,
                    dtype: dtype.to_string(),
                    description,
                })
                .collect(),
            splits,
            shards: shard_entries,
        };

        let io_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SinkError::Io { path, source }
        };
        let manifest_path = paths.dir.join("manifest.json");
        let manifest_json = serde_json::to_vec_pretty(&manifest).expect("the manifest serializes");
        fsutil::write_atomic(&manifest_path, &manifest_json).map_err(io_error(&manifest_path))?;
        let card_path = paths.dir.join("README.md");
        let card = card::render(&manifest, &self.output.license, pipeline);
        fsutil::write_atomic(&card_path, card.as_bytes()).map_err(io_error(&card_path))?;

        state.status = Status::Complete;
        paths.save(&state)?;
        for leftover in ["wal", "shards"] {
            let dir = paths.state_dir.join(leftover);
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(io_error(&dir))?;
            }
        }
        if paths.finalize_plan.exists() {
            std::fs::remove_file(&paths.finalize_plan).map_err(io_error(&paths.finalize_plan))?;
        }

        Ok(RunSummary {
            out_dir: paths.dir.clone(),
            data_dir: paths.dir.join("data"),
            manifest_path,
            card_path,
            rejects_path: rejects_path.map(Path::to_path_buf),
            documents: scan.documents,
            rejected: scan.problems.len() as u64,
            rows: manifest.total_rows(),
            shards: shards.len(),
            sink: context.sink,
            stages: context.stages,
            already_complete: false,
        })
    }
}

/// Result of the pass that checks the whole input before anything is written.
struct Scan {
    format: String,
    documents: u64,
    problems: Vec<Problem>,
}

fn scan_input(input: &InputConfig) -> Result<Scan, EngineError> {
    let format = input::detect_format(input)?;
    let mut documents = 0;
    let mut problems = Vec::new();
    for item in input::open(input)? {
        match item? {
            Item::Valid(_) => documents += 1,
            Item::Rejected(problem) => problems.push(problem),
        }
    }
    let format = serde_json::to_value(format)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    tracing::debug!(documents, rejected = problems.len(), %format, "input checked");
    Ok(Scan {
        format,
        documents,
        problems,
    })
}

fn invalid_records(problems: &[Problem]) -> EngineError {
    let mut listing: Vec<String> = problems
        .iter()
        .take(LISTED_PROBLEMS)
        .map(|p| format!("  {p}"))
        .collect();
    if problems.len() > LISTED_PROBLEMS {
        listing.push(format!(
            "  ... and {} more",
            problems.len() - LISTED_PROBLEMS
        ));
    }
    EngineError::InvalidRecords {
        count: problems.len(),
        listing: listing.join("\n"),
    }
}

/// Writes every rejected record with its reason to `rejects.jsonl`, replacing any earlier file.
fn write_rejects(dir: &Path, problems: &[Problem]) -> Result<Option<PathBuf>, EngineError> {
    let path = dir.join("rejects.jsonl");
    if problems.is_empty() {
        if path.exists() {
            std::fs::remove_file(&path).map_err(|source| SinkError::Io {
                path: path.clone(),
                source,
            })?;
        }
        return Ok(None);
    }

    let mut lines = Vec::new();
    for problem in problems {
        let line = serde_json::json!({
            "source": problem.origin.to_string(),
            "file": problem.origin.file,
            "location": problem.origin.location,
            "reason": problem.reason,
            "raw": problem.raw,
        });
        serde_json::to_writer(&mut lines, &line).expect("a reject serializes");
        lines.push(b'\n');
    }
    fsutil::write_atomic(&path, &lines).map_err(|source| SinkError::Io {
        path: path.clone(),
        source,
    })?;
    tracing::warn!(rejected = problems.len(), file = %path.display(), "invalid records were written to the rejects file");
    Ok(Some(path))
}

/// Reads the input again and sends each valid document into the pipeline.
fn send_documents(
    input: &InputConfig,
    split: &str,
    sender: &mpsc::Sender<Record>,
    bar: &indicatif::ProgressBar,
) -> Result<(), EngineError> {
    for item in input::open(input)? {
        let Item::Valid(doc) = item? else {
            continue;
        };
        let record = Record {
            key: RecordKey::new(doc.id, SOURCE_STAGE, "original", 0),
            split: split.to_string(),
            source: doc.origin.to_string(),
            title: doc.title,
            text: doc.text,
            fields: Vec::new(),
        };
        if sender.blocking_send(record).is_err() {
            break;
        }
        bar.inc(1);
    }
    Ok(())
}

fn read_finalize_context(path: &Path) -> Result<FinalizeContext, EngineError> {
    let bytes = std::fs::read(path).map_err(|source| SinkError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        ResumeError::CorruptState {
            path: path.to_path_buf(),
            message: format!("unreadable finalize plan ({e})"),
        }
        .into()
    })
}

/// Removes the settings that do not change the output, so that they may differ on resume.
fn fingerprinted(config: &Value, unfingerprinted: &[String]) -> Value {
    let mut config = config.clone();
    if let Some(output) = config.get_mut("output").and_then(Value::as_object_mut) {
        output.remove("dir");
        output.remove("channel_capacity");
    }
    // Null instead of removal keeps the fingerprint of folders written while the setting was
    // null, as augment's token budget was by default.
    for pointer in unfingerprinted {
        if let Some(value) = config.pointer_mut(pointer) {
            *value = Value::Null;
        }
    }
    config
}
