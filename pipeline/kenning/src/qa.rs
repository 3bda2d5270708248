//! `kenning qa`: closed-book question answering with the local model on a SQuAD-format file,
//! judged by normalized exact match, by containment of the gold answer and, when asked, by an
//! LLM judge on an OpenAI-compatible server.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail};
use kenning_local::{GenerateRequest, LocalModel, Message, Prompt, SamplingParams};
use kenning_train::eval::{JudgeScore, normalize, read_squad};
use serde::Serialize;
use serde_json::Value;

use crate::cli::QaArgs;
use crate::judge;

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
    /// The LLM judge's verdicts, when one was asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub judge: Option<JudgeSummary>,
    pub seconds: f64,
}

/// The LLM judge's verdicts on a run's answers.
#[derive(Clone, Debug, Serialize)]
pub struct JudgeSummary {
    pub model: String,
    /// Share of all answers the judge accepted. Unclear and failed verdicts count as not
    /// accepted.
    pub accepted: f64,
    pub verdicts: JudgeScore,
}

/// One question with the model's answer.
struct Answered {
    question: Question,
    prediction: String,
}

/// Runs `kenning qa`.
pub fn run(args: QaArgs) -> anyhow::Result<QaSummary> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let started = Instant::now();

    let (model_name, answered) = match (&args.answers, &args.questions) {
        (Some(path), _) => {
            let answered = read_answers(path)?;
            (format!("answers from {}", path.display()), answered)
        }
        (None, Some(path)) => {
            let questions = read_questions(path, args.limit)?;
            if questions.is_empty() {
                bail!("{}: no questions found", path.display());
            }
            let model = args.model.load()?;
            let bar =
                kenning_pipeline::progress::rows_bar(questions.len() as u64, !args.no_progress);
            let predictions = answer_all(&model, &questions, args.max_tokens, &bar)?;
            bar.finish_and_clear();
            let answered = questions
                .into_iter()
                .zip(predictions)
                .map(|(question, prediction)| Answered {
                    question,
                    prediction,
                })
                .collect();
            (model.info().name.clone(), answered)
        }
        (None, None) => bail!("give --questions FILE, or --answers FILE to judge earlier answers"),
    };

    let judged = match &args.judge.judge_base_url {
        Some(_) => {
            let items: Vec<judge::Answer<'_>> = answered
                .iter()
                .map(|a| judge::Answer {
                    question: &a.question.question,
                    answers: &a.question.answers,
                    prediction: &a.prediction,
                })
                .collect();
            let bar = kenning_pipeline::progress::rows_bar(items.len() as u64, !args.no_progress);
            let judged = judge::judge_all(&args.judge, &items, &bar)?;
            bar.finish_and_clear();
            Some(judged)
        }
        None => None,
    };

    let path = args.out.join("answers.jsonl");
    let mut out = BufWriter::new(
        File::create(&path).with_context(|| format!("cannot create {}", path.display()))?,
    );
    let (mut exact, mut contains) = (0usize, 0usize);
    let mut verdicts = JudgeScore::default();
    for (i, answer) in answered.iter().enumerate() {
        let question = &answer.question;
        let is_exact = exact_match(&answer.prediction, &question.answers);
        let is_contained = contains_match(&answer.prediction, &question.answers);
        exact += usize::from(is_exact);
        contains += usize::from(is_contained);
        let mut row = serde_json::json!({
            "passage": question.passage,
            "title": question.title,
            "question": question.question,
            "answers": question.answers,
            "prediction": answer.prediction,
            "exact": is_exact,
            "contains": is_contained,
        });
        if let Some(judged) = &judged {
            let judged = &judged[i];
            verdicts.add(judged.verdict);
            row["judge"] = serde_json::to_value(judged.verdict)?;
            row["judge_reply"] = judged.reply.clone().into();
            row["judge_error"] = judged.error.clone().into();
        }
        writeln!(out, "{row}")?;
    }
    out.flush()?;

    let passages = answered
        .iter()
        .map(|a| a.question.passage)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let n = answered.len().max(1) as f64;
    let summary = QaSummary {
        model: model_name,
        passages,
        questions: answered.len(),
        exact: exact as f64 / n,
        contains: contains as f64 / n,
        judge: judged.map(|_| JudgeSummary {
            model: args.judge.judge_model.clone(),
            accepted: verdicts.match_rate(),
            verdicts,
        }),
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
    if let Some(judge) = &summary.judge {
        let v = &judge.verdicts;
        println!(
            "  judge {}: accepted {:.1}% ({} yes, {} no, {} unclear, {} failed)",
            judge.model,
            judge.accepted * 100.0,
            v.matched,
            v.not_matched,
            v.unclear,
            v.failed
        );
    }
    println!("  answers: {}", out.join("answers.jsonl").display());
    println!("  summary: {}", out.join("qa.json").display());
}

/// Reads the rows of an earlier run's answers.jsonl.
fn read_answers(path: &Path) -> anyhow::Result<Vec<Answered>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut answered = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{} line {}", path.display(), i + 1);
        let row: Value =
            serde_json::from_str(line).with_context(|| format!("{}: not a JSON object", at()))?;
        let field = |name: &str| {
            row[name].as_str().map(str::to_string).with_context(|| {
                format!(
                    "{}: no `{name}` string; give the answers.jsonl that `kenning qa` wrote",
                    at()
                )
            })
        };
        let answers = row["answers"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .with_context(|| format!("{}: no `answers` list of accepted answers", at()))?;
        answered.push(Answered {
            question: Question {
                passage: row["passage"].as_u64().with_context(|| {
                    format!(
                        "{}: no `passage` number; answer the questions again with this version",
                        at()
                    )
                })? as usize,
                title: row["title"].as_str().unwrap_or_default().to_string(),
                question: field("question")?,
                answers,
            },
            prediction: field("prediction")?,
        });
    }
    if answered.is_empty() {
        bail!(
            "{}: no answer rows found; give the answers.jsonl that `kenning qa` wrote",
            path.display()
        );
    }
    Ok(answered)
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
