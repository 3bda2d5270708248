//! Kenning's streaming engine.
//!
//! Documents are read from an input file or folder, flow through a chain of [`Stage`]s over
//! bounded channels, and end in zstd Parquet shards laid out the way the Hugging Face Hub
//! expects, with a `manifest.json` and a dataset card. A write-ahead journal and a fingerprint
//! of the configuration let an interrupted run continue where it stopped.

pub mod bytesize;
pub mod card;
pub mod config;
pub mod engine;
pub mod fsutil;
pub mod input;
pub mod manifest;
pub mod progress;
pub mod record;
pub mod resume;
pub mod schema;
pub mod secrets;
pub mod sink;
pub mod stage;

pub use config::{InputConfig, OutputConfig};
pub use engine::{Engine, RunSummary};
pub use record::{Cell, Record, RecordKey};
pub use schema::{Column, ColumnType, RecordSchema};
pub use stage::{Stage, StageContext, StageError, StageReport};
