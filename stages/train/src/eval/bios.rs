//! Biographies metrics: attribute accuracy of training people by completing their own
//! biography (storage), and QA accuracy of held-out people (extraction).

use kenning_biographies::Attribute;
use serde::Serialize;

use crate::error::Result;
use crate::eval::bios_data::{BiosData, QaRow};
use crate::generate::greedy;
use crate::model::Llama;
use crate::tokenizer::TextTokenizer;

/// Tokens generated for a biography attribute or a QA answer; attribute values are short.
pub const ANSWER_TOKENS: usize = 16;

/// A prompt and the answer it should be completed with.
#[derive(Clone, Debug, PartialEq)]
pub struct Probe {
    pub person_id: String,
    pub attribute: Attribute,
    pub prompt: String,
    pub expected: String,
}

/// Accuracy over a set of probes, overall and per attribute.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Accuracy {
    pub correct: usize,
    pub total: usize,
    /// Attribute name, correct, total.
    pub by_attribute: Vec<(String, usize, usize)>,
}

impl Accuracy {
    pub fn rate(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.correct as f64 / self.total as f64
        }
    }
}

/// Returns one probe per attribute of each person's first biography whose person is in
/// `groups`: the biography up to the value, with the space before the value left out, and the
/// value. At most `max_people` people, in person id order.
pub fn storage_probes(data: &BiosData, groups: &[&str], max_people: usize) -> Vec<Probe> {
    let mut probes = Vec::new();
    let mut people = 0;
    for bio in data.bios.iter().filter(|b| b.variant == 0) {
        let Some(person) = data.people.get(&bio.person_id) else {
            continue;
        };
        if !groups.contains(&person.group.as_str()) {
            continue;
        }
        if people == max_people {
            break;
        }
        people += 1;
        for attribute in Attribute::ALL {
            let value = &person.values[attribute.index()];
            // The name is written first, so the value is searched after it.
            let after_name = bio
                .text
                .find(&person.full_name)
                .map_or(0, |i| i + person.full_name.len());
            if let Some(offset) = bio.text[after_name..].find(value.as_str()) {
                let prompt = bio.text[..after_name + offset].trim_end().to_string();
                probes.push(Probe {
                    person_id: bio.person_id.clone(),
                    attribute,
                    prompt,
                    expected: value.clone(),
                });
            }
        }
    }
    probes
}

/// Returns the text of a QA pair as the training data writes it.
pub fn qa_document(question: &str, answer: &str) -> String {
    format!("Question: {question}\nAnswer: {answer}")
}

/// Returns the prompt of a QA question; the model's answer follows it.
pub fn qa_prompt(question: &str) -> String {
    format!("Question: {question}\nAnswer:")
}

/// Returns QA probes of the rows in `split`, at most `max_rows`.
pub fn qa_probes(rows: &[QaRow], split: &str, max_rows: usize) -> Vec<Probe> {
    rows.iter()
        .filter(|r| r.split == split)
        .take(max_rows)
        .map(|r| Probe {
            person_id: r.person_id.clone(),
            attribute: r.attribute,
            prompt: qa_prompt(&r.question),
            expected: r.answer.clone(),
        })
        .collect()
}

/// Completes each probe greedily and counts completions whose first line starts with the
/// expected value as whole words.
pub fn accuracy(model: &Llama, tokenizer: &TextTokenizer, probes: &[Probe]) -> Result<Accuracy> {
    let mut result = Accuracy::default();
    let mut by_attribute = [(0usize, 0usize); 6];
    for probe in probes {
        // A few tokens past the value's own length decide the match, and biographies have no
        // line break after a value to stop at.
        let budget = tokenizer.encode(&format!(" {}", probe.expected))?.len() + 2;
        let generation = greedy(
            model,
            tokenizer,
            &probe.prompt,
            budget.min(ANSWER_TOKENS),
            Some("\n"),
        )?;
        let completion = generation.text.trim_start();
        let correct = value_matches(completion, &probe.expected);
        let slot = &mut by_attribute[probe.attribute.index()];
        slot.1 += 1;
        if correct {
            slot.0 += 1;
            result.correct += 1;
        }
        result.total += 1;
        tracing::trace!(prompt = %probe.prompt, completion, expected = %probe.expected, correct, "probe");
    }
    result.by_attribute = Attribute::ALL
        .iter()
        .zip(by_attribute)
        .filter(|(_, (_, total))| *total > 0)
        .map(|(a, (correct, total))| (a.name().to_string(), correct, total))
        .collect();
    Ok(result)
}

/// Whether `completion` starts with `expected` and the next character does not continue a
/// word, so "Paris." matches "Paris" and "Parisville" does not.
pub fn value_matches(completion: &str, expected: &str) -> bool {
    completion.starts_with(expected)
        && !completion[expected.len()..].starts_with(|c: char| c.is_alphanumeric())
}
