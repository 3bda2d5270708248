//! A small model memorizes 50 synthetic biographies: greedy completion of each biography up
//! to an attribute value gives the value for at least 95% of the attributes.

use kenning_biographies::BiosConfig;
use kenning_train::config::DataConfig;
use kenning_train::eval::bios_data::generate;
use kenning_train::eval::{BiosData, accuracy, storage_probes};
use kenning_train::model::ModelConfig;
use kenning_train::optim::OptimConfig;
use kenning_train::tokenizer::TokenizerConfig;
use kenning_train::{Corpus, Schedule, TrainConfig, train};

#[test]
fn model_memorizes_fifty_biographies() {
    // One thread: on 2 cores candle's spinning thread pool made two threads 3 times slower.
    // SAFETY: this is the only test of its binary, so no other thread touches the environment.
    unsafe { kenning_train::pin_thread_count(1) };
    let dir = tempfile::tempdir().unwrap();
    let bios_dir = dir.path().join("bios");
    let mut bios = BiosConfig::new(50);
    bios.unknown_people = Some(1);
    bios.seed = 11;
    generate(bios, &bios_dir).unwrap();
    let data = BiosData::read(&bios_dir).unwrap();
    assert_eq!(data.bios.len(), 50);

    let corpus = Corpus::from_documents(data.bios.iter().map(|b| b.text.clone()).collect());
    let config = TrainConfig {
        seed: 5,
        epochs: 80.0,
        log_every: 50,
        eval_every: 0,
        model: ModelConfig {
            hidden_size: 128,
            intermediate_size: 256,
            num_layers: 2,
            num_heads: 4,
            num_kv_heads: 4,
            max_seq_len: 128,
            ..ModelConfig::default()
        },
        tokenizer: TokenizerConfig {
            vocab_size: 1024,
            ..TokenizerConfig::default()
        },
        data: DataConfig {
            seq_len: 128,
            validation_fraction: 0.0,
            ..DataConfig::default()
        },
        optim: OptimConfig {
            lr: 3e-3,
            weight_decay: 0.0,
            batch_size: 8,
            ..OptimConfig::default()
        },
        schedule: Schedule::Cosine {
            warmup_steps: 20,
            min_lr_ratio: 0.05,
        },
        ..TrainConfig::default()
    };
    let started = std::time::Instant::now();
    let trained = train(&config, &corpus, &dir.path().join("run"), None).unwrap();
    eprintln!(
        "training took {:?}, {:.0} tokens/s, {} steps",
        started.elapsed(),
        trained.report.tokens_per_second,
        trained.report.steps
    );
    let started = std::time::Instant::now();

    let probes = storage_probes(&data, &["train", "test"], 50);
    assert!(
        probes.len() >= 280,
        "only {} probes were built",
        probes.len()
    );
    let result = accuracy(&trained.model, &trained.tokenizer, &probes).unwrap();
    eprintln!("evaluation took {:?}", started.elapsed());
    eprintln!(
        "steps {} final loss {:.4} accuracy {}/{} {:?}",
        trained.report.steps,
        trained.report.final_loss,
        result.correct,
        result.total,
        result.by_attribute
    );
    assert!(
        result.rate() >= 0.95,
        "attribute accuracy {}/{} is below 95% (final loss {:.4})",
        result.correct,
        result.total,
        trained.report.final_loss
    );
}
