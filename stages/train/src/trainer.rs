//! One training run in memory: the model, the optimizer, the packed data and the step counter.

use std::collections::HashMap;

use candle_core::{Device, Tensor};

use crate::config::TrainConfig;
use crate::data::PackedCorpus;
use crate::error::{Result, TrainError};
use crate::model::Llama;
use crate::optim::{AdamW, clip_scale, grad_norm};

/// What one optimizer step did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepStats {
    /// Index of the step, from 0.
    pub step: u64,
    /// Epochs completed after the step, fractional.
    pub epoch: f64,
    pub lr: f64,
    /// Mean training loss over the step's micro-batches.
    pub loss: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Tokens the model predicted in this step.
    pub tokens: u64,
}

/// A model, its optimizer and its data, stepped one optimizer step at a time.
pub struct Trainer {
    config: TrainConfig,
    model: Llama,
    optimizer: AdamW,
    data: PackedCorpus,
    device: Device,
    total_steps: u64,
    step: u64,
    cached_epoch: Option<(u64, Vec<u32>)>,
}

impl Trainer {
    /// Prepares a run of `model` on `data`. Fails when the data cannot fill one step.
    pub fn new(config: &TrainConfig, model: Llama, data: PackedCorpus) -> Result<Self> {
        config.validate()?;
        let per_step = config.optim.batch_size * config.optim.grad_accum;
        if data.sequences_per_epoch() < config.optim.batch_size {
            return Err(TrainError::TooLittleData {
                sequences: data.sequences_per_epoch(),
                seq_len: data.seq_len(),
                needed: config.optim.batch_size,
            });
        }
        let total_steps = if config.epochs > 0.0 {
            ((config.epochs * data.sequences_per_epoch() as f64) / per_step as f64)
                .ceil()
                .max(1.0) as u64
        } else {
            config.steps
        };
        Ok(Self {
            config: config.clone(),
            device: model.device().clone(),
            optimizer: AdamW::new(&config.optim),
            model,
            data,
            total_steps,
            step: 0,
            cached_epoch: None,
        })
    }

    pub fn model(&self) -> &Llama {
        &self.model
    }

    pub fn into_model(self) -> Llama {
        self.model
    }

    pub fn data(&self) -> &PackedCorpus {
        &self.data
    }

    /// Steps taken so far, which is also the index of the next step.
    pub fn step(&self) -> u64 {
        self.step
    }

    pub fn total_steps(&self) -> u64 {
        self.total_steps
    }

    pub fn optimizer(&self) -> &AdamW {
        &self.optimizer
    }

    /// Restores the optimizer state and the step counter of a checkpoint; the weights are
    /// loaded into the model separately.
    pub fn restore(&mut self, optimizer_state: &HashMap<String, Tensor>, step: u64) -> Result<()> {
        self.optimizer.load_state(optimizer_state, step)?;
        self.step = step;
        Ok(())
    }

    /// Returns epochs completed after `steps` steps.
    pub fn epochs_after(&self, steps: u64) -> f64 {
        let sequences =
            steps * (self.config.optim.batch_size * self.config.optim.grad_accum) as u64;
        sequences as f64 / self.data.sequences_per_epoch() as f64
    }

    /// Returns the learning rate of `step`.
    pub fn lr(&self, step: u64) -> f64 {
        self.config
            .schedule
            .lr(step, self.total_steps, self.config.optim.lr)
    }

    /// Returns the sequences of micro-batch `index`, shape (batch, seq_len + 1). Micro-batches
    /// run through the epochs in order; the tail of an epoch that cannot fill a batch is
    /// skipped.
    pub fn micro_batch(&mut self, index: u64) -> Result<Tensor> {
        let batch = self.config.optim.batch_size;
        let width = self.data.seq_len() + 1;
        let per_epoch = (self.data.sequences_per_epoch() / batch) as u64;
        let epoch = index / per_epoch;
        let offset = (index % per_epoch) as usize * batch;
        if self.cached_epoch.as_ref().is_none_or(|(e, _)| *e != epoch) {
            self.cached_epoch = Some((epoch, self.data.epoch(epoch)));
        }
        let (_, tokens) = self.cached_epoch.as_ref().expect("filled just above");
        let slice = tokens[offset * width..(offset + batch) * width].to_vec();
        Ok(Tensor::from_vec(slice, (batch, width), &self.device)?)
    }

    /// Runs one optimizer step: forward and backward passes over `grad_accum` micro-batches,
    /// averaged gradients, clipping and an AdamW update.
    pub fn train_step(&mut self) -> Result<StepStats> {
        let accum = self.config.optim.grad_accum;
        let first = self.step * accum as u64;
        let batches = (first..first + accum as u64)
            .map(|index| self.micro_batch(index))
            .collect::<Result<Vec<_>>>()?;
        let vars = self.model.named_vars();
        let mut grads: HashMap<String, Tensor> = HashMap::new();
        let mut loss_sum = 0.0;

        for batch in &batches {
            let loss = self.model.loss(batch)?;
            loss_sum += loss.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
            let store = loss.backward()?;
            for (name, grad) in self.model.gradients(&store) {
                let summed = match grads.remove(&name) {
                    Some(previous) => (previous + grad)?,
                    None => grad,
                };
                grads.insert(name, summed);
            }
        }

        if accum > 1 {
            for grad in grads.values_mut() {
                *grad = (&*grad / accum as f64)?;
            }
        }
        let grad_norm = grad_norm(&grads)?;
        let grad_scale = clip_scale(grad_norm, self.config.optim.grad_clip);
        let lr = self.lr(self.step);
        self.optimizer.step_scaled(&vars, &grads, lr, grad_scale)?;

        let step = self.step;
        self.step += 1;
        let loss = loss_sum / accum as f64;
        if !loss.is_finite() {
            return Err(TrainError::Config(format!(
                "the training loss became {loss} at step {step}; lower optim.lr or raise schedule.warmup_steps"
            )));
        }
        Ok(StepStats {
            step,
            epoch: self.epochs_after(self.step),
            lr,
            loss,
            grad_norm,
            tokens: (accum * self.config.optim.batch_size * self.data.seq_len()) as u64,
        })
    }

    /// Returns the mean loss over at most `max_batches` validation batches, or `None` when
    /// the validation split is empty.
    pub fn validation_loss(&self, max_batches: usize) -> Result<Option<f64>> {
        let width = self.data.seq_len() + 1;
        let tokens = self.data.validation();
        let sequences = tokens.len() / width;
        if sequences == 0 || max_batches == 0 {
            return Ok(None);
        }
        let batch = self.config.optim.batch_size.min(sequences);
        let batches = (sequences / batch).min(max_batches);
        let mut total = 0.0;
        for b in 0..batches {
            let slice = tokens[b * batch * width..(b + 1) * batch * width].to_vec();
            let input = Tensor::from_vec(slice, (batch, width), &self.device)?;
            let loss = self.model.loss(&input)?.detach();
            total += loss.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
        }
        Ok(Some(total / batches as f64))
    }
}
