//! The local model behind a queue. One worker thread owns the weights and decodes every active
//! request together, one token per request per step, and new requests join between steps.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::time::Instant;

use candle_core::Device;
use rayon::prelude::*;
use tokio::sync::oneshot;

use crate::chat::ChatTemplate;
use crate::error::{LocalError, Result};
use crate::generate::{FinishReason, GenerateRequest, Generation, Prompt};
use crate::gguf::GgufFile;
use crate::model::{Llama, SequenceCache, WeightFormat};
use crate::sampling::Sampler;
use crate::tokenizer::GgufTokenizer;

/// Default number of requests decoded together.
pub const DEFAULT_MAX_BATCH: usize = 8;

/// How to load the model.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    pub model_path: PathBuf,
    pub weights: WeightFormat,
    /// Requests decoded together in one step.
    pub max_batch: usize,
    pub device: Device,
}

impl LoadOptions {
    pub fn new(model_path: impl Into<PathBuf>) -> Self {
        Self {
            model_path: model_path.into(),
            weights: WeightFormat::default(),
            max_batch: DEFAULT_MAX_BATCH,
            device: Device::Cpu,
        }
    }
}

/// Facts about the loaded model, for manifests and `/v1/models`.
#[derive(Clone, Debug)]
pub struct ModelInfo {
    /// The file name without `.gguf`, used as the model's name.
    pub name: String,
    pub path: PathBuf,
    pub context_length: usize,
    pub weights: WeightFormat,
    pub max_batch: usize,
    /// False when the file had no usable chat template and ChatML is used.
    pub chat_template_from_model: bool,
}

struct Job {
    prompt: Vec<u32>,
    request: GenerateRequest,
    reply: oneshot::Sender<Result<Generation>>,
}

/// Counters of the decoding steps run so far (prompt steps excluded).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DecodeStats {
    pub steps: u64,
    /// Tokens produced by those steps, one per sequence per step.
    pub tokens: u64,
    /// Wall time of those steps, sampling included.
    pub seconds: f64,
}

impl DecodeStats {
    /// Returns the counters of `self` since `earlier`.
    pub fn since(&self, earlier: &Self) -> Self {
        Self {
            steps: self.steps - earlier.steps,
            tokens: self.tokens - earlier.tokens,
            seconds: self.seconds - earlier.seconds,
        }
    }

    pub fn tokens_per_second(&self) -> f64 {
        self.tokens as f64 / self.seconds.max(f64::MIN_POSITIVE)
    }
}

#[derive(Default)]
struct DecodeCounters {
    steps: AtomicU64,
    tokens: AtomicU64,
    nanos: AtomicU64,
}

/// A handle to the loaded model; clones share the same worker.
#[derive(Clone)]
pub struct LocalModel {
    jobs: Sender<Job>,
    tokenizer: Arc<GgufTokenizer>,
    template: Arc<ChatTemplate>,
    info: Arc<ModelInfo>,
    counters: Arc<DecodeCounters>,
}

impl LocalModel {
    /// Loads the weights and starts the worker thread.
    pub fn load(options: &LoadOptions) -> Result<Self> {
        if options.max_batch == 0 {
            return Err(LocalError::Setting("max_batch must be at least 1".into()));
        }
        let started = Instant::now();
        let mut file = GgufFile::open(&options.model_path)?;
        // The architecture is checked first, so that another model family gets that error
        // rather than one about its tokenizer.
        crate::config::LlamaConfig::from_gguf(&file)?;
        let tokenizer = Arc::new(GgufTokenizer::from_gguf(&file)?);
        let template = file
            .string("tokenizer.chat_template")
            .ok()
            .map(str::to_string);
        let template = Arc::new(ChatTemplate::new(template.as_deref()));
        let model = Llama::load(&mut file, options.weights, &options.device)?;

        let info = Arc::new(ModelInfo {
            name: model_name(&options.model_path),
            path: options.model_path.clone(),
            context_length: model.config.context_length,
            weights: options.weights,
            max_batch: options.max_batch,
            chat_template_from_model: template.from_model,
        });
        tracing::info!(
            model = %info.name,
            weights = options.weights.name(),
            layers = model.config.layers,
            load_ms = started.elapsed().as_millis() as u64,
            "loaded the local model"
        );

        let (jobs, queue) = mpsc::channel();
        let worker_tokenizer = Arc::clone(&tokenizer);
        let max_batch = options.max_batch;
        let counters = Arc::new(DecodeCounters::default());
        let worker_counters = Arc::clone(&counters);
        std::thread::Builder::new()
            .name("kenning-local-model".into())
            .spawn(move || {
                run_worker(
                    &model,
                    &worker_tokenizer,
                    &queue,
                    max_batch,
                    &worker_counters,
                )
            })
            .map_err(|e| LocalError::Setting(format!("cannot start the model thread: {e}")))?;

        Ok(Self {
            jobs,
            tokenizer,
            template,
            info,
            counters,
        })
    }

    /// Counters of the decoding steps since the model was loaded.
    pub fn decode_stats(&self) -> DecodeStats {
        DecodeStats {
            steps: self.counters.steps.load(Ordering::Relaxed),
            tokens: self.counters.tokens.load(Ordering::Relaxed),
            seconds: self.counters.nanos.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    pub fn tokenizer(&self) -> &GgufTokenizer {
        &self.tokenizer
    }

    /// Returns the prompt's token ids.
    pub fn prompt_tokens(&self, prompt: &Prompt) -> Result<Vec<u32>> {
        match prompt {
            Prompt::Chat(messages) => self.template.encode(messages, &self.tokenizer),
            Prompt::Text(text) => self.tokenizer.encode_text(text),
        }
    }

    /// Queues a request and waits for its result.
    pub async fn generate(&self, request: GenerateRequest) -> Result<Generation> {
        let receiver = self.submit(request)?;
        receiver.await.map_err(|_| LocalError::WorkerStopped)?
    }

    /// Queues a request and blocks until its result arrives, for callers outside an async runtime.
    pub fn generate_blocking(&self, request: GenerateRequest) -> Result<Generation> {
        let receiver = self.submit(request)?;
        receiver
            .blocking_recv()
            .map_err(|_| LocalError::WorkerStopped)?
    }

    fn submit(&self, request: GenerateRequest) -> Result<oneshot::Receiver<Result<Generation>>> {
        request.sampling.check()?;
        if request.max_tokens == 0 {
            return Err(LocalError::Setting("max_tokens must be at least 1".into()));
        }
        let prompt = self.prompt_tokens(&request.prompt)?;
        if prompt.is_empty() {
            return Err(LocalError::Setting("the prompt is empty".into()));
        }
        let context = self.info.context_length;
        if prompt.len() + request.max_tokens > context {
            return Err(LocalError::PromptTooLong {
                prompt: prompt.len(),
                max_tokens: request.max_tokens,
                context,
            });
        }
        let (reply, receiver) = oneshot::channel();
        self.jobs
            .send(Job {
                prompt,
                request,
                reply,
            })
            .map_err(|_| LocalError::WorkerStopped)?;
        Ok(receiver)
    }
}

fn model_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default()
        .trim_end_matches(".gguf")
        .to_string()
}

/// A request being decoded.
struct Active {
    job: Job,
    cache: SequenceCache,
    sampler: Sampler,
    generated: Vec<u32>,
    /// The last sampled token, fed to the model in the next step.
    next: u32,
    produced: usize,
}

impl Active {
    /// Appends a sampled token and returns the finish reason once the request is complete.
    fn accept(
        &mut self,
        token: u32,
        tokenizer: &GgufTokenizer,
    ) -> Option<(FinishReason, Option<String>)> {
        self.produced += 1;
        if tokenizer.is_end(token) {
            return Some((FinishReason::Stop, None));
        }
        self.generated.push(token);
        self.next = token;

        let stop = &self.job.request.stop;
        if !stop.is_empty()
            && let Ok(text) = tokenizer.decode(&self.generated)
        {
            let earliest = stop
                .iter()
                .filter(|s| !s.is_empty())
                .filter_map(|s| text.find(s.as_str()))
                .min();
            if let Some(at) = earliest {
                return Some((FinishReason::Stop, Some(text[..at].to_string())));
            }
        }
        if self.generated.len() >= self.job.request.max_tokens {
            return Some((FinishReason::Length, None));
        }
        None
    }

    fn finish(self, reason: FinishReason, text: Option<String>, tokenizer: &GgufTokenizer) {
        let text = match text {
            Some(text) => Ok(text),
            None => tokenizer.decode(&self.generated),
        };
        let result = text.map(|text| Generation {
            text,
            finish_reason: reason,
            prompt_tokens: self.job.prompt.len(),
            completion_tokens: self.produced,
        });
        // The caller may have gone away; its result is then dropped.
        let _ = self.job.reply.send(result);
    }
}

fn run_worker(
    model: &Llama,
    tokenizer: &GgufTokenizer,
    queue: &Receiver<Job>,
    max_batch: usize,
    counters: &DecodeCounters,
) {
    let mut active: Vec<Active> = Vec::new();
    loop {
        if active.is_empty() {
            match queue.recv() {
                Ok(job) => admit(model, tokenizer, job, &mut active),
                Err(_) => return,
            }
        }
        while active.len() < max_batch {
            match queue.try_recv() {
                Ok(job) => admit(model, tokenizer, job, &mut active),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        if active.is_empty() {
            continue;
        }

        let started = Instant::now();
        let mut batch: Vec<(&[u32], &mut SequenceCache)> = active
            .iter_mut()
            .map(|a| (std::slice::from_ref(&a.next), &mut a.cache))
            .collect();
        let logits = match model.forward(&mut batch) {
            Ok(logits) => logits,
            Err(error) => {
                tracing::error!(%error, requests = active.len(), "a decoding step failed");
                let message = error.to_string();
                for a in active.drain(..) {
                    let _ = a.job.reply.send(Err(LocalError::Setting(message.clone())));
                }
                continue;
            }
        };

        // Each sequence draws from its own seeded sampler, so drawing in parallel changes no
        // token.
        let tokens: Vec<u32> = active
            .par_iter_mut()
            .zip(logits.par_iter())
            .map(|(a, row)| a.sampler.sample(row))
            .collect();
        let produced = active.len() as u64;
        let mut still = Vec::with_capacity(active.len());
        for (mut a, token) in active.drain(..).zip(tokens) {
            match a.accept(token, tokenizer) {
                Some((reason, text)) => a.finish(reason, text, tokenizer),
                None => still.push(a),
            }
        }
        counters.steps.fetch_add(1, Ordering::Relaxed);
        counters.tokens.fetch_add(produced, Ordering::Relaxed);
        let nanos = started.elapsed().as_nanos() as u64;
        counters.nanos.fetch_add(nanos, Ordering::Relaxed);
        active = still;
    }
}

/// Runs a new request's prompt through the model and samples its first token.
fn admit(model: &Llama, tokenizer: &GgufTokenizer, job: Job, active: &mut Vec<Active>) {
    let mut cache = model.new_cache(job.prompt.len() + job.request.max_tokens);
    let logits = match model.forward(&mut [(job.prompt.as_slice(), &mut cache)]) {
        Ok(mut logits) => logits.remove(0),
        Err(error) => {
            let _ = job.reply.send(Err(error));
            return;
        }
    };
    let mut a = Active {
        sampler: Sampler::new(job.request.sampling),
        job,
        cache,
        generated: Vec::new(),
        next: 0,
        produced: 0,
    };
    let token = a.sampler.sample(&logits);
    match a.accept(token, tokenizer) {
        Some((reason, text)) => a.finish(reason, text, tokenizer),
        None => active.push(a),
    }
}
