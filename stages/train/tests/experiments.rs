//! End-to-end runs of the mixing-phase-transition, spurious-correlation and spa-squad
//! experiments with tiny configs: every output file is written and the results hold one entry
//! per sweep value.

use std::path::Path;
use std::sync::Arc;

use kenning_train::experiment::spa_squad::{self, AugmentRequest, BackendError, SpaBackend};
use kenning_train::experiment::{mixing_phase, spurious_correlation};
use kenning_train::{Llama, TextTokenizer, TrainConfig};
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

/// Backend of the spa-squad test: a tiny random model with a tokenizer trained on the
/// passages, and "rewrites" that repeat each passage under the strategy's name.
#[derive(Default)]
struct StubBackend {
    augmented: Vec<String>,
}

impl SpaBackend for StubBackend {
    fn base_model(
        &mut self,
        train: &mut TrainConfig,
        run_dir: &Path,
    ) -> Result<Llama, BackendError> {
        std::fs::create_dir_all(run_dir)?;
        let passages = spa_squad_passages();
        let tokenizer = TextTokenizer::train(&train.tokenizer, passages.iter())?;
        let path = run_dir.join("base-tokenizer.json");
        tokenizer.save(&path)?;
        train.tokenizer.path = Some(path);
        train.model.vocab_size = tokenizer.vocab_size();
        let device = train.open_device()?;
        Ok(Llama::new(
            &train.model,
            train.seed,
            train.dtype()?,
            &device,
        )?)
    }

    fn augment(&mut self, request: &AugmentRequest<'_>) -> Result<(), BackendError> {
        self.augmented.push(request.strategy.to_string());
        let mut texts = Vec::new();
        for line in std::fs::read_to_string(request.input)?.lines() {
            let row: Value = serde_json::from_str(line)?;
            for sample in 0..request.k {
                let text = row["text"].as_str().unwrap();
                texts.push(format!("{} {sample}: {text}", request.strategy));
            }
        }
        let data = request.out.join("data");
        std::fs::create_dir_all(&data)?;
        let column: arrow_array::ArrayRef = Arc::new(arrow_array::StringArray::from(texts));
        let batch = arrow_array::RecordBatch::try_from_iter([("text", column)])?;
        let file = std::fs::File::create(data.join("train-00000-of-00001.parquet"))?;
        let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None)?;
        writer.write(&batch)?;
        writer.close()?;
        Ok(())
    }
}

/// Contexts of the first two passages of the SQuAD file, the ones the test config uses.
fn spa_squad_passages() -> Vec<String> {
    let passages = kenning_train::eval::read_squad(Path::new(SQUAD)).unwrap();
    passages.into_iter().take(2).map(|p| p.context).collect()
}

#[test]
fn spa_squad_end_to_end() {
    let out = tempfile::tempdir().unwrap();
    let text = format!(
        "squad = {SQUAD:?}\npassages = 2\nstrategies = [\"key_concepts\", \"teacher\"]\n\
         corpus_strategies = [1, 2]\nk = 2\nraw_epochs = 1\nspa_epochs = 1\n\
         [generation]\nmax_tokens = 16\ntemperature = 0.7\n{TINY_TRAIN}"
    );
    let config = spa_squad::ExperimentConfig::from_toml(&text, "tiny").unwrap();
    let mut backend = StubBackend::default();
    let report = spa_squad::run(&config, out.path(), &mut backend).unwrap();

    assert_eq!(backend.augmented, vec!["key_concepts", "teacher"]);
    assert_eq!(report.passages, 2);
    assert!(report.questions > 0, "no questions were read");
    assert_eq!(report.spa.len(), 2);
    assert_eq!(report.spa[0].documents, 4, "2 passages, 1 strategy, k = 2");
    assert_eq!(
        report.spa[1].documents, 8,
        "2 passages, 2 strategies, k = 2"
    );
    assert!(report.spa[0].synthetic_tokens < report.spa[1].synthetic_tokens);
    assert_eq!(report.raw.documents, 2);
    assert_eq!(report.raw.synthetic_tokens, 0);
    assert_eq!(report.untrained.steps, 0);

    let results = assert_outputs(out.path(), &["accuracy.png"]);
    for entry in std::iter::once(&results["raw"]).chain(results["spa"].as_array().unwrap()) {
        assert_unit(entry, "exact");
        assert_unit(entry, "contains");
        assert!(entry["steps"].as_u64().unwrap() > 0, "{entry}");
        assert_eq!(entry["qa"]["total"].as_u64(), Some(report.questions as u64));
    }
    let passages = std::fs::read_to_string(out.path().join("passages.jsonl")).unwrap();
    assert_eq!(passages.lines().count(), 2);
}
