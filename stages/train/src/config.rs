//! Settings of a training run, read from TOML. Every table and field is optional and unknown
//! keys are errors.

use std::path::Path;

use candle_core::{DType, Device};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::model::ModelConfig;
use crate::optim::OptimConfig;
use crate::schedule::Schedule;
use crate::tokenizer::TokenizerConfig;

/// Settings of a training run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Seed of the weight initialisation, the validation split and the data order.
    pub seed: u64,
    /// Optimizer steps. Ignored when `epochs` is positive.
    pub steps: u64,
    /// Passes over the training sequences; when positive, sets the number of steps.
    pub epochs: f64,
    /// `cpu`, or `cuda` (needs the `cuda` feature).
    pub device: DeviceKind,
    /// Weight and activation type: `f32`, `f64` or `bf16`.
    pub dtype: String,
    /// Steps between metric rows; the first and last steps are always logged.
    pub log_every: u64,
    /// Steps between validation losses; zero turns validation off.
    pub eval_every: u64,
    /// Validation batches per evaluation, at most.
    pub eval_batches: usize,
    /// Steps between checkpoints; zero keeps only the final one.
    pub checkpoint_every: u64,
    pub model: ModelConfig,
    pub tokenizer: TokenizerConfig,
    pub data: DataConfig,
    pub optim: OptimConfig,
    pub schedule: Schedule,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            steps: 200,
            epochs: 0.0,
            device: DeviceKind::Cpu,
            dtype: "f32".into(),
            log_every: 10,
            eval_every: 50,
            eval_batches: 8,
            checkpoint_every: 0,
            model: ModelConfig::default(),
            tokenizer: TokenizerConfig::default(),
            data: DataConfig::default(),
            optim: OptimConfig::default(),
            schedule: Schedule::default(),
        }
    }
}

/// How documents become training sequences.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// Tokens per training sequence (the model's context during training).
    pub seq_len: usize,
    /// Share of the documents held out for the validation loss.
    pub validation_fraction: f64,
    /// Column of the shards that holds the text.
    pub text_column: String,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            seq_len: 128,
            validation_fraction: 0.02,
            text_column: "text".into(),
        }
    }
}

/// Device that runs the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    Cpu,
    Cuda,
}

impl TrainConfig {
    /// Reads a TOML config file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::ConfigFile {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        toml::from_str(&text).map_err(|e| TrainError::ConfigFile {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// Returns the config as TOML, as written into the run directory.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("the config has only TOML-representable fields")
    }

    /// Checks every setting that does not depend on the data or the tokenizer.
    pub fn validate(&self) -> Result<()> {
        self.optim.validate()?;
        self.schedule.validate()?;
        self.dtype()?;
        if self.steps == 0 && self.epochs <= 0.0 {
            return Err(TrainError::Config(
                "set steps or epochs to a value greater than 0".into(),
            ));
        }
        if !self.epochs.is_finite() || self.epochs < 0.0 {
            return Err(TrainError::Config(format!(
                "epochs {} must be a finite number, at least 0",
                self.epochs
            )));
        }
        if self.data.seq_len == 0 {
            return Err(TrainError::Config(
                "data.seq_len must be greater than 0".into(),
            ));
        }
        if self.data.seq_len > self.model.max_seq_len {
            return Err(TrainError::Config(format!(
                "data.seq_len {} is longer than model.max_seq_len {}",
                self.data.seq_len, self.model.max_seq_len
            )));
        }
        if self.log_every == 0 {
            return Err(TrainError::Config(
                "log_every must be greater than 0".into(),
            ));
        }
        Ok(())
    }

    pub fn dtype(&self) -> Result<DType> {
        match self.dtype.as_str() {
            "f32" => Ok(DType::F32),
            "f64" => Ok(DType::F64),
            "bf16" => Ok(DType::BF16),
            other => Err(TrainError::Config(format!(
                "dtype `{other}` is not supported: use f32, f64 or bf16"
            ))),
        }
    }

    /// Opens the configured device.
    pub fn open_device(&self) -> Result<Device> {
        match self.device {
            DeviceKind::Cpu => Ok(Device::Cpu),
            DeviceKind::Cuda => Device::new_cuda(0).map_err(|e| {
                TrainError::Config(format!(
                    "cannot open CUDA device 0 ({e}); build with the `cuda` feature on a machine with an NVIDIA GPU, or set device = \"cpu\""
                ))
            }),
        }
    }
}
