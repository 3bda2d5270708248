//! The corpus report of a finished augment run: token and cost totals and diversity statistics
//! over every row of the shards (earlier runs' rows included), added to `manifest.json` as
//! `corpus` and to the dataset card.

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, UInt32Type};
use kenning_pipeline::fsutil;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::stats::{CorpusStatistics, SELF_BLEU_SAMPLE, StatisticsBuilder};

/// Start and end of the card section, so that it can be replaced.
const CARD_START: &str = "<!-- kenning:corpus -->";
const CARD_END: &str = "<!-- /kenning:corpus -->";

/// Totals and statistics of every row of a run's shards.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CorpusReport {
    pub rows: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cached_tokens: u64,
    /// Total cost in US dollars of the rows that have one; `None` when no row has a cost.
    pub cost_usd: Option<f64>,
    /// Rows whose server sent no `usage`; their tokens and cost are not in the totals.
    pub rows_without_usage: u64,
    pub statistics: CorpusStatistics,
}

/// Failure to build or store the corpus report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot read {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Reads the shards listed in `out_dir/manifest.json`, then stores the report as the
/// manifest's `corpus` field and as a section of the dataset card `README.md`.
pub fn attach(out_dir: &Path) -> Result<CorpusReport, ReportError> {
    let manifest_path = out_dir.join("manifest.json");
    let read_error = |path: &Path, message: String| ReportError::Read {
        path: path.to_path_buf(),
        message,
    };
    let bytes =
        std::fs::read(&manifest_path).map_err(|e| read_error(&manifest_path, e.to_string()))?;
    let mut manifest: Value =
        serde_json::from_slice(&bytes).map_err(|e| read_error(&manifest_path, e.to_string()))?;
    let shards: Vec<PathBuf> = manifest["shards"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["path"].as_str())
        .map(|p| out_dir.join(p))
        .collect();

    let report = measure(&shards)?;

    manifest["corpus"] = serde_json::to_value(&report).expect("the report serializes");
    let json = serde_json::to_vec_pretty(&manifest).expect("the manifest serializes");
    fsutil::write_atomic(&manifest_path, &json).map_err(|source| ReportError::Write {
        path: manifest_path.clone(),
        source,
    })?;

    let card_path = out_dir.join("README.md");
    if let Ok(card) = std::fs::read_to_string(&card_path) {
        let card = with_section(&card, &card_section(&report));
        fsutil::write_atomic(&card_path, card.as_bytes()).map_err(|source| ReportError::Write {
            path: card_path.clone(),
            source,
        })?;
    }
    Ok(report)
}

/// Measures the rows of `shards`.
pub fn measure(shards: &[PathBuf]) -> Result<CorpusReport, ReportError> {
    let mut report = CorpusReport::default();
    let mut statistics = StatisticsBuilder::new();
    for path in shards {
        read_shard(path, &mut report, &mut statistics).map_err(|message| ReportError::Read {
            path: path.clone(),
            message,
        })?;
    }
    report.statistics = statistics.finish();
    Ok(report)
}

fn read_shard(
    path: &Path,
    report: &mut CorpusReport,
    statistics: &mut StatisticsBuilder,
) -> Result<(), String> {
    const COLUMNS: [&str; 5] = [
        "text",
        "prompt_tokens",
        "completion_tokens",
        "cached_tokens",
        "cost_usd",
    ];
    let file = File::open(path).map_err(|e| e.to_string())?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| e.to_string())?;
    let mask = ProjectionMask::columns(builder.parquet_schema(), COLUMNS);
    let reader = builder
        .with_projection(mask)
        .build()
        .map_err(|e| e.to_string())?;

    for batch in reader {
        let batch = batch.map_err(|e| e.to_string())?;
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| format!("column `{name}` is missing; is this an augment output?"))
        };
        let text = column("text")?
            .as_string_opt::<i32>()
            .ok_or("`text` is not a string column")?;
        let prompt = column("prompt_tokens")?.as_primitive_opt::<UInt32Type>();
        let completion = column("completion_tokens")?.as_primitive_opt::<UInt32Type>();
        let cached = column("cached_tokens")?.as_primitive_opt::<UInt32Type>();
        let cost = column("cost_usd")?.as_primitive_opt::<Float64Type>();
        let (Some(prompt), Some(completion), Some(cached), Some(cost)) =
            (prompt, completion, cached, cost)
        else {
            return Err("the token and cost columns do not have the augment stage's types".into());
        };

        for row in 0..batch.num_rows() {
            report.rows += 1;
            statistics.add(text.value(row));
            if prompt.is_null(row) {
                report.rows_without_usage += 1;
            } else {
                report.prompt_tokens += u64::from(prompt.value(row));
                report.completion_tokens += u64::from(completion.value(row));
                report.cached_tokens += u64::from(cached.value(row));
            }
            if !cost.is_null(row) {
                *report.cost_usd.get_or_insert(0.0) += cost.value(row);
            }
        }
    }
    Ok(())
}

/// Renders the card section of a report.
pub fn card_section(report: &CorpusReport) -> String {
    let statistics = &report.statistics;
    let cost = report.cost_usd.map_or_else(
        || "unknown (no price for the model)".to_string(),
        |c| format!("${c:.4}"),
    );
    let self_bleu = statistics.self_bleu.map_or_else(
        || "not measured (fewer than two rows of four words)".to_string(),
        |b| format!("{b:.4}"),
    );
    format!(
        "{CARD_START}\n## Corpus statistics\n\n\
         Over all {rows} rows ({words} words), as `kenning augment` measures them (the formulas are \
         in Kenning's README, section \"Corpus statistics\"):\n\n\
         | measure | value |\n|---|---:|\n\
         | gzip compression ratio (higher: more redundant) | {gzip:.3} |\n\
         | share of 4-grams repeated across rows | {repetition:.4} |\n\
         | self-BLEU-4 on a fixed sample of {sample} rows (at most {max}) | {self_bleu} |\n\
         | prompt tokens | {prompt} |\n| completion tokens | {completion} |\n\
         | cached prompt tokens | {cached} |\n| cost | {cost} |\n\
         {missing}\n{CARD_END}\n",
        rows = report.rows,
        words = statistics.words,
        gzip = statistics.gzip_ratio,
        repetition = statistics.self_repetition_4gram,
        sample = statistics.self_bleu_sample,
        max = SELF_BLEU_SAMPLE,
        prompt = report.prompt_tokens,
        completion = report.completion_tokens,
        cached = report.cached_tokens,
        missing = if report.rows_without_usage > 0 {
            format!(
                "\n{} row(s) came without token usage and are not in the token and cost totals.\n",
                report.rows_without_usage
            )
        } else {
            String::new()
        },
    )
}

/// Puts `section` into `card`: in place of an earlier one, or else before the columns table.
fn with_section(card: &str, section: &str) -> String {
    if let (Some(start), Some(end)) = (card.find(CARD_START), card.find(CARD_END)) {
        let end = end + CARD_END.len();
        let end = if card[end..].starts_with('\n') {
            end + 1
        } else {
            end
        };
        return format!("{}{section}{}", &card[..start], &card[end..]);
    }
    match card.find("## Columns") {
        Some(at) => format!("{}{section}\n{}", &card[..at], &card[at..]),
        None => format!("{card}\n{section}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn section_is_replaced_not_repeated() {
        let card = "# Dataset\n\n## Columns\n\n| a |\n";
        let report = CorpusReport::default();
        let once = with_section(card, &card_section(&report));
        let twice = with_section(&once, &card_section(&report));
        assert_eq!(once, twice);
        assert_eq!(once.matches("## Corpus statistics").count(), 1);
        assert!(once.find("## Corpus statistics").unwrap() < once.find("## Columns").unwrap());
    }
}
