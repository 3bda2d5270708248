//! Kenning's trainer and evaluation: byte-level BPE tokenizers, packed sequences, a
//! llama-style decoder trained with candle (CPU by default, CUDA behind the `cuda` feature),
//! learning-rate schedules with the multi-power law, resumable checkpoints, and biographies,
//! closed-book QA and hallucination metrics.

pub mod checkpoint;
pub mod config;
pub mod data;
pub mod error;
pub mod generate;
pub mod metrics;
pub mod model;
pub mod mpl;
pub mod optim;
pub mod plot;
pub mod run;
pub mod schedule;
pub mod tokenizer;
pub mod trainer;

pub use config::TrainConfig;
pub use data::{Corpus, read_shards};
pub use error::TrainError;
pub use generate::{Generation, greedy};
pub use model::{Llama, ModelConfig};
pub use run::{TrainReport, Trained, train};
pub use schedule::Schedule;
pub use tokenizer::TextTokenizer;
