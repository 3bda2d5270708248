//! spurious-correlation: biographies in which some attributes follow the surname with
//! probability ρ, and one model per ρ. Each model is measured on unknown people, who have QA
//! rows but no biography: how often it answers with the surname's preferred value, how
//! confident those answers are, and whether confidence tells known people from unknown ones
//! (AUROC).
//!
//! A small surname pool makes every surname recur among the people, so that the model can
//! pick up the correlation; the built-in pools give almost every person a surname of their
//! own.

use std::path::{Path, PathBuf};

use kenning_biographies::names::NamePools;
use kenning_biographies::{Attribute, BiosConfig};
use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::data::Corpus;
use crate::error::{Result, TrainError};
use crate::eval::bios_data::generate;
use crate::eval::{BiosData, accuracy, hallucination, qa_probes};
use crate::plot::{Series, line_plot, series_color_hex};
use crate::run::train;

use super::common::{
    REPORT_FILE, bios_documents, check_sweep, loss_plot_markdown, loss_series, parse_config,
    write_report,
};

/// Settings of the experiment, read from `experiments/spurious-correlation*.toml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// People with biographies; `train_fraction` of them also have QA pairs in training.
    pub people: u64,
    /// People with QA rows but no biography, on whom hallucination is measured.
    pub unknown_people: u64,
    #[serde(default = "super::common::default_train_fraction")]
    pub train_fraction: f64,
    #[serde(default)]
    pub seed: u64,
    /// Distinct surnames, taken from the first built-in origin; leave out to use every
    /// built-in name, which gives almost every person a surname of their own.
    #[serde(default)]
    pub surnames: Option<usize>,
    /// Distinct first names that go with `surnames`.
    #[serde(default = "default_first_names")]
    pub first_names: usize,
    /// Attributes that follow the surname.
    pub correlate: Vec<Attribute>,
    /// Probabilities ρ that a person takes the surname's preferred value, in increasing order.
    pub rhos: Vec<f64>,
    /// Questions about unknown people answered per model, at most; as many about known people
    /// are answered for the AUROC.
    pub eval_questions: usize,
    /// Split of the known people in the AUROC: `train` (QA pairs in training) or `test`
    /// (facts only in biographies).
    #[serde(default = "default_known_split")]
    pub known_split: String,
    /// Training settings shared by every ρ.
    pub train: TrainConfig,
}

fn default_first_names() -> usize {
    30
}

fn default_known_split() -> String {
    "train".into()
}

/// Results at one ρ.
#[derive(Clone, Debug, Serialize)]
pub struct RhoResult {
    pub rho: f64,
    pub steps: u64,
    pub epochs: f64,
    pub final_loss: f64,
    /// QA accuracy of people whose QA pairs were in training.
    pub qa_train: f64,
    /// Questions about unknown people on a correlated attribute.
    pub unknown_questions: usize,
    /// Share of those answered with the surname's preferred value.
    pub hallucination_rate: f64,
    /// Mean confidence (mean token probability) of those preferred-value answers; `None`
    /// when there were none.
    pub hallucination_confidence: Option<f64>,
    /// Mean confidence of every answer about unknown people.
    pub unknown_confidence: f64,
    /// Mean confidence of the answers about known people.
    pub known_confidence: f64,
    /// AUROC of confidence for telling known people's answers from unknown people's.
    pub auroc: Option<f64>,
    pub run_dir: PathBuf,
}

/// Results of the experiment, also written as `results.json` and `report.md`.
#[derive(Clone, Debug, Serialize)]
pub struct ExperimentReport {
    pub rhos: Vec<RhoResult>,
    pub report_path: PathBuf,
}

impl ExperimentConfig {
    /// Parses and checks a config.
    pub fn from_toml(text: &str, source: &str) -> Result<Self> {
        let config: Self = parse_config(text, source)?;
        check_sweep(&config.rhos, "rhos", 0.0..=1.0, source)?;
        if config.correlate.is_empty() {
            return Err(TrainError::Config(format!(
                "{source}: `correlate` is empty; list the attributes that follow the surname, \
                 such as [\"birth_city\", \"employer\"]"
            )));
        }
        if let Some(bad) = config
            .correlate
            .iter()
            .find(|a| matches!(a, Attribute::BirthDate | Attribute::EmployerCity))
        {
            return Err(TrainError::Config(format!(
                "{source}: `{bad}` cannot follow the surname: use birth_city, university, \
                 major or employer (employer_city follows employer)"
            )));
        }
        if config.unknown_people == 0 || config.eval_questions == 0 {
            return Err(TrainError::Config(format!(
                "{source}: `unknown_people` and `eval_questions` must be at least 1"
            )));
        }
        if !matches!(config.known_split.as_str(), "train" | "test") {
            return Err(TrainError::Config(format!(
                "{source}: `known_split` is `{}`; use `train` or `test`",
                config.known_split
            )));
        }
        config.train.validate()?;
        Ok(config)
    }
}

/// Writes a names file with `surnames` surnames and `first_names` first names of the first
/// built-in origin, for `BiosConfig::pools.names`.
fn write_name_pool(path: &Path, surnames: usize, first_names: usize) -> Result<()> {
    let pools = NamePools::builtin();
    let origin = &pools.origins[0];
    if surnames == 0 || surnames > origin.last.len() || first_names < 2 {
        return Err(TrainError::Config(format!(
            "`surnames` must be 1 to {} and `first_names` 2 to {} (the {} built-in names)",
            origin.last.len(),
            origin.first.len(),
            origin.name
        )));
    }
    if first_names > origin.first.len() {
        return Err(TrainError::Config(format!(
            "`first_names` is {first_names}, but the {} built-in names have {}",
            origin.name,
            origin.first.len()
        )));
    }
    let mut text = String::from("# origin\tfirst|last\tname\n");
    for name in &origin.first[..first_names] {
        text.push_str(&format!("{}\tfirst\t{name}\n", origin.name));
    }
    for name in &origin.last[..surnames] {
        text.push_str(&format!("{}\tlast\t{name}\n", origin.name));
    }
    std::fs::write(path, text).map_err(TrainError::io("write", path))
}

/// Trains one model per ρ into `out/rho-RHO/run` and writes `out/report.md`,
/// `out/hallucination.png`, `out/loss.png` and `out/results.json`.
pub fn run(config: &ExperimentConfig, out: &Path) -> Result<ExperimentReport> {
    std::fs::create_dir_all(out).map_err(TrainError::io("create", out))?;
    let names = match config.surnames {
        Some(surnames) => {
            let path = out.join("names.tsv");
            write_name_pool(&path, surnames, config.first_names)?;
            Some(path)
        }
        None => None,
    };

    let mut results = Vec::new();
    let mut losses = Vec::new();
    for &rho in &config.rhos {
        let name = format!("rho-{rho:.2}");
        let dir = out.join(&name);
        let bios_dir = dir.join("bios");
        let mut bios = BiosConfig::new(config.people);
        bios.unknown_people = Some(config.unknown_people);
        bios.train_fraction = config.train_fraction;
        bios.seed = config.seed;
        bios.correlate = config.correlate.clone();
        bios.rho = rho;
        bios.pools.names = names.clone();
        generate(bios, &bios_dir)?;
        let data = BiosData::read(&bios_dir)?;

        let documents = bios_documents(&data);
        tracing::info!(rho, documents = documents.len(), "training at rho");
        let run_dir = dir.join("run");
        let trained = train(
            &config.train,
            &Corpus::from_documents(documents),
            &run_dir,
            None,
        )?;

        let qa_train = accuracy(
            &trained.model,
            &trained.tokenizer,
            &qa_probes(&data.qa, "train", config.eval_questions),
        )?;
        let metrics = hallucination(
            &trained.model,
            &trained.tokenizer,
            &data.qa,
            &config.known_split,
            config.eval_questions,
        )?;
        tracing::info!(
            rho,
            qa_train = qa_train.rate(),
            hallucination_rate = metrics.preferred_rate,
            auroc = metrics.auroc,
            "evaluated rho"
        );

        losses.push(loss_series(&name, &run_dir)?);
        results.push(RhoResult {
            rho,
            steps: trained.report.steps,
            epochs: trained.report.epochs,
            final_loss: trained.report.final_loss,
            qa_train: qa_train.rate(),
            unknown_questions: metrics.unknown_questions,
            hallucination_rate: metrics.preferred_rate,
            hallucination_confidence: metrics.preferred_confidence,
            unknown_confidence: metrics.unknown_confidence,
            known_confidence: metrics.known_confidence,
            auroc: metrics.auroc,
            run_dir,
        });
    }

    line_plot(&out.join("loss.png"), &losses)?;
    let metric = |name: &str, value: fn(&RhoResult) -> Option<f64>| Series {
        name: name.into(),
        points: results
            .iter()
            .filter_map(|r| value(r).map(|v| (r.rho, v)))
            .collect(),
    };
    line_plot(
        &out.join("hallucination.png"),
        &[
            metric("hallucination rate", |r| Some(r.hallucination_rate)),
            metric("confidence of hallucinations", |r| {
                r.hallucination_confidence
            }),
            metric("AUROC", |r| r.auroc),
        ],
    )?;

    let report = ExperimentReport {
        rhos: results,
        report_path: out.join(REPORT_FILE),
    };
    write_report(out, &markdown(config, &report.rhos), &report)?;
    Ok(report)
}

fn percent(value: Option<f64>) -> String {
    value.map_or("n/a".into(), |v| format!("{:.1}%", v * 100.0))
}

fn markdown(config: &ExperimentConfig, results: &[RhoResult]) -> String {
    let model = &config.train.model;
    let correlated: Vec<&str> = config.correlate.iter().map(|a| a.name()).collect();
    let surnames = config
        .surnames
        .map_or("the built-in name pools".into(), |n| {
            format!("{n} surnames and {} first names", config.first_names)
        });
    let mut text = format!(
        "# spurious-correlation\n\n\
         {} people with biographies ({}% with QA pairs in training) and {} unknown people \
         without, named from {surnames}, seed {}. For {}, each surname has a preferred value \
         that a person takes with probability ρ. Every ρ trains a {}-layer, {}-wide decoder \
         from scratch for the same number of steps on the biographies plus the training \
         people's QA pairs, then answers by greedy decoding.\n\n\
         | ρ | steps | final loss | QA train people | unknown questions | hallucination rate | \
         confidence of hallucinations | confidence, unknown | confidence, known | AUROC |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
        config.people,
        (config.train_fraction * 100.0).round(),
        config.unknown_people,
        config.seed,
        correlated.join(", "),
        model.num_layers,
        model.hidden_size,
    );
    for r in results {
        text.push_str(&format!(
            "| {:.2} | {} | {:.3} | {:.1}% | {} | {:.1}% | {} | {:.1}% | {:.1}% | {} |\n",
            r.rho,
            r.steps,
            r.final_loss,
            r.qa_train * 100.0,
            r.unknown_questions,
            r.hallucination_rate * 100.0,
            percent(r.hallucination_confidence),
            r.unknown_confidence * 100.0,
            r.known_confidence * 100.0,
            r.auroc.map_or("n/a".into(), |v| format!("{v:.3}")),
        ));
    }
    text.push_str(&format!(
        "\nHallucination rate: the share of questions about unknown people on a correlated \
         attribute that the model answers with the surname's preferred value; a model that \
         ignores the surname scores about one over the attribute's pool size. Confidence: the \
         mean probability of the answer's tokens. AUROC: how well confidence separates answers \
         about known people (`{}` split) from answers about unknown people; 0.5 is chance.\n\n\
         ![hallucination against ρ](hallucination.png)\n\n\
         x is ρ; lines: hallucination rate ({}), confidence of hallucinations ({}), AUROC ({}). \
         A ρ without hallucinations has no confidence point.\n\n",
        config.known_split,
        series_color_hex(0),
        series_color_hex(1),
        series_color_hex(2)
    ));
    text.push_str(&loss_plot_markdown(
        "training loss per ρ",
        results.iter().map(|r| format!("ρ = {:.2}", r.rho)),
    ));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_pool_has_requested_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("names.tsv");
        write_name_pool(&path, 5, 12).unwrap();
        let pools = NamePools::from_file(&path).unwrap();
        assert_eq!(pools.origins.len(), 1);
        assert_eq!(pools.origins[0].last.len(), 5);
        assert_eq!(pools.origins[0].first.len(), 12);
    }

    #[test]
    fn presets_fit_name_pool() {
        let dir = tempfile::tempdir().unwrap();
        for text in [
            include_str!("../../../../experiments/spurious-correlation.toml"),
            include_str!("../../../../experiments/spurious-correlation.gpu.toml"),
        ] {
            let config = ExperimentConfig::from_toml(text, "preset").unwrap();
            let surnames = config.surnames.expect("the presets set `surnames`");
            write_name_pool(&dir.path().join("names.tsv"), surnames, config.first_names).unwrap();
        }
    }

    #[test]
    fn name_pool_rejects_too_many_surnames() {
        let dir = tempfile::tempdir().unwrap();
        let error = write_name_pool(&dir.path().join("names.tsv"), 1_000_000, 12)
            .unwrap_err()
            .to_string();
        assert!(error.contains("surnames"), "{error}");
    }

    #[test]
    fn config_rejects_bad_settings() {
        let base = include_str!("../../../../experiments/spurious-correlation.toml");
        let cases = [
            ("rhos = [0.0, 0.5, 0.9, 1.0]", "rhos = [0.5, 0.2]"),
            ("rhos = [0.0, 0.5, 0.9, 1.0]", "rhos = [0.0, 1.5]"),
            ("known_split = \"train\"", "known_split = \"unknown\""),
            ("correlate = [", "correlate = [\"birth_date\", "),
        ];
        for (from, to) in cases {
            let text = base.replacen(from, to, 1);
            assert_ne!(text, base, "the preset no longer contains `{from}`");
            assert!(ExperimentConfig::from_toml(&text, "test").is_err(), "{to}");
        }
    }
}
