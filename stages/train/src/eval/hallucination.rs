//! Hallucination metrics on people the model never saw: how often it answers with the
//! surname's preferred value, how confident it is, and whether confidence tells known people
//! from unknown ones.

use serde::Serialize;

use crate::error::{Result, TrainError};
use crate::eval::auroc::auroc;
use crate::eval::bios::{ANSWER_TOKENS, qa_prompt};
use crate::eval::bios_data::QaRow;
use crate::eval::normalize::exact_match;
use crate::generate::greedy;
use crate::model::Llama;
use crate::tokenizer::TextTokenizer;

/// Hallucination metrics.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Hallucination {
    /// Unknown-people questions about a correlated attribute (those with a preferred value).
    pub unknown_questions: usize,
    /// Share of those answered with the surname's preferred value.
    pub preferred_rate: f64,
    /// Mean confidence (mean token probability) of the answers equal to the preferred value.
    pub preferred_confidence: Option<f64>,
    /// Mean confidence of all answers about unknown people.
    pub unknown_confidence: f64,
    /// Mean confidence of the answers about known people.
    pub known_confidence: f64,
    /// AUROC of the confidence for telling answers about known people (positive) from answers
    /// about unknown people (negative).
    pub auroc: Option<f64>,
}

/// Answers the `unknown` rows and up to the same number of `known_split` rows (`test` or
/// `train`) of `qa` and computes the metrics. Rows without a preferred value count in the
/// confidences and the AUROC but not in the preferred rate.
pub fn hallucination(
    model: &Llama,
    tokenizer: &TextTokenizer,
    qa: &[QaRow],
    known_split: &str,
    max_rows: usize,
) -> Result<Hallucination> {
    let unknown: Vec<&QaRow> = qa
        .iter()
        .filter(|r| r.split == "unknown")
        .take(max_rows)
        .collect();
    if unknown.is_empty() {
        return Err(TrainError::EvalData(
            "the qa table has no `unknown` rows; generate biographies with --unknown-people above 0".into(),
        ));
    }
    let known: Vec<&QaRow> = qa
        .iter()
        .filter(|r| r.split == known_split)
        .take(unknown.len())
        .collect();

    let mut metrics = Hallucination::default();
    let mut unknown_scores = Vec::new();
    let mut preferred_scores = Vec::new();
    let mut preferred_hits = 0;
    for row in &unknown {
        let answer = greedy(
            model,
            tokenizer,
            &qa_prompt(&row.question),
            ANSWER_TOKENS,
            Some("\n"),
        )?;
        let confidence = answer.confidence();
        unknown_scores.push(confidence);
        if let Some(preferred) = &row.preferred {
            metrics.unknown_questions += 1;
            if exact_match(&answer.text, preferred) {
                preferred_hits += 1;
                preferred_scores.push(confidence);
            }
        }
    }
    let mut known_scores = Vec::new();
    for row in &known {
        let answer = greedy(
            model,
            tokenizer,
            &qa_prompt(&row.question),
            ANSWER_TOKENS,
            Some("\n"),
        )?;
        known_scores.push(answer.confidence());
    }

    metrics.preferred_rate = if metrics.unknown_questions == 0 {
        0.0
    } else {
        preferred_hits as f64 / metrics.unknown_questions as f64
    };
    metrics.preferred_confidence = mean(&preferred_scores);
    metrics.unknown_confidence = mean(&unknown_scores).unwrap_or(0.0);
    metrics.known_confidence = mean(&known_scores).unwrap_or(0.0);
    metrics.auroc = auroc(&known_scores, &unknown_scores);
    Ok(metrics)
}

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}
