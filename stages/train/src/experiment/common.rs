//! Steps that every experiment shares: parsing its config, the biographies training
//! documents, loss curves and the `report.md` and `results.json` files.

use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Result, TrainError};
use crate::eval::{BiosData, qa_document};
use crate::metrics::MetricsLog;
use crate::plot::{Series, series_color_hex};
use crate::run::write_json;

/// Share of the people whose QA pairs are in training, when a config leaves it out.
pub(crate) fn default_train_fraction() -> f64 {
    0.5
}

/// Parses an experiment config from TOML. `source` names the file or preset in errors.
pub(crate) fn parse_config<T: DeserializeOwned>(text: &str, source: &str) -> Result<T> {
    toml::from_str(text).map_err(|e| TrainError::ConfigFile {
        path: source.into(),
        message: e.to_string(),
    })
}

/// Returns the training documents of a biographies run: every biography, then the QA pairs
/// of the `train` split, so that the model learns the question format on those people.
pub(crate) fn bios_documents(data: &BiosData) -> Vec<String> {
    let mut documents: Vec<String> = data.bios.iter().map(|b| b.text.clone()).collect();
    documents.extend(
        data.qa
            .iter()
            .filter(|r| r.split == "train")
            .map(|r| qa_document(&r.question, &r.answer)),
    );
    documents
}

/// Reads the training loss per step of the run in `run_dir` as a plot series.
pub(crate) fn loss_series(name: &str, run_dir: &Path) -> Result<Series> {
    let metrics = MetricsLog::open(&run_dir.join("metrics.csv"), Some(u64::MAX))?;
    Ok(Series {
        name: name.into(),
        points: metrics
            .rows()
            .iter()
            .map(|r| (r.step as f64, r.loss))
            .collect(),
    })
}

/// Returns the markdown that shows `loss.png` with `alt` text, followed by a legend that gives
/// the colour of each series label, in plot order.
pub(crate) fn loss_plot_markdown(alt: &str, labels: impl Iterator<Item = String>) -> String {
    let legend: Vec<String> = labels
        .enumerate()
        .map(|(i, label)| format!("{label} ({})", series_color_hex(i)))
        .collect();
    format!(
        "![{alt}](loss.png)\n\nLines: {}; x is the step, y the training loss.\n",
        legend.join(", ")
    )
}

/// Returns the number of tokens of `texts` under `tokenizer`.
pub(crate) fn token_count(
    tokenizer: &crate::tokenizer::TextTokenizer,
    texts: &[String],
) -> Result<usize> {
    Ok(tokenizer.encode_all(texts)?.iter().map(Vec::len).sum())
}

/// File name of an experiment's markdown report inside its output folder.
pub(crate) const REPORT_FILE: &str = "report.md";

/// Writes the markdown report to `out/report.md` and `results` to `out/results.json`.
pub(crate) fn write_report(out: &Path, markdown: &str, results: &impl Serialize) -> Result<()> {
    let report_path = out.join(REPORT_FILE);
    std::fs::write(&report_path, markdown).map_err(TrainError::io("write", &report_path))?;
    write_json(&out.join("results.json"), results)
}

/// Checks that every value of an experiment's sweep lies in `range` and that the values
/// strictly increase, so that tables and plots read left to right.
pub(crate) fn check_sweep(
    values: &[f64],
    name: &str,
    range: std::ops::RangeInclusive<f64>,
    source: &str,
) -> Result<()> {
    if values.is_empty() {
        return Err(TrainError::Config(format!(
            "{source}: `{name}` is empty. List at least one value"
        )));
    }
    if let Some(bad) = values.iter().find(|v| !range.contains(v)) {
        return Err(TrainError::Config(format!(
            "{source}: `{name}` value {bad} is outside {} to {}",
            range.start(),
            range.end()
        )));
    }
    if values.windows(2).any(|pair| pair[0] >= pair[1]) {
        return Err(TrainError::Config(format!(
            "{source}: the values of `{name}` must strictly increase, but they are {values:?}"
        )));
    }
    Ok(())
}
