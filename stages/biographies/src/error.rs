//! Errors of the biographies stage.

use std::path::PathBuf;

use kenning_pipeline::resume::ResumeError;
use kenning_pipeline::sink::SinkError;

/// Failure to configure or generate biographies.
#[derive(Debug, thiserror::Error)]
pub enum BiosError {
    #[error("invalid biographies setting: {0}")]
    Config(String),
    #[error(
        "cannot read pool file {path}: {source}. Check the path, or leave the setting out to use the built-in pool"
    )]
    PoolRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    PoolLine {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error(
        "pool {pool} ({source_name}) has {found} values, but at least {needed} are needed: {reason}. Add values to the pool file"
    )]
    PoolTooSmall {
        pool: String,
        source_name: String,
        found: usize,
        needed: usize,
        reason: String,
    },
    #[error(
        "the name pools give {available} distinct full names, but {needed} people (including the \
         unknown people) need distinct full names. Lower --people or --unknown-people, or give a \
         larger --names file"
    )]
    TooFewNames { needed: u64, available: u64 },
    #[error("template file {source_name}, line {line}: {message}")]
    Template {
        source_name: String,
        line: usize,
        message: String,
    },
    #[error(transparent)]
    Resume(#[from] ResumeError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}
