//! `kenning augment`: flags to a provider and prompt templates, then the run.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use kenning_augment::builtin::{self, SPA_STRATEGIES};
use kenning_augment::cache::CACHE_VERSION;
use kenning_augment::cost::{ModelPrice, PriceTable};
use kenning_augment::entigraph::{self, EntityGraph};
use kenning_augment::outcome::Endpoint;
use kenning_augment::provider::{ApiKey, Provider, ProviderConfig};
use kenning_augment::report::{self, CorpusReport};
use kenning_augment::retry::RetryPolicy;
use kenning_augment::stage::{AugmentStage, EntityGraphSetup, Sampling};
use kenning_augment::template::PromptTemplate;
use kenning_pipeline::input::{self, Item};
use kenning_pipeline::{Engine, RunSummary};
use serde_json::{Value, json};

use crate::cli::AugmentArgs;
use crate::local::LocalBackend;

/// Reads `name` from the environment, or else from a `.env` file in the current folder.
pub(crate) fn api_key(name: &str) -> Option<ApiKey> {
    if let Ok(value) = std::env::var(name)
        && !value.trim().is_empty()
    {
        return Some(ApiKey::new(value.trim()));
    }
    let text = std::fs::read_to_string(".env").ok()?;
    text.lines().find_map(|line| {
        let line = line.trim().strip_prefix("export ").unwrap_or(line.trim());
        let (key, value) = line.split_once('=')?;
        (key.trim() == name).then(|| ApiKey::new(value.trim().trim_matches(['"', '\''])))
    })
}

/// The templates that `--strategies` names, split into rewrite templates and the entity graph.
struct Chosen {
    names: Vec<String>,
    templates: Vec<PromptTemplate>,
    entity_graph: Option<(
        PromptTemplate,
        Option<PromptTemplate>,
        Option<PromptTemplate>,
    )>,
}

/// Resolves `--strategies` against the available templates.
fn choose_templates(
    strategies: &[String],
    all_templates: &BTreeMap<String, PromptTemplate>,
) -> anyhow::Result<Chosen> {
    let mut names: Vec<String> = Vec::new();
    for name in strategies {
        match name.as_str() {
            "all" => names.extend(SPA_STRATEGIES.iter().map(|s| s.to_string())),
            "entigraph" => {
                names.extend([entigraph::PAIR.to_string(), entigraph::TRIPLE.to_string()])
            }
            _ => names.push(name.clone()),
        }
    }
    names.dedup();

    let find = |name: &str| {
        all_templates.get(name).cloned().with_context(|| {
            format!(
                "unknown strategy `{name}`; available: {}, all, entigraph",
                all_templates.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })
    };
    let mut templates = Vec::new();
    let (mut pair, mut triple) = (None, None);
    for name in &names {
        let template = find(name)?;
        match name.as_str() {
            entigraph::EXTRACT => {}
            entigraph::PAIR => pair = Some(template),
            entigraph::TRIPLE => triple = Some(template),
            _ if template.group == "entigraph" => bail!(
                "`{name}` is an entity-graph template, but only `relate_pair` and `relate_triple` \
                 take part in the entity-graph generation"
            ),
            _ => templates.push(template),
        }
    }
    let entity_graph = if pair.is_some() || triple.is_some() {
        Some((find(entigraph::EXTRACT)?, pair, triple))
    } else if names.iter().any(|n| n == entigraph::EXTRACT) {
        bail!(
            "`extract_entities` is the first step of the entity-graph generation and writes no rows \
             by itself: name `relate_pair`, `relate_triple` or `entigraph` as well"
        );
    } else {
        None
    };
    Ok(Chosen {
        names,
        templates,
        entity_graph,
    })
}

/// Counts the failures recorded in `path` (one line each); a missing file has none.
fn count_failures(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|text| text.lines().filter(|l| !l.trim().is_empty()).count())
        .unwrap_or(0)
}

/// Returns whether `budget` allows more tokens than the budget of the last complete run in
/// `out_dir`, as its manifest records it. Without a manifest, or when that run had no budget,
/// there is nothing to continue.
fn budget_raised(out_dir: &Path, budget: Option<u64>) -> bool {
    let previous = std::fs::read(out_dir.join("manifest.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .and_then(|manifest| manifest.pointer("/config/stages/0/token_budget")?.as_u64());
    match (previous, budget) {
        (Some(previous), Some(budget)) => budget > previous,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// Counts the valid documents of the input, for the progress bar's total.
fn count_documents(config: &kenning_pipeline::InputConfig) -> Option<u64> {
    let documents = input::open(config).ok()?;
    Some(
        documents
            .filter(|item| matches!(item, Ok(Item::Valid(_))))
            .count() as u64,
    )
}

/// Runs `kenning augment` with the given flags, and returns the run summary and the corpus
/// report of the output folder.
pub fn run(mut args: AugmentArgs) -> anyhow::Result<(RunSummary, CorpusReport)> {
    let local = match args.provider.as_str() {
        "openai" => false,
        "local" => true,
        other => bail!(
            "provider `{other}` is not available: use `openai` with --base-url for any OpenAI-compatible server, or `local` for the embedded model"
        ),
    };
    if !local && args.model.is_none() {
        bail!("--model is required with --provider openai: give the model name the server expects");
    }
    // The local model is reproducible by default: without --seed, sample i gets seed i.
    if local && args.seed.is_none() {
        args.seed = Some(0);
    }
    if args.k == 0 {
        bail!("--k must be at least 1 (samples per document and template)");
    }

    let all_templates = builtin::templates(args.prompts.as_deref())?;
    let chosen = choose_templates(&args.strategies, &all_templates)?;

    let mut headers = BTreeMap::new();
    for header in &args.headers {
        let (name, value) = header.split_once(':').with_context(|| {
            format!(
                "invalid --header `{}`: write `Name: value`",
                header.split(':').next().unwrap_or("")
            )
        })?;
        headers.insert(name.trim().to_string(), value.trim().to_string());
    }
    let local_model = if local {
        Some(args.local.load()?)
    } else {
        None
    };
    let model_name = match &local_model {
        Some(model) => model.info().name.clone(),
        None => args.model.clone().unwrap_or_default(),
    };
    let prices = PriceTable::load(args.prices.as_deref())?;
    let price = if local {
        // The embedded model costs nothing per token.
        Some(ModelPrice {
            input: 0.0,
            cached_input: None,
            output: 0.0,
        })
    } else {
        prices.find(&model_name)
    };
    if price.is_none() {
        tracing::info!(model = %model_name, "no price for this model in the price table; costs are left empty (pass --prices to add one)");
    }
    let mut provider_config = ProviderConfig::new(&args.base_url, &model_name);
    provider_config.api_key = api_key(&args.api_key_env);
    provider_config.headers = headers;
    provider_config.endpoint = if args.completions {
        Endpoint::Completions
    } else {
        Endpoint::Chat
    };
    provider_config.timeout = Duration::from_secs(args.timeout);
    provider_config.concurrency = args.concurrency;
    provider_config.requests_per_minute = args.requests_per_minute;
    provider_config.tokens_per_minute = args.tokens_per_minute;
    provider_config.keep_truncated = args.keep_truncated;
    provider_config.retry = RetryPolicy {
        max_attempts: args.max_attempts.max(1),
        ..RetryPolicy::default()
    };
    let provider = match &local_model {
        Some(model) => Provider::in_process(provider_config, LocalBackend::new(model.clone()))?,
        None => Provider::new(provider_config)?,
    };

    let input = args.input.to_config();
    // The stage keeps a request's concurrency slot until the sink has journaled its row, so
    // the responses a crash loses (and that are paid again) stay within the concurrency
    // whatever the channel holds.
    let output = args
        .output
        .to_config(kenning_pipeline::config::DEFAULT_CHANNEL_CAPACITY);
    if !input.path.exists() {
        bail!(
            "input not found: {}. Check the --input path",
            input.path.display()
        );
    }
    output.validate().map_err(anyhow::Error::msg)?;

    let sampling = Sampling {
        temperature: args.temperature,
        top_p: args.top_p,
        max_tokens: args.max_tokens,
        seed: args.seed,
        stop: args.stop,
    };
    let counts = EntityGraph {
        pairs: args.entity_pairs,
        triples: args.entity_triples,
    };
    // The templates' hashes and the cache version are part of the configuration, so an output
    // folder made with other prompt text refuses to resume instead of mixing rows. Headers and
    // the key stay out: they may hold secrets.
    let prompts: BTreeMap<&str, &str> = chosen
        .templates
        .iter()
        .chain(
            chosen
                .entity_graph
                .iter()
                .flat_map(|(e, p, t)| [Some(e), p.as_ref(), t.as_ref()])
                .flatten(),
        )
        .map(|t| (t.name.as_str(), t.sha256.as_str()))
        .collect();
    let recorded = json!({
        "input": input,
        "output": output,
        "stages": [{
            "kind": "augment",
            "provider": args.provider,
            "base_url": if local { None } else { Some(&args.base_url) },
            "model": model_name,
            "local": local_model.as_ref().map(|model| json!({
                "weights": model.info().weights.name(),
                "max_batch": model.info().max_batch,
            })),
            "endpoint": if args.completions { "completions" } else { "chat" },
            "strategies": chosen.names,
            "prompts": prompts,
            "cache_version": CACHE_VERSION,
            "k": args.k,
            "sampling": sampling,
            "keep_truncated": args.keep_truncated,
            "token_budget": args.token_budget,
            "entity_graph": chosen.entity_graph.as_ref().map(|_| counts),
        }],
    });

    let failures = output.dir.join("failures.jsonl");
    let budget_raised = budget_raised(&output.dir, args.token_budget);
    if budget_raised {
        tracing::info!(
            budget = args.token_budget,
            "the token budget is larger than that of the complete run in the output folder; continuing it"
        );
    }
    let reopen = (args.retry_failed && count_failures(&failures) > 0) || budget_raised;
    let show_progress =
        !args.output.run.no_progress && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let documents = if show_progress {
        count_documents(&input)
    } else {
        None
    };
    let entity_graph = chosen
        .entity_graph
        .map(|(extract, pair, triple)| EntityGraphSetup {
            extract,
            pair,
            triple,
            counts,
            store: output.dir.join("entities.jsonl"),
        });
    let stage = AugmentStage::new(
        provider,
        chosen.templates,
        args.k,
        sampling,
        failures.clone(),
        args.retry_failed,
    )
    .with_token_budget(args.token_budget)
    .with_price(price)
    .with_progress(show_progress, documents)
    .with_entity_graph(entity_graph);

    let engine = Engine {
        input,
        output,
        config: recorded,
        restart: args.output.run.restart,
        // The stage draws its own bar, with request rates and cost.
        progress: false,
        reopen_complete: reopen,
        // The budget may change between runs: a larger one continues the corpus.
        unfingerprinted: vec!["/stages/0/token_budget".into()],
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let summary = runtime.block_on(engine.run(vec![Box::new(stage)]))?;

    let corpus = corpus_report(&summary)?;
    let count = count_failures(&failures);
    if count > 0 {
        eprintln!(
            "{count} request(s) failed; see {}. They are not sent again when the same command is \
             re-run, unless --retry-failed is passed; --restart starts the whole run again.",
            failures.display()
        );
    }
    Ok((summary, corpus))
}

/// Returns the corpus report of the output folder, measuring the shards unless the manifest of
/// a run that was already complete contains one.
fn corpus_report(summary: &RunSummary) -> anyhow::Result<CorpusReport> {
    if summary.already_complete {
        let stored = std::fs::read(&summary.manifest_path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
            .and_then(|manifest| serde_json::from_value(manifest["corpus"].clone()).ok());
        if let Some(report) = stored {
            return Ok(report);
        }
    }
    Ok(report::attach(&summary.out_dir)?)
}

/// Prints the corpus totals and statistics after the run summary.
pub fn print(corpus: &CorpusReport) {
    let statistics = &corpus.statistics;
    let cost = corpus
        .cost_usd
        .map_or_else(|| "unknown".to_string(), |c| format!("${c:.4}"));
    println!(
        "  corpus:   {} prompt + {} completion tokens ({} cached), cost {cost}",
        corpus.prompt_tokens, corpus.completion_tokens, corpus.cached_tokens
    );
    let self_bleu = statistics
        .self_bleu
        .map_or_else(|| "n/a".to_string(), |b| format!("{b:.3}"));
    println!(
        "  diversity: gzip ratio {:.2}, 4-gram repetition {:.3}, self-BLEU {self_bleu} ({} sampled)",
        statistics.gzip_ratio, statistics.self_repetition_4gram, statistics.self_bleu_sample
    );
}
