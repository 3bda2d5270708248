//! Closed-book QA: a greedy answer to a plain question prompt, judged by normalised exact or
//! containment match.

use serde::Serialize;

use crate::error::Result;
use crate::eval::bios::qa_prompt;
use crate::eval::normalize::{contains_match, exact_match};
use crate::generate::greedy;
use crate::model::Llama;
use crate::tokenizer::TextTokenizer;

/// Longest answer generated, in tokens.
pub const MAX_ANSWER_TOKENS: usize = 64;

/// A question with its accepted answers.
#[derive(Clone, Debug, PartialEq)]
pub struct QaItem {
    pub question: String,
    pub answers: Vec<String>,
}

/// Closed-book QA scores.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct QaScore {
    pub total: usize,
    /// Answers equal to an accepted answer after normalisation.
    pub exact: usize,
    /// Answers that contain an accepted answer after normalisation.
    pub contains: usize,
}

impl QaScore {
    pub fn exact_rate(&self) -> f64 {
        ratio(self.exact, self.total)
    }

    pub fn contains_rate(&self) -> f64 {
        ratio(self.contains, self.total)
    }
}

/// Answers every item greedily (at most 64 tokens, up to the first line break) and scores
/// the answers by string match. An LLM judge of the same answers is in [`crate::eval::judge`];
/// `kenning qa --judge-base-url` uses it.
pub fn closed_book(model: &Llama, tokenizer: &TextTokenizer, items: &[QaItem]) -> Result<QaScore> {
    let mut score = QaScore::default();
    for item in items {
        let answer = greedy(
            model,
            tokenizer,
            &qa_prompt(&item.question),
            MAX_ANSWER_TOKENS,
            Some("\n"),
        )?;
        score.total += 1;
        if item
            .answers
            .iter()
            .any(|gold| exact_match(&answer.text, gold))
        {
            score.exact += 1;
        }
        if item
            .answers
            .iter()
            .any(|gold| contains_match(&answer.text, gold))
        {
            score.contains += 1;
        }
    }
    Ok(score)
}

fn ratio(part: usize, total: usize) -> f64 {
    if total == 0 {
        0.0
    } else {
        part as f64 / total as f64
    }
}
