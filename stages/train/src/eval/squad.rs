//! SQuAD-format files: passages with their questions and accepted answers.

use std::path::Path;

use serde_json::Value;

use crate::error::{Result, TrainError};
use crate::eval::QaItem;

/// A passage of a SQuAD file with its answerable questions.
#[derive(Clone, Debug, PartialEq)]
pub struct SquadPassage {
    pub title: String,
    pub context: String,
    pub questions: Vec<QaItem>,
}

/// Reads the passages of a SQuAD file, in file order: either the flattened layout
/// `[{title, context, questions: [{question, answer}]}]` or the official nested layout
/// `{"data": [{title, paragraphs: [{context, qas}]}]}`. Questions without a gold answer, such
/// as the unanswerable ones of SQuAD 2.0, are left out.
pub fn read_squad(path: &Path) -> Result<Vec<SquadPassage>> {
    let invalid = |message: String| TrainError::EvalData(format!("{}: {message}", path.display()));
    let text = std::fs::read_to_string(path).map_err(TrainError::io("read", path))?;
    let value: Value =
        serde_json::from_str(&text).map_err(|e| invalid(format!("invalid JSON: {e}")))?;

    // (title, context, question objects) per passage.
    let mut raw: Vec<(String, String, Vec<Value>)> = Vec::new();
    if let Some(items) = value.as_array() {
        for item in items {
            raw.push((
                string_field(item, "title"),
                string_field(item, "context"),
                item["questions"].as_array().cloned().unwrap_or_default(),
            ));
        }
    } else if let Some(articles) = value["data"].as_array() {
        for article in articles {
            let title = string_field(article, "title");
            for paragraph in article["paragraphs"].as_array().into_iter().flatten() {
                raw.push((
                    title.clone(),
                    string_field(paragraph, "context"),
                    paragraph["qas"].as_array().cloned().unwrap_or_default(),
                ));
            }
        }
    } else {
        return Err(invalid(
            "expected a SQuAD file, either a list of {title, context, questions} or \
             {\"data\": [...]}"
                .into(),
        ));
    }

    let mut passages = Vec::with_capacity(raw.len());
    for (p, (title, context, questions)) in raw.into_iter().enumerate() {
        let mut items = Vec::with_capacity(questions.len());
        for (q, item) in questions.iter().enumerate() {
            let question = item["question"].as_str().ok_or_else(|| {
                invalid(format!(
                    "passage {}, question {}: no `question` string",
                    p + 1,
                    q + 1
                ))
            })?;
            let answers = gold_answers(item);
            if answers.is_empty() {
                continue;
            }
            items.push(QaItem {
                question: question.to_string(),
                answers,
            });
        }
        passages.push(SquadPassage {
            title,
            context,
            questions: items,
        });
    }
    Ok(passages)
}

/// Returns the accepted answers of a question object: its `answer` string and the strings or
/// `text` fields of its `answers` list.
fn gold_answers(item: &Value) -> Vec<String> {
    let mut answers = Vec::new();
    if let Some(answer) = item["answer"].as_str() {
        answers.push(answer.to_string());
    }
    for answer in item["answers"].as_array().into_iter().flatten() {
        if let Some(text) = answer.as_str().or_else(|| answer["text"].as_str()) {
            answers.push(text.to_string());
        }
    }
    answers
}

fn string_field(value: &Value, name: &str) -> String {
    value[name].as_str().unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(json: &str) -> Result<Vec<SquadPassage>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("squad.json");
        std::fs::write(&path, json).unwrap();
        read_squad(&path)
    }

    #[test]
    fn flat_layout_reads_questions() {
        let passages = read(
            r#"[{"title": "Paris", "context": "Paris is in France.",
                 "questions": [{"question": "Where is Paris?", "answer": "France"},
                               {"question": "No answer?"}]}]"#,
        )
        .unwrap();
        assert_eq!(passages.len(), 1);
        assert_eq!(passages[0].context, "Paris is in France.");
        assert_eq!(passages[0].questions.len(), 1, "{passages:?}");
        assert_eq!(passages[0].questions[0].answers, vec!["France"]);
    }

    #[test]
    fn nested_layout_reads_every_paragraph() {
        let passages = read(
            r#"{"data": [{"title": "Rome", "paragraphs": [
                 {"context": "One.", "qas": [{"question": "A?", "answers": [{"text": "a"}, {"text": "b"}]}]},
                 {"context": "Two.", "qas": []}]}]}"#,
        )
        .unwrap();
        assert_eq!(passages.len(), 2);
        assert_eq!(passages[1].title, "Rome");
        assert_eq!(passages[0].questions[0].answers, vec!["a", "b"]);
    }

    #[test]
    fn other_json_is_rejected() {
        let error = read(r#"{"rows": []}"#).unwrap_err().to_string();
        assert!(error.contains("expected a SQuAD file"), "{error}");
    }
}
