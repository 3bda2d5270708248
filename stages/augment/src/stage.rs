//! The augment stage: every document, rewritten `samples` times with every chosen prompt
//! template, through the [`Provider`].
//!
//! A record's key is (document id, `augment`, template name, sample index), so a resumed run
//! sends no request whose response is already stored. Failed requests go to a failures file,
//! never into the dataset, and are not sent again unless `retry_failed` is set.

use std::collections::{BTreeMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use kenning_pipeline::record::{Cell, Record, RecordKey};
use kenning_pipeline::schema::{Column, ColumnType};
use kenning_pipeline::stage::{
    BoxFuture, Provenance, Stage, StageContext, StageError, StageReport, Usage,
};
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::outcome::Endpoint;
use crate::provider::{Provider, RequestFailure, Success};
use crate::template::{PromptTemplate, Values};

const STAGE: &str = "augment";

/// Sampling settings sent with every request.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Sampling {
    pub temperature: f64,
    pub top_p: Option<f64>,
    pub max_tokens: u32,
    /// Base seed; sample `i` is sent with `seed + i`, so samples differ but repeat across runs
    /// on servers that honour seeds.
    pub seed: Option<u64>,
    pub stop: Vec<String>,
}

/// The augment stage.
pub struct AugmentStage {
    provider: Arc<Provider>,
    templates: Vec<PromptTemplate>,
    samples: u32,
    sampling: Sampling,
    failures_path: PathBuf,
    retry_failed: bool,
    token_budget: Option<u64>,
}

impl AugmentStage {
    /// Stops sending new requests for a template once the completions of this run reached its
    /// share of `budget` tokens: the budget is split evenly across the templates. Requests in
    /// flight still finish, so a share can be exceeded by at most their `max_tokens`.
    ///
    /// NOTE: the budget counts the tokens of this run only; a resumed run starts counting
    /// from zero.
    pub fn with_token_budget(mut self, budget: Option<u64>) -> Self {
        self.token_budget = budget;
        self
    }

    pub fn new(
        provider: Provider,
        templates: Vec<PromptTemplate>,
        samples: u32,
        sampling: Sampling,
        failures_path: PathBuf,
        retry_failed: bool,
    ) -> Self {
        Self {
            provider: Arc::new(provider),
            templates,
            samples,
            sampling,
            failures_path,
            retry_failed,
            token_budget: None,
        }
    }

    fn body(
        &self,
        template: &PromptTemplate,
        record: &Record,
        sample: u32,
    ) -> Result<Value, StageError> {
        let title = record.title.as_deref().unwrap_or("");
        let values = Values::new(title, &record.text);
        let render_error = |e: crate::template::TemplateError| StageError::Failed {
            stage: STAGE.into(),
            message: e.to_string(),
        };
        let mut body = match self.provider.config().endpoint {
            Endpoint::Chat => json!({
                "messages": [
                    {"role": "system", "content": template.system.render(&template.name, &values).map_err(render_error)?},
                    {"role": "user", "content": template.user.render(&template.name, &values).map_err(render_error)?},
                ],
            }),
            Endpoint::Completions => json!({
                "prompt": template.completion.render(&template.name, &values).map_err(render_error)?,
            }),
        };
        body["temperature"] = json!(self.sampling.temperature);
        body["max_tokens"] = json!(self.sampling.max_tokens);
        if let Some(top_p) = self.sampling.top_p {
            body["top_p"] = json!(top_p);
        }
        if let Some(seed) = self.sampling.seed {
            body["seed"] = json!(seed + u64::from(sample));
        }
        if !self.sampling.stop.is_empty() {
            body["stop"] = json!(self.sampling.stop);
        }
        Ok(body)
    }
}

/// Reads the keys of requests that failed in earlier runs.
fn failed_keys(path: &PathBuf) -> HashSet<String> {
    let Ok(file) = File::open(path) else {
        return HashSet::new();
    };
    BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter_map(|line| serde_json::from_str::<Value>(&line).ok())
        .filter_map(|v| v["key"].as_str().map(str::to_string))
        .collect()
}

/// Estimates a request's tokens before sending: about four characters a token for the prompt,
/// plus the completion limit. The rate limiter only needs the order of magnitude.
fn estimate_tokens(body: &Value, max_tokens: u32) -> u32 {
    let characters = body.to_string().len() as u32;
    characters / 4 + max_tokens
}

impl Stage for AugmentStage {
    fn name(&self) -> &'static str {
        STAGE
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::new(
                "model",
                ColumnType::Utf8,
                true,
                "Model that wrote the text, as the server reported it.",
            ),
            Column::new(
                "finish_reason",
                ColumnType::Utf8,
                true,
                "Why generation stopped, as the server reported it.",
            ),
            Column::new(
                "prompt_tokens",
                ColumnType::UInt32,
                true,
                "Prompt tokens; null when the server sent no usage.",
            ),
            Column::new(
                "completion_tokens",
                ColumnType::UInt32,
                true,
                "Completion tokens; null when the server sent no usage.",
            ),
            Column::new(
                "attempts",
                ColumnType::UInt32,
                false,
                "Requests sent for this row, retries included.",
            ),
        ]
    }

    fn provenance(&self) -> Provenance {
        let config = self.provider.config();
        Provenance {
            prompts: self
                .templates
                .iter()
                .map(|t| (t.name.clone(), t.sha256.clone()))
                .collect::<BTreeMap<_, _>>(),
            model: Some(config.model.clone()),
            sampling: serde_json::to_value(&self.sampling).ok(),
            seed: self.sampling.seed,
            settings: json!({
                "samples": self.samples,
                "endpoint": match config.endpoint { Endpoint::Chat => "chat", Endpoint::Completions => "completions" },
                "keep_truncated": config.keep_truncated,
            }),
        }
    }

    fn run(
        self: Box<Self>,
        mut context: StageContext,
    ) -> BoxFuture<Result<StageReport, StageError>> {
        Box::pin(async move {
            let stage = *self;
            let failed_before = if stage.retry_failed {
                HashSet::new()
            } else {
                failed_keys(&stage.failures_path)
            };
            let failures = Arc::new(Mutex::new(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&stage.failures_path)
                    .map_err(|e| StageError::Failed {
                        stage: STAGE.into(),
                        message: format!("cannot open {}: {e}", stage.failures_path.display()),
                    })?,
            ));
            let mut report = StageReport {
                stage: STAGE.into(),
                ..StageReport::default()
            };
            let mut usage = Usage::default();
            let in_flight_limit = stage.provider.config().concurrency * 2;
            let mut tasks: JoinSet<(Record, RecordKey, Result<Success, RequestFailure>)> =
                JoinSet::new();

            let share = stage
                .token_budget
                .map(|budget| budget / stage.templates.len().max(1) as u64);
            let mut produced: BTreeMap<String, u64> = BTreeMap::new();
            let mut budget_skipped = 0u64;

            let mut input_open = true;
            while input_open || !tasks.is_empty() {
                tokio::select! {
                    received = context.input.recv(), if input_open && tasks.len() < in_flight_limit => {
                        let Some(record) = received else {
                            input_open = false;
                            continue;
                        };
                        report.records_in += 1;
                        for template in &stage.templates {
                            for sample in 0..stage.samples {
                                let key = RecordKey::new(record.key.doc_id.clone(), STAGE, template.name.clone(), sample);
                                if context.done.contains(&key) || failed_before.contains(&key.to_string()) {
                                    report.skipped_done += 1;
                                    continue;
                                }
                                if share.is_some_and(|share| produced.get(&template.name).copied().unwrap_or(0) >= share) {
                                    budget_skipped += 1;
                                    continue;
                                }
                                let body = stage.body(template, &record, sample)?;
                                let estimate = estimate_tokens(&body, stage.sampling.max_tokens);
                                let provider = stage.provider.clone();
                                let source = record.clone();
                                tasks.spawn(async move {
                                    let result = provider.complete(&body, estimate).await;
                                    (source, key, result)
                                });
                            }
                        }
                    }
                    Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                        let (source, key, result) = joined.map_err(|e| StageError::Failed { stage: STAGE.into(), message: e.to_string() })?;
                        match result {
                            Ok(success) => {
                                let completion = success.completion;
                                let tokens = completion.usage;
                                // Without `usage`, about four characters make a token.
                                let generated = tokens.map_or(completion.text.len() as u64 / 4, |t| t.completion);
                                *produced.entry(key.variant.clone()).or_default() += generated;
                                if let Some(tokens) = tokens {
                                    usage.prompt_tokens += tokens.prompt;
                                    usage.completion_tokens += tokens.completion;
                                }
                                let to_cell = |v: Option<u64>| v.map_or(Cell::Null, |n| Cell::UInt32(n.min(u64::from(u32::MAX)) as u32));
                                let record = Record {
                                    key,
                                    split: source.split.clone(),
                                    source: source.source.clone(),
                                    title: source.title.clone(),
                                    text: completion.text,
                                    fields: vec![
                                        ("model".into(), completion.model.map_or(Cell::Null, Cell::Utf8)),
                                        ("finish_reason".into(), completion.finish_reason.map_or(Cell::Null, Cell::Utf8)),
                                        ("prompt_tokens".into(), to_cell(tokens.map(|t| t.prompt))),
                                        ("completion_tokens".into(), to_cell(tokens.map(|t| t.completion))),
                                        ("attempts".into(), Cell::UInt32(success.attempts)),
                                    ],
                                };
                                if context.output.send(record).await.is_err() {
                                    return Err(StageError::Closed { stage: STAGE.into() });
                                }
                                report.records_out += 1;
                            }
                            Err(failure) => {
                                report.failed += 1;
                                tracing::warn!(key = %key, reason = %failure.reason, attempts = failure.attempts, "request failed; recorded in the failures file");
                                let line = json!({
                                    "key": key.to_string(),
                                    "doc_id": key.doc_id,
                                    "template": key.variant,
                                    "sample": key.sample,
                                    "reason": failure.reason,
                                    "status": failure.status,
                                    "attempts": failure.attempts,
                                    "detail": failure.detail,
                                });
                                let mut file = failures.lock().expect("no task panics holding the lock");
                                writeln!(file, "{line}").map_err(|e| StageError::Failed { stage: STAGE.into(), message: e.to_string() })?;
                            }
                        }
                    }
                }
            }
            if budget_skipped > 0 {
                tracing::info!(
                    requests = budget_skipped,
                    budget = stage.token_budget,
                    "token budget reached; requests not sent"
                );
            }
            report.usage = Some(usage);
            Ok(report)
        })
    }
}
