//! End-to-end runs of the mixing-phase-transition and spurious-correlation experiments with
//! tiny configs: every output file is written and the results hold one entry per sweep value.

use std::path::Path;

use kenning_train::experiment::{mixing_phase, spurious_correlation};
use serde_json::Value;

/// Web text that the tests read in place: 200 SQuAD passages next to the repository.
const SQUAD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/datasets/squad_val_200.json"
);

/// A two-layer, 32-wide model trained for 15 steps: enough to run every stage, not to learn.
const TINY_TRAIN: &str = r#"
[train]
seed = 1
steps = 15
log_every = 5
eval_every = 0

[train.model]
hidden_size = 32
intermediate_size = 64
num_layers = 2
num_heads = 4
num_kv_heads = 2
max_seq_len = 32

[train.tokenizer]
vocab_size = 300

[train.data]
seq_len = 32
validation_fraction = 0.0

[train.optim]
lr = 1e-2
batch_size = 4

[train.schedule]
kind = "constant"
warmup_steps = 2
"#;

fn assert_outputs(out: &Path, plots: &[&str]) -> Value {
    let report = std::fs::read_to_string(out.join("report.md")).expect("report.md is written");
    assert!(report.starts_with("# "), "report.md has no title");
    for plot in plots {
        let bytes = std::fs::read(out.join(plot)).unwrap_or_else(|e| panic!("{plot}: {e}"));
        assert!(bytes.starts_with(b"\x89PNG"), "{plot} is not a PNG file");
        assert!(report.contains(plot), "report.md does not show {plot}");
    }
    let results = std::fs::read_to_string(out.join("results.json")).expect("results.json");
    serde_json::from_str(&results).expect("results.json is valid JSON")
}

fn assert_unit(entry: &Value, field: &str) {
    let value = entry[field]
        .as_f64()
        .unwrap_or_else(|| panic!("`{field}` is not a number in {entry}"));
    assert!((0.0..=1.0).contains(&value), "`{field}` = {value}");
}

#[test]
fn mixing_phase_transition_end_to_end() {
    let out = tempfile::tempdir().unwrap();
    let text = format!(
        "people = 12\nseed = 2\neval_people = 4\nratios = [0.2, 0.5, 1.0]\n\
         web_text = {SQUAD:?}\n{TINY_TRAIN}"
    );
    let config = mixing_phase::ExperimentConfig::from_toml(&text, "tiny").unwrap();
    let report = mixing_phase::run(&config, out.path()).unwrap();
    assert_eq!(report.ratios.len(), 3);

    let results = assert_outputs(out.path(), &["accuracy.png", "loss.png"]);
    let entries = results["ratios"].as_array().expect("`ratios` array");
    assert_eq!(entries.len(), config.ratios.len());
    for (entry, ratio) in entries.iter().zip(&config.ratios) {
        assert_eq!(entry["ratio"].as_f64(), Some(*ratio));
        for field in [
            "bytes_fraction",
            "tokens_fraction",
            "storage",
            "qa_train",
            "qa_test",
        ] {
            assert_unit(entry, field);
        }
        let realized = entry["bytes_fraction"].as_f64().unwrap();
        assert!((realized - ratio).abs() < 0.02, "ratio {ratio}: {realized}");
        assert_eq!(entry["steps"].as_u64(), Some(15));
    }
    assert_eq!(entries[2]["web_passes"].as_f64(), Some(0.0));
}

#[test]
fn missing_web_text_names_the_file() {
    let out = tempfile::tempdir().unwrap();
    let text = format!(
        "people = 4\neval_people = 2\nratios = [0.5]\nweb_text = \"no/such/squad.json\"\n\
         {TINY_TRAIN}"
    );
    let config = mixing_phase::ExperimentConfig::from_toml(&text, "tiny").unwrap();
    let error = mixing_phase::run(&config, out.path())
        .unwrap_err()
        .to_string();
    assert!(error.contains("no/such/squad.json"), "{error}");
    assert!(error.contains("not found"), "{error}");
}

#[test]
fn spurious_correlation_end_to_end() {
    let out = tempfile::tempdir().unwrap();
    let text = format!(
        "people = 24\nunknown_people = 6\nseed = 2\nsurnames = 3\nfirst_names = 10\n\
         correlate = [\"birth_city\", \"employer\"]\nrhos = [0.0, 1.0]\neval_questions = 12\n\
         {TINY_TRAIN}"
    );
    let config = spurious_correlation::ExperimentConfig::from_toml(&text, "tiny").unwrap();
    let report = spurious_correlation::run(&config, out.path()).unwrap();
    assert_eq!(report.rhos.len(), 2);

    let results = assert_outputs(out.path(), &["hallucination.png", "loss.png"]);
    let entries = results["rhos"].as_array().expect("`rhos` array");
    assert_eq!(entries.len(), config.rhos.len());
    for (entry, rho) in entries.iter().zip(&config.rhos) {
        assert_eq!(entry["rho"].as_f64(), Some(*rho));
        for field in [
            "qa_train",
            "hallucination_rate",
            "unknown_confidence",
            "known_confidence",
        ] {
            assert_unit(entry, field);
        }
        for field in ["hallucination_confidence", "auroc"] {
            if !entry[field].is_null() {
                assert_unit(entry, field);
            }
        }
        assert!(
            entry["unknown_questions"].as_u64().unwrap() > 0,
            "no correlated questions about unknown people in {entry}"
        );
    }
    let names = std::fs::read_to_string(out.path().join("names.tsv")).unwrap();
    assert_eq!(names.lines().filter(|l| l.contains("\tlast\t")).count(), 3);
}
