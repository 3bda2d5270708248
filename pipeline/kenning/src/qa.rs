//! `kenning qa`: closed-book question answering with the local model on a SQuAD-format file,
//! judged by normalized exact match and by containment of the gold answer.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail};
use kenning_local::{GenerateRequest, LocalModel, Message, Prompt, SamplingParams};
use kenning_train::eval::{normalize, read_squad};
use serde::Serialize;

use crate::cli::QaArgs;

const SYSTEM: &str = "Answer the question with a short phrase, without explanation.";

/// One question with its accepted answers.
#[derive(Clone, Debug)]
pub struct Question {
    /// Index of the passage in the file.
    pub passage: usize,
    pub title: String,
    pub question: String,
    pub answers: Vec<String>,
}

/// Accuracy of one run.
#[derive(Clone, Debug, Serialize)]
pub struct QaSummary {
    pub model: String,
    pub passages: usize,
    pub questions: usize,
    /// Share of predictions equal to an accepted answer after normalization.
    pub exact: f64,
    /// Share of predictions that contain a normalized accepted answer, the headline figure.
    pub contains: f64,
    pub seconds: f64,
}

/// Runs `kenning qa`.
pub fn run(args: QaArgs) -> anyhow::Result<QaSummary> {
    let questions = read_questions(&args.questions, args.limit)?;
    if questions.is_empty() {
        bail!("{}: no questions found", args.questions.display());
    }
    let model = args.model.load()?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;

    let started = Instant::now();
    let bar = kenning_pipeline::progress::rows_bar(questions.len() as u64, !args.no_progress);
    let answers = answer_all(&model, &questions, args.max_tokens, &bar)?;
    bar.finish_and_clear();

    let path = args.out.join("answers.jsonl");
    let mut out = BufWriter::new(
        File::create(&path).with_context(|| format!("cannot create {}", path.display()))?,
    );
    let (mut exact, mut contains) = (0usize, 0usize);
    for (question, answer) in questions.iter().zip(&answers) {
        let is_exact = exact_match(answer, &question.answers);
        let is_contained = contains_match(answer, &question.answers);
        exact += usize::from(is_exact);
        contains += usize::from(is_contained);
        let row = serde_json::json!({
            "title": question.title,
            "question": question.question,
            "answers": question.answers,
            "prediction": answer,
            "exact": is_exact,
            "contains": is_contained,
        });
        writeln!(out, "{row}")?;
    }
    out.flush()?;

    let passages = questions
        .iter()
        .map(|q| q.passage)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let n = questions.len() as f64;
    let summary = QaSummary {
        model: model.info().name.clone(),
        passages,
        questions: questions.len(),
        exact: exact as f64 / n,
        contains: contains as f64 / n,
        seconds: started.elapsed().as_secs_f64(),
    };
    let path = args.out.join("qa.json");
    std::fs::write(&path, serde_json::to_string_pretty(&summary)? + "\n")
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(summary)
}

/// Prints the accuracy and the paths of the output files.
pub fn print(summary: &QaSummary, out: &Path) {
    println!(
        "Closed-book QA with {}: {} questions, contains {:.1}%, exact {:.1}% ({:.0} s).",
        summary.model,
        summary.questions,
        summary.contains * 100.0,
        summary.exact * 100.0,
        summary.seconds
    );
    println!("  answers: {}", out.join("answers.jsonl").display());
    println!("  summary: {}", out.join("qa.json").display());
}

fn answer_all(
    model: &LocalModel,
    questions: &[Question],
    max_tokens: usize,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<Vec<String>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut tasks = Vec::with_capacity(questions.len());
        for question in questions {
            let model = model.clone();
            let request = GenerateRequest {
                prompt: Prompt::Chat(vec![
                    Message::new("system", SYSTEM),
                    Message::new("user", question.question.clone()),
                ]),
                max_tokens,
                sampling: SamplingParams {
                    temperature: 0.0,
                    ..SamplingParams::default()
                },
                stop: vec!["\n".into()],
            };
            let bar = bar.clone();
            tasks.push(tokio::spawn(async move {
                let result = model.generate(request).await;
                bar.inc(1);
                result
            }));
        }
        let mut answers = Vec::with_capacity(tasks.len());
        for task in tasks {
            answers.push(task.await??.text.trim().to_string());
        }
        Ok(answers)
    })
}

/// Reads the questions of the first `limit` passages of a SQuAD file, in the flattened layout
/// `[{title, context, questions: [{question, answer}]}]` or the official nested one.
pub fn read_questions(path: &Path, limit: Option<u64>) -> anyhow::Result<Vec<Question>> {
    let mut passages = read_squad(path)?;
    if let Some(limit) = limit {
        passages.truncate(limit as usize);
    }

    let mut out = Vec::new();
    for (p, passage) in passages.into_iter().enumerate() {
        for item in passage.questions {
            out.push(Question {
                passage: p,
                title: passage.title.clone(),
                question: item.question,
                answers: item.answers,
            });
        }
    }
    Ok(out)
}

/// Returns true when the prediction equals one of the gold answers after SQuAD's normalization.
pub fn exact_match(prediction: &str, answers: &[String]) -> bool {
    answers
        .iter()
        .any(|gold| normalize::exact_match(prediction, gold))
}

/// Returns true when a normalized gold answer appears in the normalized prediction as whole words.
pub fn contains_match(prediction: &str, answers: &[String]) -> bool {
    answers
        .iter()
        .any(|gold| normalize::contains_match(prediction, gold))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_drops_case_punctuation_and_articles() {
        assert_eq!(
            normalize::normalize_answer("The  Eiffel-Tower!"),
            "eiffel tower"
        );
    }

    #[test]
    fn contains_match_needs_whole_words() {
        let gold = vec!["Paris".to_string()];
        assert!(contains_match("It is Paris, France.", &gold));
        assert!(!contains_match("Parisian food", &gold));
        assert!(exact_match("paris.", &gold));
        assert!(!exact_match("Paris, France", &gold));
    }
}
