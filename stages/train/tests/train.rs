//! End-to-end training runs on a tiny corpus: the loss falls, the run directory is complete,
//! and a resumed run reproduces the steps after its checkpoint.

use std::path::Path;

use kenning_train::config::DataConfig;
use kenning_train::model::ModelConfig;
use kenning_train::optim::OptimConfig;
use kenning_train::tokenizer::TokenizerConfig;
use kenning_train::{Corpus, Schedule, TrainConfig, train};

fn corpus() -> Corpus {
    let animals = ["cat", "dog", "fox", "owl", "bee", "elk"];
    let colors = ["red", "blue", "green", "gray"];
    let documents = (0..60)
        .map(|i| {
            let animal = animals[i % animals.len()];
            let color = colors[i % colors.len()];
            format!("The {color} {animal} number {i} sleeps. The {animal} is {color}.")
        })
        .collect();
    Corpus::from_documents(documents)
}

fn tiny_config(steps: u64) -> TrainConfig {
    TrainConfig {
        seed: 3,
        steps,
        log_every: 1,
        eval_every: 5,
        eval_batches: 2,
        checkpoint_every: 0,
        model: ModelConfig {
            hidden_size: 32,
            intermediate_size: 64,
            num_layers: 2,
            num_heads: 4,
            num_kv_heads: 2,
            max_seq_len: 32,
            ..ModelConfig::default()
        },
        tokenizer: TokenizerConfig {
            vocab_size: 300,
            ..TokenizerConfig::default()
        },
        data: DataConfig {
            seq_len: 32,
            validation_fraction: 0.1,
            ..DataConfig::default()
        },
        optim: OptimConfig {
            lr: 1e-2,
            batch_size: 4,
            grad_accum: 2,
            ..OptimConfig::default()
        },
        schedule: Schedule::Cosine {
            warmup_steps: 3,
            min_lr_ratio: 0.1,
        },
        ..TrainConfig::default()
    }
}

fn metric_lines(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("metrics.csv"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Returns the step and loss columns of each row, leaving out the timing column.
fn step_and_loss(lines: &[String]) -> Vec<(String, String)> {
    lines
        .iter()
        .skip(1)
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            (fields[0].to_string(), fields[4].to_string())
        })
        .collect()
}

#[test]
fn loss_decreases_on_tiny_corpus() {
    let dir = tempfile::tempdir().unwrap();
    let trained = train(&tiny_config(30), &corpus(), dir.path(), None).unwrap();
    let rows = step_and_loss(&metric_lines(dir.path()));
    let first: f64 = rows[0].1.parse().unwrap();
    let last: f64 = rows.last().unwrap().1.parse().unwrap();
    assert!(last < first * 0.6, "loss went from {first} to {last}");
    assert_eq!(trained.report.steps, 30);
    assert!(trained.report.final_val_loss.is_some());
    assert!(trained.report.epochs > 0.0);

    for file in [
        "config.toml",
        "data.json",
        "tokenizer.json",
        "metrics.csv",
        "loss.png",
        "lr.png",
        "model.safetensors",
        "report.json",
        "checkpoints/step-0000030/model.safetensors",
        "checkpoints/step-0000030/optimizer.safetensors",
        "checkpoints/step-0000030/state.json",
    ] {
        assert!(dir.path().join(file).is_file(), "{file} is missing");
    }
    let png = std::fs::read(dir.path().join("loss.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
}

#[test]
fn resume_reproduces_next_step_loss() {
    let config = TrainConfig {
        checkpoint_every: 4,
        ..tiny_config(8)
    };
    let full = tempfile::tempdir().unwrap();
    train(&config, &corpus(), full.path(), None).unwrap();

    // Rebuild the state of a run that stopped right after its step-4 checkpoint.
    let resumed = tempfile::tempdir().unwrap();
    for file in ["config.toml", "tokenizer.json", "metrics.csv"] {
        std::fs::copy(full.path().join(file), resumed.path().join(file)).unwrap();
    }
    let checkpoint = resumed.path().join("checkpoints/step-0000004");
    std::fs::create_dir_all(&checkpoint).unwrap();
    for file in ["model.safetensors", "optimizer.safetensors", "state.json"] {
        std::fs::copy(
            full.path().join("checkpoints/step-0000004").join(file),
            checkpoint.join(file),
        )
        .unwrap();
    }

    let report = train(&config, &corpus(), resumed.path(), None)
        .unwrap()
        .report;
    assert_eq!(report.resumed_from, Some(4));
    let expected = step_and_loss(&metric_lines(full.path()));
    let got = step_and_loss(&metric_lines(resumed.path()));
    assert_eq!(got.len(), expected.len());
    assert_eq!(
        got[4], expected[4],
        "step 5, the first after the checkpoint"
    );
    assert_eq!(got, expected);
}

#[test]
fn changed_config_is_rejected_on_resume() {
    let dir = tempfile::tempdir().unwrap();
    train(&tiny_config(2), &corpus(), dir.path(), None).unwrap();
    let mut changed = tiny_config(2);
    changed.optim.lr = 5e-3;
    let error = train(&changed, &corpus(), dir.path(), None).err().unwrap();
    assert!(error.to_string().contains("different config"), "{error}");
}

#[test]
fn too_little_data_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = Corpus::from_documents(vec!["one short line".into(); 3]);
    let error = train(&tiny_config(2), &corpus, dir.path(), None)
        .err()
        .unwrap();
    assert!(error.to_string().contains("batch_size"), "{error}");
}
