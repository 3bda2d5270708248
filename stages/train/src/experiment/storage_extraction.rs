//! storage-vs-extraction: biographies with and without augmentation (multiplicity and
//! permutation), the same training budget, then storage accuracy (completing the training
//! people's biographies) and QA accuracy on training and held-out people.
//!
//! Every variant trains on its biographies plus the QA pairs of the `train` split, so the
//! model learns the question format on half of the people; the `test` split asks about the
//! other half, whose facts the model only saw in biographies.

use std::path::{Path, PathBuf};

use kenning_biographies::BiosConfig;
use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::data::Corpus;
use crate::error::{Result, TrainError};
use crate::eval::bios_data::generate;
use crate::eval::{BiosData, accuracy, qa_probes, storage_probes};
use crate::plot::{Series, line_plot, series_color_hex};
use crate::run::train;

use super::common::{REPORT_FILE, bios_documents, loss_plot_markdown, parse_config, write_report};

/// Settings of the experiment, read from `experiments/storage-vs-extraction*.toml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// People with biographies; `train_fraction` of them also have QA pairs in training.
    pub people: u64,
    #[serde(default = "super::common::default_train_fraction")]
    pub train_fraction: f64,
    #[serde(default)]
    pub seed: u64,
    /// People evaluated per metric, at most.
    pub eval_people: usize,
    pub variants: Vec<Variant>,
    /// Training settings shared by every variant.
    pub train: TrainConfig,
}

/// One way of writing the biographies.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    pub name: String,
    /// Biographies per person.
    pub multiplicity: u32,
    /// Shuffle the sentence order of each biography.
    pub permute: bool,
    #[serde(default)]
    pub fullname: bool,
}

/// Results of one variant.
#[derive(Clone, Debug, Serialize)]
pub struct VariantResult {
    pub name: String,
    pub multiplicity: u32,
    pub permute: bool,
    pub steps: u64,
    pub epochs: f64,
    pub final_loss: f64,
    /// Biography completion accuracy of people whose QA pairs were in training.
    pub storage: f64,
    /// QA accuracy of people whose QA pairs were in training.
    pub qa_train: f64,
    /// QA accuracy of held-out people (extraction).
    pub qa_test: f64,
    pub run_dir: PathBuf,
}

/// Results of the experiment, also written as `results.json` and `report.md`.
#[derive(Clone, Debug, Serialize)]
pub struct ExperimentReport {
    pub variants: Vec<VariantResult>,
    pub report_path: PathBuf,
}

impl ExperimentConfig {
    /// Parses and checks a config.
    pub fn from_toml(text: &str, source: &str) -> Result<Self> {
        let config: Self = parse_config(text, source)?;
        if config.variants.is_empty() {
            return Err(TrainError::Config(format!(
                "{source}: add at least one [[variants]] table"
            )));
        }
        config.train.validate()?;
        Ok(config)
    }
}

/// Runs every variant into `out/VARIANT/` and writes `out/report.md`, `out/loss.png`,
/// `out/accuracy.png` and `out/results.json`.
pub fn run(config: &ExperimentConfig, out: &Path) -> Result<ExperimentReport> {
    std::fs::create_dir_all(out).map_err(TrainError::io("create", out))?;
    let mut results = Vec::new();
    let mut loss_series = Vec::new();

    for variant in &config.variants {
        let dir = out.join(&variant.name);
        let bios_dir = dir.join("bios");
        let mut bios = BiosConfig::new(config.people);
        bios.multiplicity = variant.multiplicity;
        bios.permute = variant.permute;
        bios.fullname = variant.fullname;
        bios.train_fraction = config.train_fraction;
        bios.seed = config.seed;
        generate(bios, &bios_dir)?;
        let data = BiosData::read(&bios_dir)?;

        let documents = bios_documents(&data);
        tracing::info!(variant = %variant.name, documents = documents.len(), "training variant");
        let run_dir = dir.join("run");
        let trained = train(
            &config.train,
            &Corpus::from_documents(documents),
            &run_dir,
            None,
        )?;

        let questions = config.eval_people * 6;
        let storage = accuracy(
            &trained.model,
            &trained.tokenizer,
            &storage_probes(&data, &["train"], config.eval_people),
        )?;
        let qa_train = accuracy(
            &trained.model,
            &trained.tokenizer,
            &qa_probes(&data.qa, "train", questions),
        )?;
        let qa_test = accuracy(
            &trained.model,
            &trained.tokenizer,
            &qa_probes(&data.qa, "test", questions),
        )?;
        tracing::info!(
            variant = %variant.name,
            storage = storage.rate(),
            qa_train = qa_train.rate(),
            qa_test = qa_test.rate(),
            "evaluated variant"
        );

        loss_series.push(super::common::loss_series(&variant.name, &run_dir)?);
        results.push(VariantResult {
            name: variant.name.clone(),
            multiplicity: variant.multiplicity,
            permute: variant.permute,
            steps: trained.report.steps,
            epochs: trained.report.epochs,
            final_loss: trained.report.final_loss,
            storage: storage.rate(),
            qa_train: qa_train.rate(),
            qa_test: qa_test.rate(),
            run_dir,
        });
    }

    line_plot(&out.join("loss.png"), &loss_series)?;
    let metric = |name: &str, value: fn(&VariantResult) -> f64| Series {
        name: name.into(),
        points: results
            .iter()
            .enumerate()
            .map(|(i, r)| (i as f64, value(r)))
            .collect(),
    };
    line_plot(
        &out.join("accuracy.png"),
        &[
            metric("storage", |r| r.storage),
            metric("QA, training people", |r| r.qa_train),
            metric("QA, held-out people", |r| r.qa_test),
        ],
    )?;

    let report = ExperimentReport {
        variants: results,
        report_path: out.join(REPORT_FILE),
    };
    write_report(out, &markdown(config, &report.variants), &report)?;
    Ok(report)
}

fn markdown(config: &ExperimentConfig, results: &[VariantResult]) -> String {
    let model = &config.train.model;
    let mut text = format!(
        "# storage-vs-extraction\n\n\
         {} people ({}% with QA pairs in training), seed {}. Every variant trains a \
         {}-layer, {}-wide decoder from scratch for the same number of steps on its \
         biographies plus the training people's QA pairs, then answers by greedy decoding.\n\n\
         | variant | multiplicity | permute | steps | epochs | final loss | storage | QA train people | QA held-out people |\n\
         |---|---|---|---|---|---|---|---|---|\n",
        config.people,
        (config.train_fraction * 100.0).round(),
        config.seed,
        model.num_layers,
        model.hidden_size,
    );
    for r in results {
        text.push_str(&format!(
            "| {} | {} | {} | {} | {:.1} | {:.3} | {:.1}% | {:.1}% | {:.1}% |\n",
            r.name,
            r.multiplicity,
            r.permute,
            r.steps,
            r.epochs,
            r.final_loss,
            r.storage * 100.0,
            r.qa_train * 100.0,
            r.qa_test * 100.0
        ));
    }
    text.push_str(
        "\nStorage: the biography of a training person, cut before an attribute value, is \
         completed with that value. QA: the answer to `Question: ...\\nAnswer:` equals the \
         value. Held-out people's facts appear only in biographies, so their QA accuracy \
         measures extraction.\n\n",
    );
    text.push_str(&loss_plot_markdown(
        "training loss per variant",
        results.iter().map(|r| r.name.clone()),
    ));
    text.push_str(
        "\n![accuracy per variant](accuracy.png)\n\n\
         x is the variant index in the table; lines: storage (",
    );
    text.push_str(&format!(
        "{}), QA of training people ({}), QA of held-out people ({}).\n",
        series_color_hex(0),
        series_color_hex(1),
        series_color_hex(2)
    ));
    text
}
