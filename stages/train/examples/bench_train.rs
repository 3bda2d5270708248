//! Training throughput of a 4-layer, 256-wide decoder at context 128 and batch 16 on random
//! tokens, printed as one JSON line. `bench/run_train_bench.py` runs it beside the same model
//! in PyTorch (`bench/train_torch.py`).
//!
//! Usage: bench_train [STEPS] [WARMUP_STEPS]

use std::time::Instant;

use candle_core::{DType, Device};
use kenning_train::config::DataConfig;
use kenning_train::data::PackedCorpus;
use kenning_train::model::ModelConfig;
use kenning_train::optim::OptimConfig;
use kenning_train::trainer::Trainer;
use kenning_train::{Llama, Schedule, TrainConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

// The same allocator as the `kenning` binary, so that the figure is what `kenning train` does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Vocabulary of the benchmark model; `bench/train_torch.py` uses the same.
const VOCAB: usize = 4096;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let steps: u64 = args.next().map_or(Ok(20), |s| s.parse())?;
    let warmup: u64 = args.next().map_or(Ok(3), |s| s.parse())?;

    let config = TrainConfig {
        steps: steps + warmup,
        model: ModelConfig {
            vocab_size: VOCAB,
            hidden_size: 256,
            intermediate_size: 768,
            num_layers: 4,
            num_heads: 8,
            num_kv_heads: 8,
            max_seq_len: 128,
            tie_embeddings: true,
            ..ModelConfig::default()
        },
        data: DataConfig {
            seq_len: 128,
            validation_fraction: 0.0,
            ..DataConfig::default()
        },
        optim: OptimConfig {
            batch_size: 16,
            ..OptimConfig::default()
        },
        schedule: Schedule::Constant { warmup_steps: 0 },
        ..TrainConfig::default()
    };
    let mut rng = StdRng::seed_from_u64(0);
    let documents: Vec<Vec<u32>> = (0..400)
        .map(|_| {
            (0..512)
                .map(|_| rng.random_range(1..VOCAB as u32))
                .collect()
        })
        .collect();
    let data = PackedCorpus::new(documents, 128, 0, 0, 0.0)?;
    let model = Llama::new(&config.model, 0, DType::F32, &Device::Cpu)?;
    let parameters = model.config().parameter_count();
    let mut trainer = Trainer::new(&config, model, data)?;

    for _ in 0..warmup {
        trainer.train_step()?;
    }
    let started = Instant::now();
    let mut tokens = 0;
    let mut loss = 0.0;
    for _ in 0..steps {
        let stats = trainer.train_step()?;
        tokens += stats.tokens;
        loss = stats.loss;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{{\"parameters\": {parameters}, \"steps\": {steps}, \"tokens\": {tokens}, \"seconds\": {seconds:.3}, \"tokens_per_second\": {:.1}, \"final_loss\": {loss:.4}}}",
        tokens as f64 / seconds
    );
    Ok(())
}
