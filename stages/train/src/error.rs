//! Errors of the trainer and the evaluation.

use std::path::PathBuf;

/// Failure to read data, build a model, train or evaluate.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("invalid training setting: {0}")]
    Config(String),
    #[error(
        "cannot read config file {path}: {message}. Fix the file or leave --config out to use the defaults"
    )]
    ConfigFile { path: PathBuf, message: String },
    #[error(
        "no Parquet shards found under {path}: expected DIR/data/*.parquet or *.parquet files in DIR"
    )]
    NoShards { path: PathBuf },
    #[error("cannot read shard {path}: {message}")]
    Shard { path: PathBuf, message: String },
    #[error(
        "shard {path} has no Utf8 column `{column}`: give the name of the text column in [data] text_column"
    )]
    MissingColumn { path: PathBuf, column: String },
    #[error("the training data has no non-empty documents; check the shards or the text column")]
    EmptyCorpus,
    #[error(
        "the corpus gives {sequences} training sequences of {seq_len} tokens, but a step needs {needed}. Lower batch_size or seq_len, or add data"
    )]
    TooLittleData {
        sequences: usize,
        seq_len: usize,
        needed: usize,
    },
    #[error("tokenizer error: {0}")]
    Tokenizer(String),
    #[error("model weight `{name}`: {message}")]
    Weight { name: String, message: String },
    #[error(
        "checkpoint {path}: {message}. Delete the run directory or pass a fresh --out to start again"
    )]
    Checkpoint { path: PathBuf, message: String },
    #[error("tensor operation failed: {0}")]
    Tensor(#[from] candle_core::Error),
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot encode PNG {path}: {message}")]
    Png { path: PathBuf, message: String },
    #[error("evaluation data: {0}")]
    EvalData(String),
    #[error("multi-power-law fit: {0}")]
    Fit(String),
    #[error("web text {path}: {message}")]
    WebText { path: PathBuf, message: String },
    #[error("{step} failed: {source}")]
    Backend {
        step: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("biographies generation failed: {0}")]
    Bios(#[from] kenning_biographies::BiosError),
}

impl TrainError {
    /// Wraps an I/O error with the action and the path it concerns.
    pub fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io {
            action,
            path,
            source,
        }
    }
}

/// Result of this crate's fallible functions.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;
