//! The augment stage's run loop: plans the requests of each document, sends them through the
//! provider with a bounded number of documents in flight, and turns each response into a row
//! or a line of the failures file.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;

use kenning_pipeline::record::{Cell, Record, RecordKey};
use kenning_pipeline::stage::{SinkProgress, StageContext, StageError, StageReport, Usage};
use serde_json::json;
use tokio::task::JoinSet;

use crate::cache::request_key;
use crate::entigraph::{self, EntityStore, Extraction};
use crate::failures::FailureLog;
use crate::progress::Progress;
use crate::provider::{RequestFailure, Slot, Success};
use crate::stage::{AugmentStage, STAGE};
use crate::template::PromptTemplate;

/// Purpose of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Purpose {
    /// A row of the dataset; `entities` is set for entity-graph relation texts.
    Row { entities: Option<String> },
    /// The entity extraction of the document, kept in `entities.jsonl`.
    Extraction,
}

/// One request and what it is for.
struct Job {
    /// The input document, shared by all its requests.
    source: Arc<Record>,
    key: RecordKey,
    request_key: String,
    purpose: Purpose,
}

/// The state of one run of the stage.
struct Run {
    stage: AugmentStage,
    context: StageContext,
    tasks: JoinSet<(Job, Result<Success, RequestFailure>, Slot)>,
    failures: FailureLog,
    entities: Option<EntityStore>,
    report: StageReport,
    usage: Usage,
    progress: Progress,
    /// Completion tokens stored in the output folder by template, earlier runs' included, for
    /// the token budget.
    produced: BTreeMap<String, u64>,
    budget_share: Option<u64>,
    budget_skipped: u64,
    /// Keys that failed in this run.
    failed_now: HashSet<String>,
    /// Rows sent to the output channel so far.
    rows_sent: u64,
    /// The concurrency slots of rows sent but not yet journaled by the sink, with the count of
    /// rows sent once each was sent. A slot is freed when the sink has journaled its row, so
    /// requests in flight plus responses a crash would lose stay within the concurrency.
    unjournaled: VecDeque<(u64, Slot)>,
}

/// Runs the stage until its input closes and every request has finished.
pub(crate) async fn run(
    stage: AugmentStage,
    context: StageContext,
) -> Result<StageReport, StageError> {
    let failures = FailureLog::open(STAGE, &stage.failures_path)?;
    let entities = match &stage.entity_graph {
        Some(setup) => Some(EntityStore::open(STAGE, &setup.store)?),
        None => None,
    };
    let planned = stage
        .planned_documents
        .filter(|_| stage.entity_graph.is_none())
        .map(|documents| documents * stage.templates.len() as u64 * u64::from(stage.samples));
    let progress = Progress::new(stage.progress, planned);
    let budget_share = stage
        .token_budget
        .map(|budget| budget / stage.budgeted_templates().len().max(1) as u64);
    let produced = stored_tokens(&stage, &context);
    let mut run = Run {
        stage,
        context,
        tasks: JoinSet::new(),
        failures,
        entities,
        report: StageReport {
            stage: STAGE.into(),
            ..StageReport::default()
        },
        usage: Usage::default(),
        progress,
        produced,
        budget_share,
        budget_skipped: 0,
        failed_now: HashSet::new(),
        rows_sent: 0,
        unjournaled: VecDeque::new(),
    };

    // Documents are taken from the input only while few requests are in flight, so that memory
    // stays bounded and an interrupted run loses little.
    let in_flight_limit = run.stage.provider.config().concurrency * 2;
    let mut input_open = true;
    while input_open || !run.tasks.is_empty() {
        run.free_journaled_slots();
        let waiting_for_sink = !run.unjournaled.is_empty();
        tokio::select! {
            received = run.context.input.recv(), if input_open && run.tasks.len() < in_flight_limit => {
                match received {
                    Some(record) => run.plan_document(record)?,
                    None => input_open = false,
                }
            }
            Some(joined) = run.tasks.join_next(), if !run.tasks.is_empty() => {
                let (job, result, slot) = joined.map_err(|e| failed(e.to_string()))?;
                run.finish(job, result, slot).await?;
            }
            () = sink_changed(run.context.sink.as_ref()), if waiting_for_sink => {}
            () = run.context.output.closed(), if waiting_for_sink => {
                return Err(StageError::Closed { stage: STAGE.into() });
            }
        }
    }
    run.close()
}

impl Run {
    /// Plans every request of one input document.
    fn plan_document(&mut self, record: Record) -> Result<(), StageError> {
        self.report.records_in += 1;
        let record = Arc::new(record);
        let templates = self.stage.templates.clone();
        for template in templates.iter() {
            for sample in 0..self.stage.samples {
                let key = RecordKey::new(
                    record.key.doc_id.clone(),
                    STAGE,
                    template.name.clone(),
                    sample,
                );
                self.plan(
                    &record,
                    template,
                    key,
                    &[],
                    sample,
                    Purpose::Row { entities: None },
                )?;
            }
        }

        let Some(setup) = self.stage.entity_graph.clone() else {
            return Ok(());
        };
        let stored = self
            .entities
            .as_ref()
            .and_then(|store| store.get(&record.key.doc_id))
            .cloned();
        match stored {
            Some(extraction) => self.plan_relations(&record, &extraction),
            None => {
                let key = RecordKey::new(record.key.doc_id.clone(), STAGE, entigraph::EXTRACT, 0);
                self.plan(&record, &setup.extract, key, &[], 0, Purpose::Extraction)
            }
        }
    }

    /// Plans the relation requests of a document whose entities are known.
    fn plan_relations(
        &mut self,
        record: &Arc<Record>,
        extraction: &Extraction,
    ) -> Result<(), StageError> {
        let setup = self
            .stage
            .entity_graph
            .clone()
            .expect("relations are planned only with the entity graph");
        let kinds = [
            (setup.pair, 2, setup.counts.pairs),
            (setup.triple, 3, setup.counts.triples),
        ];
        for (template, size, count) in kinds {
            let Some(template) = template else { continue };
            let chosen = entigraph::choose(&record.key.doc_id, &extraction.entities, size, count);
            for (index, group) in chosen.iter().enumerate() {
                let entities = group.join(entigraph::SEPARATOR);
                for sample in 0..self.stage.samples {
                    // Each group has `samples` consecutive sample indices.
                    let key = RecordKey::new(
                        record.key.doc_id.clone(),
                        STAGE,
                        template.name.clone(),
                        index as u32 * self.stage.samples + sample,
                    );
                    let extra = [
                        ("summary", extraction.summary.as_str()),
                        ("entities", entities.as_str()),
                    ];
                    let purpose = Purpose::Row {
                        entities: Some(entities.clone()),
                    };
                    self.plan(record, &template, key, &extra, sample, purpose)?;
                }
            }
        }
        Ok(())
    }

    /// Sends one request unless an earlier run stored or failed it, or the budget is spent.
    fn plan(
        &mut self,
        record: &Arc<Record>,
        template: &PromptTemplate,
        key: RecordKey,
        extra: &[(&str, &str)],
        sample: u32,
        purpose: Purpose,
    ) -> Result<(), StageError> {
        if self.stage.planned_documents.is_none() || self.stage.entity_graph.is_some() {
            self.progress.plan(1);
        }
        let key_text = key.to_string();
        let stored = purpose != Purpose::Extraction && self.context.done.contains(&key);
        let failed_before = !self.stage.retry_failed && self.failures.failed_before(&key_text);
        if stored || failed_before {
            self.report.skipped_done += 1;
            self.progress.skip(1);
            return Ok(());
        }
        let spent = self.produced.get(&template.name).copied().unwrap_or(0);
        if purpose != Purpose::Extraction && self.budget_share.is_some_and(|share| spent >= share) {
            self.budget_skipped += 1;
            self.progress.skip(1);
            return Ok(());
        }

        let body = self.stage.body(template, record, extra, sample)?;
        let config = self.stage.provider.config();
        let request_key = request_key(&config.model, config.endpoint, &body, key.sample);
        let estimate = estimate_tokens(&body, self.stage.sampling.max_tokens);
        self.failures.resend(&key_text);

        let provider = self.stage.provider.clone();
        let job = Job {
            source: Arc::clone(record),
            key,
            request_key,
            purpose,
        };
        self.tasks.spawn(async move {
            let (result, slot) = provider.complete_in_slot(&body, estimate).await;
            (job, result, slot)
        });
        Ok(())
    }

    /// Turns a finished request into a row, an extraction or a failure.
    async fn finish(
        &mut self,
        job: Job,
        result: Result<Success, RequestFailure>,
        slot: Slot,
    ) -> Result<(), StageError> {
        let success = match result {
            Ok(success) => success,
            Err(failure) => {
                self.progress.finish_request(0, None);
                return self.record_failure(&job, &failure);
            }
        };
        let tokens = success.completion.usage;
        let cost = match (self.stage.price, tokens) {
            (Some(price), Some(tokens)) => Some(price.cost(tokens)),
            _ => None,
        };
        if let Some(tokens) = tokens {
            self.usage.prompt_tokens += tokens.prompt;
            self.usage.completion_tokens += tokens.completion;
        }
        if let Some(cost) = cost {
            *self.usage.cost_usd.get_or_insert(0.0) += cost;
        }
        self.progress
            .finish_request(tokens.map_or(0, |t| t.prompt + t.completion), cost);

        match job.purpose.clone() {
            Purpose::Extraction => self.store_extraction(&job, &success),
            Purpose::Row { entities } => {
                // Without `usage`, about four characters make a token.
                let generated =
                    tokens.map_or(success.completion.text.len() as u64 / 4, |t| t.completion);
                *self.produced.entry(job.key.variant.clone()).or_default() += generated;
                self.send_row(job, success, cost, entities).await?;
                self.rows_sent += 1;
                // Without a sink behind this stage, nothing reports journaled rows.
                if self.context.sink.is_some() {
                    self.unjournaled.push_back((self.rows_sent, slot));
                }
                Ok(())
            }
        }
    }

    /// Frees the slots of the rows that the sink has journaled.
    fn free_journaled_slots(&mut self) {
        let Some(sink) = &self.context.sink else {
            return;
        };
        let journaled = sink.journaled();
        while self
            .unjournaled
            .front()
            .is_some_and(|(sent, _)| *sent <= journaled)
        {
            self.unjournaled.pop_front();
        }
    }

    /// Keeps the entities of a successful extraction and plans the document's relations.
    fn store_extraction(&mut self, job: &Job, success: &Success) -> Result<(), StageError> {
        let parsed = entigraph::parse_extraction(
            &job.source.key.doc_id,
            &job.source.text,
            &success.completion.text,
        );
        let extraction = match parsed {
            Ok(extraction) => extraction,
            Err(error) => {
                let failure = RequestFailure {
                    reason: "invalid_extraction".into(),
                    status: Some(200),
                    attempts: success.attempts,
                    detail: error.to_string(),
                };
                return self.record_failure(job, &failure);
            }
        };
        tracing::debug!(doc_id = %extraction.doc_id, entities = extraction.entities.len(), "entities extracted");
        self.entities
            .as_mut()
            .expect("extractions are sent only with the entity graph")
            .insert(STAGE, extraction.clone())?;
        self.plan_relations(&job.source, &extraction)
    }

    /// Sends one generated row to the sink.
    async fn send_row(
        &mut self,
        job: Job,
        success: Success,
        cost: Option<f64>,
        entities: Option<String>,
    ) -> Result<(), StageError> {
        let completion = success.completion;
        let tokens = completion.usage;
        let to_cell = |v: Option<u64>| {
            v.map_or(Cell::Null, |n| {
                Cell::UInt32(n.min(u64::from(u32::MAX)) as u32)
            })
        };
        let mut fields = vec![
            (
                "model".into(),
                completion.model.map_or(Cell::Null, Cell::Utf8),
            ),
            (
                "finish_reason".into(),
                completion.finish_reason.map_or(Cell::Null, Cell::Utf8),
            ),
            ("prompt_tokens".into(), to_cell(tokens.map(|t| t.prompt))),
            (
                "completion_tokens".into(),
                to_cell(tokens.map(|t| t.completion)),
            ),
            ("cached_tokens".into(), to_cell(tokens.map(|t| t.cached))),
            ("cost_usd".into(), cost.map_or(Cell::Null, Cell::Float64)),
            ("attempts".into(), Cell::UInt32(success.attempts)),
            ("request_key".into(), Cell::Utf8(job.request_key)),
        ];
        if self.stage.entity_graph.is_some() {
            fields.push(("entities".into(), entities.map_or(Cell::Null, Cell::Utf8)));
        }
        let record = Record {
            key: job.key,
            split: job.source.split.clone(),
            source: job.source.source.clone(),
            title: job.source.title.clone(),
            text: completion.text,
            fields,
        };
        if self.context.output.send(record).await.is_err() {
            return Err(StageError::Closed {
                stage: STAGE.into(),
            });
        }
        self.report.records_out += 1;
        Ok(())
    }

    /// Writes a failed request to the failures file.
    fn record_failure(&mut self, job: &Job, failure: &RequestFailure) -> Result<(), StageError> {
        self.report.failed += 1;
        let key = job.key.to_string();
        tracing::warn!(key = %key, reason = %failure.reason, attempts = failure.attempts, "request failed; recorded in the failures file");
        let line = json!({
            "key": key,
            "doc_id": job.key.doc_id,
            "template": job.key.variant,
            "sample": job.key.sample,
            "request_key": job.request_key,
            "reason": failure.reason,
            "status": failure.status,
            "attempts": failure.attempts,
            "detail": failure.detail,
        });
        self.failures.append(&line)?;
        self.failed_now.insert(key);
        Ok(())
    }

    /// Ends the run: rewrites the failures file after a retry and returns the report.
    fn close(mut self) -> Result<StageReport, StageError> {
        self.progress.clear();
        if self.budget_skipped > 0 {
            tracing::info!(
                requests = self.budget_skipped,
                budget = self.stage.token_budget,
                "token budget reached; requests not sent"
            );
        }
        self.failures.compact(&self.failed_now)?;
        self.report.usage = Some(self.usage);
        Ok(self.report)
    }
}

/// Returns the completion tokens of the rows that earlier runs stored, by budgeted template.
///
/// A row stored without `usage` (its `completion_tokens` is null) counts as `max_tokens`, the
/// most it can hold, because its text is not read back. This is an upper bound, so a resumed
/// run stops no later than the budget allows. During a run such a response counts as a token
/// per four characters of its text instead, so a resumed run may stop earlier than an
/// uninterrupted one would.
fn stored_tokens(stage: &AugmentStage, context: &StageContext) -> BTreeMap<String, u64> {
    let mut tokens = BTreeMap::new();
    let mut rows_without_usage = 0;
    for template in stage.budgeted_templates() {
        let total = context.stored.get(STAGE, template);
        let spent = total.sum + total.nulls * u64::from(stage.sampling.max_tokens);
        rows_without_usage += total.nulls;
        if spent > 0 {
            tokens.insert(template.to_string(), spent);
        }
    }
    if stage.token_budget.is_none() || tokens.is_empty() {
        return tokens;
    }

    tracing::info!(
        completion_tokens = tokens.values().sum::<u64>(),
        "token budget: counting the completion tokens that earlier runs stored"
    );
    if rows_without_usage > 0 {
        tracing::warn!(
            rows = rows_without_usage,
            max_tokens = stage.sampling.max_tokens,
            "token budget: stored rows without usage count as max_tokens each"
        );
    }
    tokens
}

/// Estimates a request's tokens before sending: about four characters a token for the prompt,
/// plus the completion limit. The rate limiter only needs the order of magnitude.
fn estimate_tokens(body: &serde_json::Value, max_tokens: u32) -> u32 {
    let mut length = ByteCount(0);
    serde_json::to_writer(&mut length, body).expect("counting bytes cannot fail");
    (length.0 / 4) as u32 + max_tokens
}

/// Counts the bytes written to it.
struct ByteCount(usize);

impl std::io::Write for ByteCount {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0 += bytes.len();
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Waits for the sink to journal more records; never returns without a sink.
async fn sink_changed(sink: Option<&SinkProgress>) {
    match sink {
        Some(sink) => sink.changed().await,
        None => std::future::pending().await,
    }
}

fn failed(message: String) -> StageError {
    StageError::Failed {
        stage: STAGE.into(),
        message,
    }
}
