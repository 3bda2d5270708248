//! mixing-phase-transition: biographies mixed with generic web text at several mixing ratios
//! r (the share of the training bytes that are biographies), the same number of training
//! steps for every r, then storage and QA accuracy against r.
//!
//! Every biography appears once in each mixed corpus, so with a fixed budget of steps a
//! biography is seen about r times as often as in a corpus of biographies alone. Accuracy
//! that stays near zero up to some r and then rises steeply is the phase transition.

use std::path::{Path, PathBuf};

use kenning_biographies::BiosConfig;
use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::data::Corpus;
use crate::error::{Result, TrainError};
use crate::eval::bios_data::generate;
use crate::eval::{BiosData, Probe, accuracy, qa_probes, storage_probes};
use crate::plot::{Series, line_plot, series_color_hex};
use crate::run::train;

use super::common::{
    REPORT_FILE, bios_documents, check_sweep, loss_plot_markdown, loss_series, parse_config,
    token_count, write_report,
};
use super::mixing::{mix, read_web_text};

/// Smallest rise of storage accuracy between two neighboring ratios, in accuracy points
/// (0 to 1), that the report calls a jump.
pub const JUMP_MIN_RISE: f64 = 0.2;

/// Settings of the experiment, read from `experiments/mixing-phase-transition*.toml`.
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
    /// Mixing ratios r: shares of the training bytes that are biographies (above 0, at most
    /// 1), in increasing order.
    pub ratios: Vec<f64>,
    /// Web text: a SQuAD JSON file, a JSON or JSONL file with a `text` field, a folder of
    /// Parquet shards or a folder of text files. A relative path is read from the current
    /// folder.
    #[serde(default = "default_web_text")]
    pub web_text: PathBuf,
    /// Training settings shared by every ratio.
    pub train: TrainConfig,
}

fn default_web_text() -> PathBuf {
    "../shared/datasets/squad_val_200.json".into()
}

/// Results at one mixing ratio.
#[derive(Clone, Debug, Serialize)]
pub struct RatioResult {
    /// Requested share of the training bytes that are biographies.
    pub ratio: f64,
    /// Realized share of the corpus bytes that are biographies.
    pub bytes_fraction: f64,
    /// Realized share of the corpus tokens that are biographies, with the run's tokenizer.
    pub tokens_fraction: f64,
    /// Passes over the web text that the mix needed.
    pub web_passes: f64,
    pub steps: u64,
    /// Passes over the mixed corpus, which is also how often each biography was seen.
    pub epochs: f64,
    pub final_loss: f64,
    /// Biography completion accuracy of people whose QA pairs were in training.
    pub storage: f64,
    /// QA accuracy of people whose QA pairs were in training.
    pub qa_train: f64,
    /// QA accuracy of held-out people, whose facts were only in biographies.
    pub qa_test: f64,
    pub run_dir: PathBuf,
}

/// The largest rise of storage accuracy between two neighboring ratios.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Jump {
    pub from_ratio: f64,
    pub to_ratio: f64,
    pub from_accuracy: f64,
    pub to_accuracy: f64,
    /// Whether the rise reaches both [`JUMP_MIN_RISE`] and half the accuracy range of the
    /// sweep.
    pub is_transition: bool,
}

/// Results of the experiment, also written as `results.json` and `report.md`.
#[derive(Clone, Debug, Serialize)]
pub struct ExperimentReport {
    pub ratios: Vec<RatioResult>,
    /// `None` when the sweep has one ratio or storage accuracy never rises.
    pub largest_jump: Option<Jump>,
    pub report_path: PathBuf,
}

impl ExperimentConfig {
    /// Parses and checks a config.
    pub fn from_toml(text: &str, source: &str) -> Result<Self> {
        let config: Self = parse_config(text, source)?;
        check_sweep(&config.ratios, "ratios", 0.0..=1.0, source)?;
        if config.ratios[0] == 0.0 {
            return Err(TrainError::Config(format!(
                "{source}: ratio 0 leaves no biographies to learn; start `ratios` above 0"
            )));
        }
        config.train.validate()?;
        Ok(config)
    }
}

/// Finds the largest rise of accuracy between neighboring `(ratio, accuracy)` points, which
/// must be sorted by ratio.
pub fn largest_jump(points: &[(f64, f64)]) -> Option<Jump> {
    let (min, max) = points
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &(_, y)| {
            (lo.min(y), hi.max(y))
        });
    let pair = points
        .windows(2)
        .filter(|pair| pair[1].1 > pair[0].1)
        .max_by(|a, b| (a[1].1 - a[0].1).total_cmp(&(b[1].1 - b[0].1)))?;
    let rise = pair[1].1 - pair[0].1;
    Some(Jump {
        from_ratio: pair[0].0,
        to_ratio: pair[1].0,
        from_accuracy: pair[0].1,
        to_accuracy: pair[1].1,
        is_transition: rise >= JUMP_MIN_RISE && rise >= 0.5 * (max - min),
    })
}

/// Generates the biographies once, trains one model per ratio into `out/r-RATIO/run`, and
/// writes `out/report.md`, `out/loss.png`, `out/accuracy.png` and `out/results.json`.
pub fn run(config: &ExperimentConfig, out: &Path) -> Result<ExperimentReport> {
    std::fs::create_dir_all(out).map_err(TrainError::io("create", out))?;
    let web = read_web_text(&config.web_text)?;
    let bios_dir = out.join("bios");
    let mut bios = BiosConfig::new(config.people);
    bios.train_fraction = config.train_fraction;
    bios.seed = config.seed;
    generate(bios, &bios_dir)?;
    let data = BiosData::read(&bios_dir)?;
    let documents = bios_documents(&data);
    tracing::info!(
        web_documents = web.len(),
        bios_documents = documents.len(),
        "read biographies and web text"
    );

    let mut results = Vec::new();
    let mut losses = Vec::new();
    for &ratio in &config.ratios {
        let name = format!("r-{ratio:.2}");
        let corpus = mix(&documents, &web, ratio, config.seed)?;
        tracing::info!(
            ratio,
            bytes_fraction = corpus.bios_fraction(),
            web_passes = corpus.web_passes,
            documents = corpus.documents.len(),
            "training at mixing ratio"
        );
        let run_dir = out.join(&name).join("run");
        let trained = train(
            &config.train,
            &Corpus::from_documents(corpus.documents.clone()),
            &run_dir,
            None,
        )?;

        let bios_tokens = token_count(&trained.tokenizer, &documents)?;
        let web_tokens = token_count(&trained.tokenizer, corpus.web())?;
        let questions = config.eval_people * 6;
        let score = |probes: Vec<Probe>| accuracy(&trained.model, &trained.tokenizer, &probes);
        let storage = score(storage_probes(&data, &["train"], config.eval_people))?;
        let qa_train = score(qa_probes(&data.qa, "train", questions))?;
        let qa_test = score(qa_probes(&data.qa, "test", questions))?;
        tracing::info!(
            ratio,
            storage = storage.rate(),
            qa_train = qa_train.rate(),
            qa_test = qa_test.rate(),
            "evaluated mixing ratio"
        );

        losses.push(loss_series(&name, &run_dir)?);
        results.push(RatioResult {
            ratio,
            bytes_fraction: corpus.bios_fraction(),
            tokens_fraction: bios_tokens as f64 / (bios_tokens + web_tokens).max(1) as f64,
            web_passes: corpus.web_passes,
            steps: trained.report.steps,
            epochs: trained.report.epochs,
            final_loss: trained.report.final_loss,
            storage: storage.rate(),
            qa_train: qa_train.rate(),
            qa_test: qa_test.rate(),
            run_dir,
        });
    }

    line_plot(&out.join("loss.png"), &losses)?;
    let metric = |name: &str, value: fn(&RatioResult) -> f64| Series {
        name: name.into(),
        points: results.iter().map(|r| (r.ratio, value(r))).collect(),
    };
    let storage = metric("storage", |r| r.storage);
    line_plot(
        &out.join("accuracy.png"),
        &[
            storage.clone(),
            metric("QA, training people", |r| r.qa_train),
            metric("QA, held-out people", |r| r.qa_test),
        ],
    )?;

    let report = ExperimentReport {
        largest_jump: largest_jump(&storage.points),
        ratios: results,
        report_path: out.join(REPORT_FILE),
    };
    write_report(out, &markdown(config, &report), &report)?;
    Ok(report)
}

fn markdown(config: &ExperimentConfig, report: &ExperimentReport) -> String {
    let model = &config.train.model;
    let mut text = format!(
        "# mixing-phase-transition\n\n\
         {} people ({}% with QA pairs in training), seed {}, web text from `{}`. At each \
         mixing ratio r, biographies (with the training people's QA pairs) make up r of the \
         training bytes and web text the rest. Every ratio trains a {}-layer, {}-wide decoder \
         from scratch for the same number of steps, then answers by greedy decoding.\n\n\
         | r | bytes that are biographies | tokens that are biographies | web passes | steps | \
         exposures per biography | final loss | storage | QA train people | QA held-out people |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
        config.people,
        (config.train_fraction * 100.0).round(),
        config.seed,
        config.web_text.display(),
        model.num_layers,
        model.hidden_size,
    );
    for r in &report.ratios {
        text.push_str(&format!(
            "| {:.2} | {:.3} | {:.3} | {:.2} | {} | {:.1} | {:.3} | {:.1}% | {:.1}% | {:.1}% |\n",
            r.ratio,
            r.bytes_fraction,
            r.tokens_fraction,
            r.web_passes,
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
         value. Exposures per biography are the passes over the mixed corpus, because each \
         corpus holds every biography once.\n\n",
    );
    text.push_str(&transition_text(report.largest_jump.as_ref()));
    text.push_str(&format!(
        "\n\n![accuracy against the mixing ratio](accuracy.png)\n\n\
         x is the mixing ratio r; lines: storage ({}), QA of training people ({}), QA of \
         held-out people ({}).\n\n",
        series_color_hex(0),
        series_color_hex(1),
        series_color_hex(2)
    ));
    text.push_str(&loss_plot_markdown(
        "training loss per ratio",
        report.ratios.iter().map(|r| format!("r = {:.2}", r.ratio)),
    ));
    text
}

/// Describes the largest rise of storage accuracy, or its absence, in one paragraph.
fn transition_text(jump: Option<&Jump>) -> String {
    let Some(jump) = jump else {
        return "Phase transition: none. Storage accuracy does not rise between any two \
                neighboring ratios of this sweep."
            .into();
    };
    let rise = format!(
        "from {:.1}% at r = {:.2} to {:.1}% at r = {:.2}",
        jump.from_accuracy * 100.0,
        jump.from_ratio,
        jump.to_accuracy * 100.0,
        jump.to_ratio
    );
    if jump.is_transition {
        format!(
            "Phase transition: storage accuracy jumps {rise}, the largest rise between \
             neighboring ratios and at least half of the whole sweep's range."
        )
    } else {
        format!(
            "Phase transition: none found at this size. The largest rise of storage accuracy \
             between neighboring ratios is {rise}. A jump needs a rise of at least {:.0} \
             points that is also at least half of the sweep's range.",
            JUMP_MIN_RISE * 100.0
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jump_finds_steepest_rise() {
        let jump = largest_jump(&[(0.1, 0.0), (0.2, 0.05), (0.4, 0.6), (0.8, 0.7)]).unwrap();
        assert_eq!(jump.from_ratio, 0.2);
        assert_eq!(jump.to_ratio, 0.4);
        assert!(jump.is_transition);
    }

    #[test]
    fn gradual_rise_is_no_transition() {
        let jump = largest_jump(&[(0.1, 0.1), (0.2, 0.25), (0.4, 0.4), (0.8, 0.55)]).unwrap();
        assert!(!jump.is_transition, "{jump:?}");
    }

    #[test]
    fn small_rise_is_no_transition() {
        let jump = largest_jump(&[(0.1, 0.0), (0.2, 0.0), (0.4, 0.1), (0.8, 0.1)]).unwrap();
        assert_eq!(jump.to_ratio, 0.4);
        assert!(!jump.is_transition, "{jump:?}");
    }

    #[test]
    fn flat_or_falling_sweep_has_no_jump() {
        assert_eq!(largest_jump(&[(0.1, 0.3), (0.2, 0.3), (0.4, 0.2)]), None);
        assert_eq!(largest_jump(&[(0.5, 0.3)]), None);
        assert_eq!(largest_jump(&[]), None);
    }

    #[test]
    fn config_rejects_bad_ratios() {
        let base = include_str!("../../../../experiments/mixing-phase-transition.toml");
        for ratios in ["[]", "[0.0, 0.5]", "[0.4, 0.2]", "[0.5, 1.5]"] {
            let text = base.replacen(
                "ratios = [0.1, 0.2, 0.4, 0.8]",
                &format!("ratios = {ratios}"),
                1,
            );
            assert_ne!(text, base, "the preset no longer lists the default ratios");
            assert!(
                ExperimentConfig::from_toml(&text, "test").is_err(),
                "ratios {ratios}"
            );
        }
    }
}
