//! The stage interface: a task that reads records from one bounded channel and writes records
//! to the next.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc};

use crate::record::{Record, RecordKey};
use crate::schema::Column;

/// A boxed future, so that stages of different types fit in one pipeline.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Keys that earlier runs already stored. A stage whose records are expensive (an LLM call)
/// checks it before doing the work; the sink skips such records in any case.
#[derive(Clone, Debug, Default)]
pub struct DoneKeys(Arc<HashSet<u128>>);

impl DoneKeys {
    pub fn new(digests: Arc<HashSet<u128>>) -> Self {
        Self(digests)
    }

    pub fn contains(&self, key: &RecordKey) -> bool {
        !self.0.is_empty() && self.0.contains(&key.digest())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Sum of a numeric column over some rows, and the number of those rows where it is null.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ColumnTotal {
    pub sum: u64,
    pub nulls: u64,
}

impl ColumnTotal {
    /// Adds one row's value.
    pub fn add(&mut self, value: Option<u64>) {
        match value {
            Some(value) => self.sum += value,
            None => self.nulls += 1,
        }
    }
}

/// Totals of the column that a stage names in [`Stage::totaled_column`], over the rows that
/// earlier runs stored, by stage and variant.
#[derive(Clone, Debug, Default)]
pub struct StoredTotals(Arc<HashMap<(String, String), ColumnTotal>>);

impl StoredTotals {
    pub fn new(totals: HashMap<(String, String), ColumnTotal>) -> Self {
        Self(Arc::new(totals))
    }

    /// Returns the total of the rows with this stage and variant; zero when there are none.
    pub fn get(&self, stage: &str, variant: &str) -> ColumnTotal {
        self.0
            .get(&(stage.to_string(), variant.to_string()))
            .copied()
            .unwrap_or_default()
    }
}

/// The count of records the sink has taken from its channel and journaled, so that the stage
/// feeding it can bound the records a crash would lose: those sent but not yet journaled.
#[derive(Clone, Debug, Default)]
pub struct SinkProgress(Arc<ProgressState>);

#[derive(Debug, Default)]
struct ProgressState {
    journaled: AtomicU64,
    changed: Notify,
}

impl SinkProgress {
    /// Returns the number of records journaled so far.
    pub fn journaled(&self) -> u64 {
        self.0.journaled.load(Ordering::Acquire)
    }

    /// Counts `records` more as journaled and wakes the waiting stage.
    pub fn advance(&self, records: u64) {
        self.0.journaled.fetch_add(records, Ordering::AcqRel);
        self.0.changed.notify_one();
    }

    /// Waits until the count advances. It may return early, so callers read the count again.
    pub async fn changed(&self) {
        self.0.changed.notified().await;
    }
}

/// The channels and shared state a stage runs with.
pub struct StageContext {
    pub input: mpsc::Receiver<Record>,
    pub output: mpsc::Sender<Record>,
    pub done: DoneKeys,
    /// Totals of the stage's [`Stage::totaled_column`] over the rows of earlier runs.
    pub stored: StoredTotals,
    /// Set for the last stage, whose output channel leads to the sink.
    pub sink: Option<SinkProgress>,
}

/// Token counts and cost of the model calls a stage made.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Cost in US dollars, when the provider's prices are known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
}

/// Provenance of a stage's output: prompts, model, sampling and settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// SHA-256 of each prompt template used, by template name.
    pub prompts: BTreeMap<String, String>,
    pub model: Option<String>,
    pub sampling: Option<serde_json::Value>,
    pub seed: Option<u64>,
    /// The stage's other settings.
    pub settings: serde_json::Value,
}

/// Counts of one stage's work in this run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StageReport {
    pub stage: String,
    pub records_in: u64,
    pub records_out: u64,
    /// Records not produced because an earlier run stored them.
    pub skipped_done: u64,
    /// Records that could not be produced (for `augment`: requests that failed for good).
    #[serde(default)]
    pub failed: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

/// Failure of a stage.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("stage `{stage}` failed: {message}")]
    Failed { stage: String, message: String },
    /// The next stage or the sink stopped reading, because it failed.
    #[error("stage `{stage}` stopped because the next stage or the sink stopped")]
    Closed { stage: String },
}

/// A step of the pipeline.
pub trait Stage: Send {
    /// Short name, used in record keys and logs; lowercase letters, digits and `-`.
    fn name(&self) -> &'static str;

    /// Stage-specific columns of the records this stage emits.
    fn columns(&self) -> Vec<Column>;

    /// Settings, prompts and model that the manifest records for this stage.
    fn provenance(&self) -> Provenance;

    /// Names an integer column of this stage's rows (UInt32 or UInt64) that the engine sums by
    /// variant over the rows that earlier runs stored, and hands over in
    /// [`StageContext::stored`]. Augment counts its token budget across runs with it.
    fn totaled_column(&self) -> Option<&'static str> {
        None
    }

    /// Consumes `context.input` until it closes, sending results to `context.output`.
    fn run(self: Box<Self>, context: StageContext) -> BoxFuture<Result<StageReport, StageError>>;
}
