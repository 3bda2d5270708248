//! `kenning augment`: flags to a provider and prompt templates, then the run.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use kenning_augment::builtin::{self, SPA_STRATEGIES};
use kenning_augment::outcome::Endpoint;
use kenning_augment::provider::{ApiKey, Provider, ProviderConfig};
use kenning_augment::retry::RetryPolicy;
use kenning_augment::stage::{AugmentStage, Sampling};
use kenning_pipeline::{Engine, RunSummary};
use serde_json::json;

use crate::cli::AugmentArgs;
use crate::local::LocalBackend;

/// Reads `name` from the environment, or else from a `.env` file in the current folder.
fn api_key(name: &str) -> Option<ApiKey> {
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

/// Runs `kenning augment` with the given flags.
pub fn run(mut args: AugmentArgs) -> anyhow::Result<RunSummary> {
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
    let mut names: Vec<String> = Vec::new();
    for name in &args.strategies {
        if name == "all" {
            names.extend(SPA_STRATEGIES.iter().map(|s| s.to_string()));
        } else {
            names.push(name.clone());
        }
    }
    let mut templates = Vec::new();
    for name in &names {
        let template = all_templates.get(name).with_context(|| {
            format!(
                "unknown strategy `{name}`; available: {}",
                all_templates.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })?;
        if template.group == "entigraph" {
            bail!(
                "`{name}` belongs to the two-step entity-graph generation, which `kenning augment` does not run yet"
            );
        }
        templates.push(template.clone());
    }

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
    let local_model = if local { Some(args.local.load()?) } else { None };
    let model_name = match &local_model {
        Some(model) => model.info().name.clone(),
        None => args.model.clone().unwrap_or_default(),
    };
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
    // A response is journaled only when the sink takes it, so a short channel keeps the
    // responses lost in a crash (and paid again) close to the requests in flight.
    let output = args.output.to_config(1);
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
    // Headers and the key stay out of the recorded configuration: they may hold secrets.
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
            "strategies": names,
            "k": args.k,
            "sampling": sampling,
            "keep_truncated": args.keep_truncated,
            "token_budget": args.token_budget,
        }],
    });
    let failures = output.dir.join("failures.jsonl");
    let stage = AugmentStage::new(
        provider,
        templates,
        args.k,
        sampling,
        failures,
        args.retry_failed,
    )
    .with_token_budget(args.token_budget);

    let engine = Engine {
        input,
        output,
        config: recorded,
        restart: args.output.run.restart,
        progress: !args.output.run.no_progress,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let summary = runtime.block_on(engine.run(vec![Box::new(stage)]))?;
    let failures = summary.out_dir.join("failures.jsonl");
    if failures.exists()
        && std::fs::metadata(&failures)
            .map(|m| m.len() > 0)
            .unwrap_or(false)
    {
        let count = std::fs::read_to_string(&failures)
            .map(|t| t.lines().count())
            .unwrap_or(0);
        eprintln!(
            "{count} request(s) failed; see {}. They are not sent again when the same command is \
             re-run: --retry-failed resends them when an interrupted run is resumed, and --restart \
             starts the whole run again.",
            Path::new(&failures).display()
        );
    }
    Ok(summary)
}
