//! Kenning's trainer and evaluation: byte-level BPE tokenizers, packed sequences, a
//! llama-style decoder trained with candle (CPU by default, CUDA behind the `cuda` feature),
//! learning-rate schedules with the multi-power law, resumable checkpoints, and biographies,
//! closed-book QA and hallucination metrics.

pub mod checkpoint;
pub mod config;
pub mod data;
pub mod error;
pub mod eval;
pub mod experiment;
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

/// Sets `RAYON_NUM_THREADS`, the thread count of candle's CPU kernels, to `threads` unless
/// the variable is already set.
///
/// candle-core 0.11.1 counts physical cores by reading `/proc/cpuinfo` on every parallel
/// operation and matrix product when that variable is unset, which made training 4 to 6 times
/// slower on a 2-core machine (measured with the 50-biography memorization test).
///
/// # Safety
///
/// Changes the process environment, so call it before any other thread starts, such as at the
/// top of `main` or of a test binary's only test.
pub unsafe fn pin_thread_count(threads: usize) {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // SAFETY: the caller guarantees that no other thread reads or writes the environment.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", threads.max(1).to_string()) };
    }
}
