//! A training run on disk: the run directory, resuming, metrics, plots and the final model.
//!
//! ```text
//! RUN_DIR/
//!   config.toml         the settings of the run
//!   data.json           the files the run read, with SHA-256, and the token counts
//!   tokenizer.json      the tokenizer
//!   metrics.csv         one row per logged step
//!   loss.png, lr.png    training and validation loss, learning rate, against steps
//!   checkpoints/        resumable checkpoints (weights and optimizer moments)
//!   model.safetensors   the final weights, GGUF llama names
//!   report.json         the figures of the finished run
//! ```

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::checkpoint::{self, CheckpointState};
use crate::config::TrainConfig;
use crate::data::{Corpus, PackedCorpus, SourceFile};
use crate::error::{Result, TrainError};
use crate::metrics::{MetricsLog, MetricsRow};
use crate::model::Llama;
use crate::plot::{Series, line_plot};
use crate::tokenizer::TextTokenizer;
use crate::trainer::Trainer;

/// Figures of a finished run, also written to `report.json`.
#[derive(Clone, Debug, Serialize)]
pub struct TrainReport {
    pub run_dir: PathBuf,
    pub parameters: usize,
    pub steps: u64,
    /// Passes over the training sequences.
    pub epochs: f64,
    pub train_documents: usize,
    pub train_tokens_per_epoch: usize,
    pub tokens_seen: u64,
    pub final_loss: f64,
    pub final_val_loss: Option<f64>,
    /// Step the run resumed from, if it continued an earlier one.
    pub resumed_from: Option<u64>,
    /// Training tokens per second of wall-clock time in this process.
    pub tokens_per_second: f64,
}

/// A finished run: its report, the trained model and the tokenizer.
pub struct Trained {
    pub report: TrainReport,
    pub model: Llama,
    pub tokenizer: TextTokenizer,
}

/// Record of the data a run saw, written as `data.json`.
#[derive(Serialize)]
struct DataRecord<'a> {
    files: &'a [SourceFile],
    documents: usize,
    train_documents: usize,
    train_tokens_per_epoch: usize,
    sequences_per_epoch: usize,
}

/// Trains a model on `corpus` into `run_dir`. A run directory that holds a checkpoint of the
/// same config is resumed from its latest checkpoint; one with a different config is
/// rejected. With `initial`, training continues from those weights (continued pretraining)
/// and needs `tokenizer.path` set to the base model's tokenizer.
pub fn train(
    config: &TrainConfig,
    corpus: &Corpus,
    run_dir: &Path,
    initial: Option<Llama>,
) -> Result<Trained> {
    config.validate()?;
    std::fs::create_dir_all(run_dir).map_err(TrainError::io("create", run_dir))?;
    let checkpoints = run_dir.join("checkpoints");
    let resume_from = checkpoint::latest(&checkpoints)?;
    let config_path = run_dir.join("config.toml");
    let tokenizer_path = run_dir.join("tokenizer.json");

    if resume_from.is_some() {
        let saved = std::fs::read_to_string(&config_path).unwrap_or_default();
        if saved != config.to_toml() {
            return Err(TrainError::Checkpoint {
                path: config_path,
                message: "the run directory holds checkpoints of a different config".into(),
            });
        }
    }

    let tokenizer = if resume_from.is_some() {
        TextTokenizer::load(&tokenizer_path, &config.tokenizer.eos_token)?
    } else if let Some(path) = &config.tokenizer.path {
        TextTokenizer::load(path, &config.tokenizer.eos_token)?
    } else {
        let started = Instant::now();
        let tokenizer = TextTokenizer::train(&config.tokenizer, corpus.documents.iter())?;
        tracing::info!(
            vocab = tokenizer.vocab_size(),
            seconds = started.elapsed().as_secs_f64(),
            "trained tokenizer"
        );
        tokenizer
    };
    tokenizer.save(&tokenizer_path)?;
    std::fs::write(&config_path, config.to_toml())
        .map_err(TrainError::io("write", &config_path))?;

    let encoded = tokenizer.encode_all(&corpus.documents)?;
    let documents = encoded.len();
    let data = PackedCorpus::new(
        encoded,
        config.data.seq_len,
        tokenizer.eos_id(),
        config.seed,
        config.data.validation_fraction,
    )?;
    let record = DataRecord {
        files: &corpus.sources,
        documents,
        train_documents: data.train_documents(),
        train_tokens_per_epoch: data.train_tokens(),
        sequences_per_epoch: data.sequences_per_epoch(),
    };
    write_json(&run_dir.join("data.json"), &record)?;

    let mut model_config = config.model.clone();
    if model_config.vocab_size == 0 {
        model_config.vocab_size = tokenizer.vocab_size();
    }
    if model_config.vocab_size < tokenizer.vocab_size() {
        return Err(TrainError::Config(format!(
            "model.vocab_size {} is smaller than the tokenizer's vocabulary of {}; set it to 0 to use the tokenizer's",
            model_config.vocab_size,
            tokenizer.vocab_size()
        )));
    }
    let device = config.open_device()?;
    let model = match initial {
        Some(model) => model,
        None => Llama::new(&model_config, config.seed, config.dtype()?, &device)?,
    };
    let parameters = model.config().parameter_count();
    let mut trainer = Trainer::new(config, model, data)?;

    let mut resumed_from = None;
    let mut tokens_seen = 0;
    if let Some(folder) = &resume_from {
        let saved = checkpoint::load(folder, &device)?;
        trainer.model().load_tensors(&saved.model)?;
        trainer.restore(&saved.optimizer, saved.state.step)?;
        tokens_seen = saved.state.tokens;
        resumed_from = Some(saved.state.step);
        tracing::info!(step = saved.state.step, folder = %folder.display(), "resumed from checkpoint");
    }

    let metrics_path = run_dir.join("metrics.csv");
    let mut metrics = MetricsLog::open(&metrics_path, resumed_from)?;
    let total = trainer.total_steps();
    tracing::info!(
        parameters,
        steps = total,
        sequences_per_epoch = trainer.data().sequences_per_epoch(),
        "training"
    );

    let started = Instant::now();
    let mut tokens_this_process = 0;
    let mut last_loss = f64::NAN;
    let mut last_val = None;
    while trainer.step() < total {
        let stats = trainer.train_step()?;
        tokens_seen += stats.tokens;
        tokens_this_process += stats.tokens;
        last_loss = stats.loss;
        let done = trainer.step();

        let evaluate = config.eval_every > 0 && (done % config.eval_every == 0 || done == total);
        let val_loss = if evaluate {
            trainer.validation_loss(config.eval_batches)?
        } else {
            None
        };
        if val_loss.is_some() {
            last_val = val_loss;
        }
        if done % config.log_every == 0 || done == 1 || done == total || val_loss.is_some() {
            metrics.push(MetricsRow {
                step: done,
                epoch: stats.epoch,
                tokens: tokens_seen,
                lr: stats.lr,
                loss: stats.loss,
                grad_norm: stats.grad_norm,
                val_loss,
                seconds: started.elapsed().as_secs_f64(),
            });
            metrics.flush()?;
            tracing::info!(
                step = done,
                loss = stats.loss,
                val_loss,
                lr = stats.lr,
                grad_norm = stats.grad_norm,
                "step"
            );
        }

        let periodic = config.checkpoint_every > 0 && done % config.checkpoint_every == 0;
        if periodic || done == total {
            let state = CheckpointState {
                step: done,
                total_steps: total,
                epoch: stats.epoch,
                tokens: tokens_seen,
            };
            checkpoint::save(
                &checkpoints,
                &state,
                &trainer.model().tensors(),
                &trainer.optimizer().state_tensors(),
            )?;
        }
    }

    let seconds = started.elapsed().as_secs_f64();
    plot_metrics(run_dir, metrics.rows())?;
    let model_path = run_dir.join("model.safetensors");
    candle_core::safetensors::save(&trainer.model().tensors(), &model_path).map_err(|e| {
        TrainError::Checkpoint {
            path: model_path.clone(),
            message: format!("cannot write: {e}"),
        }
    })?;

    let report = TrainReport {
        run_dir: run_dir.to_path_buf(),
        parameters,
        steps: total,
        epochs: trainer.epochs_after(total),
        train_documents: trainer.data().train_documents(),
        train_tokens_per_epoch: trainer.data().train_tokens(),
        tokens_seen,
        final_loss: if last_loss.is_nan() {
            metrics.rows().last().map_or(f64::NAN, |r| r.loss)
        } else {
            last_loss
        },
        final_val_loss: last_val,
        resumed_from,
        tokens_per_second: if seconds > 0.0 {
            tokens_this_process as f64 / seconds
        } else {
            0.0
        },
    };
    write_json(&run_dir.join("report.json"), &report)?;
    Ok(Trained {
        report,
        model: trainer.into_model(),
        tokenizer,
    })
}

/// Draws `loss.png` (training loss, and validation loss where measured) and `lr.png`.
pub fn plot_metrics(run_dir: &Path, rows: &[MetricsRow]) -> Result<()> {
    let train = Series {
        name: "train loss".into(),
        points: rows.iter().map(|r| (r.step as f64, r.loss)).collect(),
    };
    let validation = Series {
        name: "validation loss".into(),
        points: rows
            .iter()
            .filter_map(|r| r.val_loss.map(|v| (r.step as f64, v)))
            .collect(),
    };
    line_plot(&run_dir.join("loss.png"), &[train, validation])?;
    let lr = Series {
        name: "learning rate".into(),
        points: rows.iter().map(|r| (r.step as f64, r.lr)).collect(),
    };
    line_plot(&run_dir.join("lr.png"), &[lr])
}

/// Writes `value` as pretty JSON.
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let json = serde_json::to_string_pretty(value).expect("the value serializes");
    std::fs::write(path, json).map_err(TrainError::io("write", path))
}
