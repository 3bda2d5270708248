//! The spa-squad report: `report.md` with the results table, `accuracy.png` and
//! `results.json`.

use std::path::Path;

use crate::error::Result;
use crate::eval::qa::MAX_ANSWER_TOKENS;
use crate::plot::{Series, line_plot, series_color_hex};

use super::common::write_report;
use super::spa_squad::{ExperimentConfig, ExperimentReport, RunResult};

/// File name of the accuracy plot inside the output folder.
pub(crate) const PLOT_FILE: &str = "accuracy.png";

/// Writes `out/accuracy.png`, `out/report.md` and `out/results.json`.
pub(crate) fn write_outputs(
    out: &Path,
    config: &ExperimentConfig,
    report: &ExperimentReport,
) -> Result<()> {
    plot_accuracy(&out.join(PLOT_FILE), report)?;
    write_report(out, &markdown(config, report), report)
}

/// Draws containment accuracy against synthetic tokens for the SPA corpora, with the raw
/// passages and the untrained model as horizontal reference lines.
fn plot_accuracy(path: &Path, report: &ExperimentReport) -> Result<()> {
    let right = report
        .spa
        .iter()
        .map(|r| r.synthetic_tokens as f64)
        .fold(1.0, f64::max);
    let reference = |result: &RunResult| Series {
        name: result.name.clone(),
        points: vec![(0.0, result.contains), (right, result.contains)],
    };
    let spa = Series {
        name: "SPA corpora".into(),
        points: report
            .spa
            .iter()
            .map(|r| (r.synthetic_tokens as f64, r.contains))
            .collect(),
    };
    line_plot(
        path,
        &[spa, reference(&report.raw), reference(&report.untrained)],
    )
}

fn markdown(config: &ExperimentConfig, report: &ExperimentReport) -> String {
    let mut text = format!(
        "# spa-squad\n\n\
         {} SQuAD passages ({} tokens) from `{}` and their {} questions. Every model continues \
         pretraining the same base model: on the raw passages for {} epochs, or on an SPA \
         corpus for {} epochs. An SPA corpus holds {} {} per passage and strategy, written by \
         the augment stage with at most {} tokens each at temperature {}. Generating the \
         rewrites, or reusing those of an earlier run in the same folder, took {:.0} s and the \
         whole run {:.1} minutes.\n\n\
         | model | strategies | documents | synthetic tokens | tokens per epoch | epochs | steps \
         | final loss | training time | exact match | contains answer |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
        report.passages,
        report.passage_tokens,
        report.squad.display(),
        report.questions,
        config.raw_epochs,
        config.spa_epochs,
        config.k,
        if config.k == 1 { "rewrite" } else { "rewrites" },
        config.generation.max_tokens,
        config.generation.temperature,
        report.generation_seconds,
        report.total_seconds / 60.0,
    );
    for result in std::iter::once(&report.untrained)
        .chain(std::iter::once(&report.raw))
        .chain(&report.spa)
    {
        text.push_str(&table_row(result));
    }

    text.push_str(&format!(
        "\nEach model answers `Question: ...\\nAnswer:` greedily, with at most \
         {MAX_ANSWER_TOKENS} tokens and up to the first line break. Exact match: the answer \
         equals an accepted answer after SQuAD normalization (lower case, no punctuation, no \
         articles). Contains answer: the normalized answer contains an accepted answer as \
         whole words. Synthetic tokens and tokens per epoch are counted with the base model's \
         tokenizer.\n\n"
    ));
    text.push_str(&comparison_text(report));
    text.push_str(&format!(
        "\n\n![containment accuracy against synthetic tokens]({PLOT_FILE})\n\n\
         x is the number of synthetic training tokens and y the share of answers that contain \
         an accepted answer. Lines: SPA corpora ({}), raw passages ({}), untrained model ({}); \
         the last two are horizontal reference lines.\n",
        series_color_hex(0),
        series_color_hex(1),
        series_color_hex(2)
    ));
    text
}

fn table_row(result: &RunResult) -> String {
    let strategies = if result.strategies.is_empty() {
        "-".to_string()
    } else {
        result.strategies.join(", ")
    };
    let final_loss = result
        .final_loss
        .map_or_else(|| "-".to_string(), |loss| format!("{loss:.3}"));
    format!(
        "| {} | {strategies} | {} | {} | {} | {:.1} | {} | {final_loss} | {:.0} s | {:.1}% | {:.1}% |\n",
        result.name,
        result.documents,
        result.synthetic_tokens,
        result.corpus_tokens,
        result.epochs,
        result.steps,
        result.train_seconds,
        result.exact * 100.0,
        result.contains * 100.0,
    )
}

/// Compares the largest SPA corpus with the raw passages and the untrained model, and states
/// how much one answer moves the accuracy.
fn comparison_text(report: &ExperimentReport) -> String {
    let step = if report.questions == 0 {
        0.0
    } else {
        100.0 / report.questions as f64
    };
    let mut text = String::new();
    if let Some(largest) = report.spa.last() {
        text.push_str(&format!(
            "The largest SPA corpus ({} synthetic tokens) answers {:.1}% of the questions \
             (contains answer), against {:.1}% after training on the raw passages and {:.1}% \
             for the untrained model. ",
            largest.synthetic_tokens,
            largest.contains * 100.0,
            report.raw.contains * 100.0,
            report.untrained.contains * 100.0
        ));
    }
    text.push_str(&format!(
        "With {} questions one answer moves an accuracy by {step:.1} points, so differences \
         of a few answers are within noise.",
        report.questions
    ));
    text
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::eval::QaScore;

    fn result(name: &str, synthetic_tokens: usize, contains: usize) -> RunResult {
        let qa = QaScore {
            total: 8,
            exact: contains / 2,
            contains,
        };
        RunResult {
            name: name.into(),
            strategies: if synthetic_tokens > 0 {
                vec!["key_concepts".into()]
            } else {
                Vec::new()
            },
            documents: 3,
            synthetic_tokens,
            corpus_tokens: synthetic_tokens.max(500),
            steps: 12,
            epochs: 2.0,
            final_loss: Some(1.5),
            train_seconds: 40.0,
            exact: qa.exact_rate(),
            contains: qa.contains_rate(),
            qa,
            run_dir: PathBuf::from(name),
        }
    }

    fn report(out: &Path) -> ExperimentReport {
        ExperimentReport {
            squad: PathBuf::from("squad.json"),
            passages: 2,
            questions: 8,
            passage_tokens: 500,
            generation_seconds: 90.0,
            total_seconds: 600.0,
            untrained: result("untrained", 0, 1),
            raw: result("raw passages", 0, 2),
            spa: vec![
                result("SPA, 1 strategy", 1000, 3),
                result("SPA, 2 strategies", 2500, 5),
            ],
            report_path: out.join("report.md"),
        }
    }

    fn config() -> ExperimentConfig {
        let text = include_str!("../../../../experiments/spa-squad.toml");
        ExperimentConfig::from_toml(text, "spa-squad.toml").unwrap()
    }

    #[test]
    fn outputs_have_table_plot_and_json() {
        let dir = tempfile::tempdir().unwrap();
        let report = report(dir.path());
        write_outputs(dir.path(), &config(), &report).unwrap();

        let markdown = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
        assert!(
            markdown.contains("| SPA, 2 strategies | key_concepts | 3 | 2500 | 2500 | 2.0 | 12 |"),
            "{markdown}"
        );
        assert!(markdown.contains("| 25.0% | 62.5% |"), "{markdown}");
        assert!(markdown.contains("| untrained | - |"), "{markdown}");
        assert!(
            markdown.contains("answers 62.5% of the questions"),
            "{markdown}"
        );
        assert!(
            markdown.contains("moves an accuracy by 12.5 points"),
            "{markdown}"
        );

        let png = std::fs::read(dir.path().join(PLOT_FILE)).unwrap();
        assert_eq!(&png[..4], b"\x89PNG");

        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("results.json")).unwrap())
                .unwrap();
        assert_eq!(json["spa"].as_array().unwrap().len(), 2);
        assert_eq!(json["spa"][1]["synthetic_tokens"], 2500);
        assert_eq!(json["raw"]["qa"]["contains"], 2);
    }

    #[test]
    fn report_without_spa_still_compares() {
        let dir = tempfile::tempdir().unwrap();
        let mut report = report(dir.path());
        report.spa.clear();
        let text = markdown(&config(), &report);
        assert!(!text.contains("largest SPA corpus"), "{text}");
        assert!(text.contains("| raw passages | - |"), "{text}");
    }
}
