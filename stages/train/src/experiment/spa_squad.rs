//! spa-squad: continued pretraining of a pretrained model on SQuAD passages. One run trains on
//! the raw passages and the others on SPA corpora of growing size, which rewrite the same
//! passages with learning-strategy prompts. Closed-book QA accuracy on the passages' questions
//! is then reported against the number of synthetic training tokens.
//!
//! This crate has no generator and no GGUF reader, so the caller passes a [`SpaBackend`] that
//! loads the base model and runs the augment stage; `kenning experiment spa-squad` uses the
//! embedded SmolLM2-135M for both.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::data::{Corpus, read_shards};
use crate::error::{Result, TrainError};
use crate::eval::{QaItem, QaScore, SquadPassage, closed_book, read_squad};
use crate::model::Llama;
use crate::run::train;
use crate::tokenizer::TextTokenizer;

use super::common::{REPORT_FILE, parse_config, token_count};
use super::spa_squad_report::write_outputs;

/// Settings of the experiment, read from `experiments/spa-squad*.toml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// SQuAD file with the passages and their questions; a relative path is read from the
    /// current folder.
    #[serde(default = "default_squad")]
    pub squad: PathBuf,
    /// Passages used, from the start of the file; 0 uses all of them.
    pub passages: usize,
    /// Augment prompt templates, in the order in which the corpora add them.
    pub strategies: Vec<String>,
    /// Strategies per SPA corpus: corpus i contains the rewrites by the first
    /// `corpus_strategies[i]` strategies, so each corpus contains the smaller ones.
    pub corpus_strategies: Vec<usize>,
    /// Rewrites per passage and strategy.
    #[serde(default = "default_samples")]
    pub k: u32,
    pub generation: GenerationConfig,
    /// Passes over the raw passages in the baseline run.
    pub raw_epochs: f64,
    /// Passes over each SPA corpus.
    pub spa_epochs: f64,
    /// Training settings shared by every run. The model shape and the tokenizer come from the
    /// base model, and `epochs` is set per run.
    pub train: TrainConfig,
}

/// Sampling settings of the rewrites.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerationConfig {
    /// Maximum completion tokens per rewrite.
    pub max_tokens: u32,
    pub temperature: f64,
    /// Base seed; sample i of a passage is generated with seed + i.
    #[serde(default)]
    pub seed: u64,
}

/// One augment run: every passage of `input` rewritten `k` times with `strategy`, written as
/// shards into `out`.
#[derive(Clone, Debug)]
pub struct AugmentRequest<'a> {
    /// JSONL file with `id`, `title` and `text` per passage.
    pub input: &'a Path,
    pub out: &'a Path,
    pub strategy: &'a str,
    pub k: u32,
    pub generation: &'a GenerationConfig,
}

/// Error of a [`SpaBackend`] call.
pub type BackendError = Box<dyn std::error::Error + Send + Sync>;

/// Model loading and generation, which the experiment needs from outside this crate.
pub trait SpaBackend {
    /// Loads the base model as trainable weights, sets the model shape and the tokenizer
    /// path of `train` to the base model's, and writes that tokenizer into `run_dir`.
    fn base_model(
        &mut self,
        train: &mut TrainConfig,
        run_dir: &Path,
    ) -> std::result::Result<Llama, BackendError>;

    /// Runs the augment stage for `request`. A complete earlier run into the same folder with
    /// the same settings must be reused instead of generated again.
    fn augment(&mut self, request: &AugmentRequest<'_>) -> std::result::Result<(), BackendError>;
}

/// Results of one model: untrained, trained on the raw passages or on one SPA corpus.
#[derive(Clone, Debug, Serialize)]
pub struct RunResult {
    pub name: String,
    /// Strategies of the SPA corpus; empty for the untrained model and the raw passages.
    pub strategies: Vec<String>,
    pub documents: usize,
    /// Tokens of the synthetic documents; 0 for the untrained model and the raw passages.
    pub synthetic_tokens: usize,
    /// Tokens of the training corpus per epoch; 0 for the untrained model.
    pub corpus_tokens: usize,
    pub steps: u64,
    pub epochs: f64,
    pub final_loss: Option<f64>,
    pub train_seconds: f64,
    pub qa: QaScore,
    /// Share of questions answered with an accepted answer after normalization.
    pub exact: f64,
    /// Share of generated answers that contain an accepted answer as whole words after
    /// normalization.
    pub contains: f64,
    pub run_dir: PathBuf,
}

/// Results of the experiment, also written as `results.json` and `report.md`.
#[derive(Clone, Debug, Serialize)]
pub struct ExperimentReport {
    pub squad: PathBuf,
    pub passages: usize,
    pub questions: usize,
    pub passage_tokens: usize,
    pub generation_seconds: f64,
    pub total_seconds: f64,
    pub untrained: RunResult,
    pub raw: RunResult,
    /// One result per SPA corpus, smallest first.
    pub spa: Vec<RunResult>,
    pub report_path: PathBuf,
}

fn default_squad() -> PathBuf {
    PathBuf::from("../shared/datasets/squad_val_200.json")
}

fn default_samples() -> u32 {
    1
}

impl ExperimentConfig {
    /// Parses and checks a config.
    pub fn from_toml(text: &str, source: &str) -> Result<Self> {
        let config: Self = parse_config(text, source)?;
        let invalid = |message: String| Err(TrainError::Config(format!("{source}: {message}")));

        if config.strategies.is_empty() {
            return invalid("`strategies` is empty. List at least one prompt template".into());
        }
        if let Some(name) = config
            .strategies
            .iter()
            .enumerate()
            .find_map(|(i, s)| config.strategies[..i].contains(s).then_some(s))
        {
            return invalid(format!("`strategies` lists `{name}` twice"));
        }

        let counts = &config.corpus_strategies;
        if counts.is_empty() || counts[0] == 0 || counts.windows(2).any(|w| w[0] >= w[1]) {
            return invalid(format!(
                "`corpus_strategies` must be strictly increasing counts of at least 1, but it \
                 is {counts:?}"
            ));
        }
        if counts[counts.len() - 1] > config.strategies.len() {
            return invalid(format!(
                "`corpus_strategies` asks for {} strategies, but `strategies` lists {}",
                counts[counts.len() - 1],
                config.strategies.len()
            ));
        }

        if config.k == 0 || config.generation.max_tokens == 0 {
            return invalid("`k` and `generation.max_tokens` must be at least 1".into());
        }
        for (name, epochs) in [
            ("raw_epochs", config.raw_epochs),
            ("spa_epochs", config.spa_epochs),
        ] {
            if !(epochs.is_finite() && epochs > 0.0) {
                return invalid(format!("`{name}` is {epochs}; give a number above 0"));
            }
        }
        config.train.validate()?;
        Ok(config)
    }

    /// Returns the strategies that the largest corpus uses, which are the ones generated.
    pub fn generated_strategies(&self) -> &[String] {
        let largest = self.corpus_strategies.last().copied().unwrap_or(0);
        &self.strategies[..largest.min(self.strategies.len())]
    }
}

/// Runs the experiment into `out`: `passages.jsonl`, one augment folder per strategy under
/// `spa/`, one run folder per model, `report.md`, `accuracy.png` and `results.json`.
pub fn run(
    config: &ExperimentConfig,
    out: &Path,
    backend: &mut dyn SpaBackend,
) -> Result<ExperimentReport> {
    let started = Instant::now();
    std::fs::create_dir_all(out).map_err(TrainError::io("create", out))?;
    let passages = select_passages(read_squad(&config.squad)?, config.passages, &config.squad)?;
    let questions: Vec<QaItem> = passages
        .iter()
        .flat_map(|p| p.questions.iter().cloned())
        .collect();
    let raw_documents: Vec<String> = passages.iter().map(|p| p.context.clone()).collect();
    tracing::info!(
        passages = passages.len(),
        questions = questions.len(),
        "read SQuAD passages"
    );

    let input = out.join("passages.jsonl");
    write_passages(&input, &passages)?;
    let generation_started = Instant::now();
    let mut rewrites = Vec::new();
    for strategy in config.generated_strategies() {
        let folder = out.join("spa").join(strategy);
        let request = AugmentRequest {
            input: &input,
            out: &folder,
            strategy,
            k: config.k,
            generation: &config.generation,
        };
        tracing::info!(strategy = %strategy, out = %folder.display(), "generating rewrites");
        backend
            .augment(&request)
            .map_err(|source| TrainError::Backend {
                step: format!("augment with strategy `{strategy}`"),
                source,
            })?;
        rewrites.push(read_shards(&folder, "text")?.documents);
    }
    let generation_seconds = generation_started.elapsed().as_secs_f64();

    let untrained_dir = out.join("untrained");
    let mut base_config = config.train.clone();
    let model = load_base(backend, &mut base_config, &untrained_dir)?;
    let tokenizer_path = base_config.tokenizer.path.clone().ok_or_else(|| {
        TrainError::Config("the backend set no tokenizer path for the base model".into())
    })?;
    let tokenizer = TextTokenizer::load(&tokenizer_path, &base_config.tokenizer.eos_token)?;
    let passage_tokens = token_count(&tokenizer, &raw_documents)?;
    let untrained = evaluate("untrained", &model, &tokenizer, &questions)?;
    drop(model);
    let untrained = untrained.into_result(untrained_dir);

    let raw_run = TrainingRun {
        name: "raw passages".into(),
        strategies: Vec::new(),
        documents: raw_documents,
        synthetic_tokens: 0,
        epochs: config.raw_epochs,
    };
    let raw = train_and_evaluate(config, &raw_run, &out.join("raw"), backend, &questions)?;

    let mut spa = Vec::new();
    for &count in &config.corpus_strategies {
        let documents: Vec<String> = rewrites[..count].iter().flatten().cloned().collect();
        let run = TrainingRun {
            name: format!("SPA, {count} {}", plural(count, "strategy", "strategies")),
            strategies: config.strategies[..count].to_vec(),
            synthetic_tokens: token_count(&tokenizer, &documents)?,
            documents,
            epochs: config.spa_epochs,
        };
        let dir = out.join(format!("spa-{count}"));
        spa.push(train_and_evaluate(config, &run, &dir, backend, &questions)?);
    }

    let report = ExperimentReport {
        squad: config.squad.clone(),
        passages: passages.len(),
        questions: questions.len(),
        passage_tokens,
        generation_seconds,
        total_seconds: started.elapsed().as_secs_f64(),
        untrained,
        raw,
        spa,
        report_path: out.join(REPORT_FILE),
    };
    write_outputs(out, config, &report)?;
    Ok(report)
}

/// A model to train: its corpus and how many passes over it.
struct TrainingRun {
    name: String,
    strategies: Vec<String>,
    documents: Vec<String>,
    synthetic_tokens: usize,
    epochs: f64,
}

/// Accuracy of a model before it becomes a [`RunResult`].
struct Evaluated {
    name: String,
    qa: QaScore,
}

impl Evaluated {
    fn into_result(self, run_dir: PathBuf) -> RunResult {
        RunResult {
            name: self.name,
            strategies: Vec::new(),
            documents: 0,
            synthetic_tokens: 0,
            corpus_tokens: 0,
            steps: 0,
            epochs: 0.0,
            final_loss: None,
            train_seconds: 0.0,
            exact: self.qa.exact_rate(),
            contains: self.qa.contains_rate(),
            qa: self.qa,
            run_dir,
        }
    }
}

/// Continues pretraining the base model on `run.documents` in `dir`, then answers the questions.
fn train_and_evaluate(
    config: &ExperimentConfig,
    run: &TrainingRun,
    dir: &Path,
    backend: &mut dyn SpaBackend,
    questions: &[QaItem],
) -> Result<RunResult> {
    let mut train_config = config.train.clone();
    train_config.epochs = run.epochs;
    let model = load_base(backend, &mut train_config, dir)?;
    tracing::info!(
        run = %run.name,
        documents = run.documents.len(),
        epochs = run.epochs,
        "continued pretraining"
    );
    let started = Instant::now();
    let trained = train(
        &train_config,
        &Corpus::from_documents(run.documents.clone()),
        dir,
        Some(model),
    )?;
    let train_seconds = started.elapsed().as_secs_f64();
    let evaluated = evaluate(&run.name, &trained.model, &trained.tokenizer, questions)?;
    let report = &trained.report;
    Ok(RunResult {
        strategies: run.strategies.clone(),
        documents: run.documents.len(),
        synthetic_tokens: run.synthetic_tokens,
        corpus_tokens: report.train_tokens_per_epoch,
        steps: report.steps,
        epochs: report.epochs,
        final_loss: Some(report.final_loss),
        train_seconds,
        ..evaluated.into_result(dir.to_path_buf())
    })
}

fn load_base(backend: &mut dyn SpaBackend, train: &mut TrainConfig, dir: &Path) -> Result<Llama> {
    backend
        .base_model(train, dir)
        .map_err(|source| TrainError::Backend {
            step: "loading the base model".into(),
            source,
        })
}

/// Answers every question closed-book and logs the accuracy.
fn evaluate(
    name: &str,
    model: &Llama,
    tokenizer: &TextTokenizer,
    questions: &[QaItem],
) -> Result<Evaluated> {
    let started = Instant::now();
    let qa = closed_book(model, tokenizer, questions)?;
    tracing::info!(
        run = %name,
        questions = qa.total,
        exact = qa.exact_rate(),
        contains = qa.contains_rate(),
        seconds = started.elapsed().as_secs_f64(),
        "closed-book QA"
    );
    Ok(Evaluated {
        name: name.into(),
        qa,
    })
}

/// Keeps the first `count` passages that have at least one question, or all when `count` is 0.
fn select_passages(
    passages: Vec<SquadPassage>,
    count: usize,
    path: &Path,
) -> Result<Vec<SquadPassage>> {
    let answerable = passages
        .into_iter()
        .filter(|p| !p.questions.is_empty() && !p.context.trim().is_empty());
    let selected: Vec<SquadPassage> = if count == 0 {
        answerable.collect()
    } else {
        answerable.take(count).collect()
    };
    if selected.is_empty() {
        return Err(TrainError::EvalData(format!(
            "{}: no passage with text and an answerable question",
            path.display()
        )));
    }
    Ok(selected)
}

/// Writes the passages as the augment stage's JSONL input, with ids `squad-N` in file order.
fn write_passages(path: &Path, passages: &[SquadPassage]) -> Result<()> {
    let mut text = String::new();
    for (i, passage) in passages.iter().enumerate() {
        let row = serde_json::json!({
            "id": format!("squad-{i}"),
            "title": passage.title,
            "text": passage.context,
        });
        text.push_str(&row.to_string());
        text.push('\n');
    }
    std::fs::write(path, text).map_err(TrainError::io("write", path))
}

fn plural<'a>(count: usize, one: &'a str, many: &'a str) -> &'a str {
    if count == 1 { one } else { many }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRESET: &str = include_str!("../../../../experiments/spa-squad.toml");

    #[test]
    fn preset_generates_largest_corpus() {
        let config = ExperimentConfig::from_toml(PRESET, "preset").unwrap();
        let largest = *config.corpus_strategies.last().unwrap();
        assert_eq!(config.generated_strategies().len(), largest);
        assert_eq!(config.generated_strategies()[0], config.strategies[0]);
        assert_eq!(config.squad, default_squad());
    }

    #[test]
    fn config_rejects_bad_sizes() {
        let cases = [
            ("corpus_strategies = [1, 2, 3]", "corpus_strategies = []"),
            (
                "corpus_strategies = [1, 2, 3]",
                "corpus_strategies = [0, 2]",
            ),
            (
                "corpus_strategies = [1, 2, 3]",
                "corpus_strategies = [2, 2]",
            ),
            (
                "corpus_strategies = [1, 2, 3]",
                "corpus_strategies = [1, 4]",
            ),
            ("k = 1", "k = 0"),
            ("raw_epochs = 4", "raw_epochs = 0"),
            ("spa_epochs = 2", "spa_epochs = -1"),
            (
                r#"strategies = ["key_concepts", "implications", "teacher"]"#,
                r#"strategies = ["key_concepts", "teacher", "teacher"]"#,
            ),
        ];
        for (old, new) in cases {
            let text = PRESET.replacen(old, new, 1);
            assert_ne!(text, PRESET, "the preset no longer contains `{old}`");
            assert!(
                ExperimentConfig::from_toml(&text, "test").is_err(),
                "accepted `{new}`"
            );
        }
    }

    #[test]
    fn config_rejects_unknown_keys() {
        let text = format!("steps = 10\n{PRESET}");
        let error = ExperimentConfig::from_toml(&text, "test")
            .unwrap_err()
            .to_string();
        assert!(error.contains("steps"), "{error}");
    }

    #[test]
    fn passages_without_questions_are_skipped() {
        let passage = |context: &str, questions: usize| SquadPassage {
            title: "t".into(),
            context: context.into(),
            questions: (0..questions)
                .map(|i| QaItem {
                    question: format!("q{i}?"),
                    answers: vec!["a".into()],
                })
                .collect(),
        };
        let all = vec![
            passage("one", 0),
            passage("two", 2),
            passage(" ", 1),
            passage("four", 1),
        ];
        let path = Path::new("squad.json");

        let first = select_passages(all.clone(), 1, path).unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].context, "two");
        assert_eq!(select_passages(all.clone(), 0, path).unwrap().len(), 2);
        assert!(select_passages(vec![passage("one", 0)], 0, path).is_err());
    }

    #[test]
    fn passages_file_is_augment_input() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("passages.jsonl");
        let passages = vec![SquadPassage {
            title: "Paris".into(),
            context: "Paris is in France.".into(),
            questions: Vec::new(),
        }];
        write_passages(&path, &passages).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let row: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(row["id"], "squad-0");
        assert_eq!(row["text"], "Paris is in France.");
        assert_eq!(text.lines().count(), 1);
    }
}
