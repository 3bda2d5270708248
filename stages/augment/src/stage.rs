//! The augment stage: every document, rewritten `samples` times with every chosen prompt
//! template, through the [`Provider`]; optionally also the two-step entity-graph generation.
//!
//! A record's key is (document id, `augment`, template name, sample index), so a resumed run
//! sends no request whose response is already stored. Failed requests go to a failures file,
//! never into the dataset, and are not sent again unless `retry_failed` is set.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use kenning_pipeline::record::Record;
use kenning_pipeline::schema::{Column, ColumnType};
use kenning_pipeline::stage::{
    BoxFuture, Provenance, Stage, StageContext, StageError, StageReport,
};
use serde_json::{Value, json};

use crate::cache::CACHE_VERSION;
use crate::cost::ModelPrice;
use crate::entigraph::EntityGraph;
use crate::outcome::Endpoint;
use crate::provider::Provider;
use crate::template::{PromptTemplate, Values};

pub(crate) const STAGE: &str = "augment";

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

/// The templates and settings of the entity-graph generation.
#[derive(Clone, Debug)]
pub struct EntityGraphSetup {
    pub extract: PromptTemplate,
    /// The pair template, when pairs are written about.
    pub pair: Option<PromptTemplate>,
    /// The triple template, when triples are written about.
    pub triple: Option<PromptTemplate>,
    pub counts: EntityGraph,
    /// `entities.jsonl`, where the extractions are kept.
    pub store: PathBuf,
}

/// The augment stage.
pub struct AugmentStage {
    pub(crate) provider: Arc<Provider>,
    pub(crate) templates: Arc<[PromptTemplate]>,
    pub(crate) samples: u32,
    pub(crate) sampling: Sampling,
    pub(crate) failures_path: PathBuf,
    pub(crate) retry_failed: bool,
    pub(crate) token_budget: Option<u64>,
    pub(crate) price: Option<ModelPrice>,
    pub(crate) progress: bool,
    pub(crate) planned_documents: Option<u64>,
    pub(crate) entity_graph: Option<EntityGraphSetup>,
}

impl AugmentStage {
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
            templates: templates.into(),
            samples,
            sampling,
            failures_path,
            retry_failed,
            token_budget: None,
            price: None,
            progress: false,
            planned_documents: None,
            entity_graph: None,
        }
    }

    /// Stops sending new requests for a template once the completions stored in the output
    /// folder reached its share of `budget` tokens. The budget is split evenly across the
    /// templates (the entity extraction excluded). The rows of earlier runs count, so a resumed
    /// run or a re-run with a larger budget continues from what is stored. Requests in flight
    /// still finish, so a share can be exceeded by at most their `max_tokens`.
    pub fn with_token_budget(mut self, budget: Option<u64>) -> Self {
        self.token_budget = budget;
        self
    }

    /// Prices the requests; without a price the `cost_usd` column is null.
    pub fn with_price(mut self, price: Option<ModelPrice>) -> Self {
        self.price = price;
        self
    }

    /// Draws a progress bar on standard error when `enabled` and it is a terminal. With the
    /// number of input documents, the bar shows a total and the time left.
    pub fn with_progress(mut self, enabled: bool, documents: Option<u64>) -> Self {
        self.progress = enabled;
        self.planned_documents = documents;
        self
    }

    /// Adds the two-step entity-graph generation to every document.
    pub fn with_entity_graph(mut self, setup: Option<EntityGraphSetup>) -> Self {
        self.entity_graph = setup;
        self
    }

    /// Returns the names of the templates whose completions count against the token budget.
    pub(crate) fn budgeted_templates(&self) -> Vec<&str> {
        let relations = self
            .entity_graph
            .iter()
            .flat_map(|g| [g.pair.as_ref(), g.triple.as_ref()])
            .flatten();
        self.templates
            .iter()
            .chain(relations)
            .map(|t| t.name.as_str())
            .collect()
    }

    /// Builds the request body of `template` for `record`, with `extra` placeholder values
    /// (the entity-graph `summary` and `entities`) and the seed of `sample`.
    pub(crate) fn body(
        &self,
        template: &PromptTemplate,
        record: &Record,
        extra: &[(&str, &str)],
        sample: u32,
    ) -> Result<Value, StageError> {
        let title = record.title.as_deref().unwrap_or("");
        let mut values = Values::new(title, &record.text);
        for (name, value) in extra {
            values = values.with(name, value);
        }
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

impl Stage for AugmentStage {
    fn name(&self) -> &'static str {
        STAGE
    }

    fn columns(&self) -> Vec<Column> {
        let mut columns = vec![
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
                "cached_tokens",
                ColumnType::UInt32,
                true,
                "Prompt tokens served from the provider's prompt cache; null when the server sent no usage.",
            ),
            Column::new(
                "cost_usd",
                ColumnType::Float64,
                true,
                "Cost of the request in US dollars from the price table; null when the model has no price or the server sent no usage.",
            ),
            Column::new(
                "attempts",
                ColumnType::UInt32,
                false,
                "Requests sent for this row, retries included.",
            ),
            Column::new(
                "request_key",
                ColumnType::Utf8,
                false,
                "SHA-256 of the canonical request (cache version, model, endpoint, body, sample).",
            ),
        ];
        if self.entity_graph.is_some() {
            columns.push(Column::new(
                "entities",
                ColumnType::Utf8,
                true,
                "Entities a relation text is about, separated by `; `; null for other templates.",
            ));
        }
        columns
    }

    fn provenance(&self) -> Provenance {
        let config = self.provider.config();
        let graph = self.entity_graph.as_ref();
        let graph_templates = graph
            .into_iter()
            .flat_map(|g| [Some(&g.extract), g.pair.as_ref(), g.triple.as_ref()])
            .flatten();
        Provenance {
            prompts: self
                .templates
                .iter()
                .chain(graph_templates)
                .map(|t| (t.name.clone(), t.sha256.clone()))
                .collect::<BTreeMap<_, _>>(),
            model: Some(config.model.clone()),
            sampling: serde_json::to_value(&self.sampling).ok(),
            seed: self.sampling.seed,
            settings: json!({
                "samples": self.samples,
                "endpoint": match config.endpoint { Endpoint::Chat => "chat", Endpoint::Completions => "completions" },
                "keep_truncated": config.keep_truncated,
                "cache_version": CACHE_VERSION,
                "entity_graph": graph.map(|g| g.counts),
            }),
        }
    }

    fn totaled_column(&self) -> Option<&'static str> {
        Some("completion_tokens")
    }

    fn run(self: Box<Self>, context: StageContext) -> BoxFuture<Result<StageReport, StageError>> {
        Box::pin(crate::run::run(*self, context))
    }
}
