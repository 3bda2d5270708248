//! Sentence and question templates: built into the binary from `datasets/bios/`, and
//! replaceable by a folder of user files with the same names.
//!
//! Sentence templates use `{subject}`, `{possessive}` and `{object}` for the person and one
//! value placeholder (`{date}`, `{city}`, `{university}`, `{major}` or `{employer}`). Question
//! templates use `{name}`. A person placeholder at the start of a sentence is capitalised;
//! values are kept as written.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::attribute::Attribute;
use crate::error::BiosError;
use crate::text::TextSink;

macro_rules! builtin {
    ($kind:literal) => {
        [
            include_str!(concat!("../../../datasets/bios/", $kind, "/birth_date.txt")),
            include_str!(concat!("../../../datasets/bios/", $kind, "/birth_city.txt")),
            include_str!(concat!("../../../datasets/bios/", $kind, "/university.txt")),
            include_str!(concat!("../../../datasets/bios/", $kind, "/major.txt")),
            include_str!(concat!("../../../datasets/bios/", $kind, "/employer.txt")),
            include_str!(concat!(
                "../../../datasets/bios/",
                $kind,
                "/employer_city.txt"
            )),
        ]
    };
}

const SENTENCES: [&str; 6] = builtin!("templates");
const QUESTIONS: [&str; 6] = builtin!("questions");

/// Minimum sentence templates per attribute.
pub const MIN_SENTENCES: usize = 40;
/// Minimum question templates per attribute.
pub const MIN_QUESTIONS: usize = 10;

/// A piece of a parsed template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    Subject,
    Possessive,
    Object,
    Value,
    Name,
}

/// A parsed template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    pub pieces: Vec<Piece>,
}

/// Sentence and question templates of every attribute, with a checksum of their text.
#[derive(Clone, Debug)]
pub struct TemplateSet {
    pub sentences: [Vec<Template>; 6],
    pub questions: [Vec<Template>; 6],
    pub sha256: String,
    pub source: String,
}

fn parse(
    text: &str,
    source_name: &str,
    line: usize,
    allowed: &[(&str, Piece)],
) -> Result<Template, BiosError> {
    let error = |message: String| BiosError::Template {
        source_name: source_name.to_string(),
        line,
        message,
    };
    let mut pieces = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            pieces.push(Piece::Text(rest[..open].to_string()));
        }
        let close = rest[open..]
            .find('}')
            .ok_or_else(|| error("`{` without a closing `}`".into()))?
            + open;
        let name = &rest[open + 1..close];
        let piece = allowed
            .iter()
            .find(|(allowed_name, _)| *allowed_name == name)
            .map(|(_, piece)| piece.clone())
            .ok_or_else(|| {
                let names: Vec<String> = allowed.iter().map(|(n, _)| format!("{{{n}}}")).collect();
                error(format!(
                    "unknown placeholder `{{{name}}}`; this file allows {}",
                    names.join(", ")
                ))
            })?;
        pieces.push(piece);
        rest = &rest[close + 1..];
    }
    if rest.contains('}') {
        return Err(error("`}` without an opening `{`".into()));
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest.to_string()));
    }
    Ok(Template { pieces })
}

fn parse_file(
    text: &str,
    source_name: &str,
    allowed: &[(&str, Piece)],
    required: &[Piece],
    minimum: usize,
) -> Result<Vec<Template>, BiosError> {
    let mut templates = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let template = parse(line, source_name, number + 1, allowed)?;
        for piece in required {
            let count = template.pieces.iter().filter(|p| *p == piece).count();
            if count != 1 {
                return Err(BiosError::Template {
                    source_name: source_name.to_string(),
                    line: number + 1,
                    message: format!(
                        "the template must contain its value placeholder exactly once, found {count}"
                    ),
                });
            }
        }
        templates.push(template);
    }
    if templates.len() < minimum {
        return Err(BiosError::Template {
            source_name: source_name.to_string(),
            line: 0,
            message: format!(
                "{} templates found, at least {minimum} are needed. Add templates to the file",
                templates.len()
            ),
        });
    }
    Ok(templates)
}

impl TemplateSet {
    /// Loads the templates from `dir` (with `templates/` and `questions/` inside, one file per
    /// attribute), or the built-in ones when `dir` is `None`.
    pub fn load(dir: Option<&Path>) -> Result<Self, BiosError> {
        let mut hasher = Sha256::new();
        let mut sentences: [Vec<Template>; 6] = Default::default();
        let mut questions: [Vec<Template>; 6] = Default::default();

        for attribute in Attribute::ALL {
            let i = attribute.index();
            let file = format!("{}.txt", attribute.name());
            let (sentence_source, sentence_text) = read(dir, "templates", &file, SENTENCES[i])?;
            let (question_source, question_text) = read(dir, "questions", &file, QUESTIONS[i])?;
            hasher.update(sentence_text.as_bytes());
            hasher.update(question_text.as_bytes());

            let sentence_allowed = [
                ("subject", Piece::Subject),
                ("possessive", Piece::Possessive),
                ("object", Piece::Object),
                (attribute.placeholder(), Piece::Value),
            ];
            sentences[i] = parse_file(
                &sentence_text,
                &sentence_source,
                &sentence_allowed,
                &[Piece::Value],
                MIN_SENTENCES,
            )?;
            questions[i] = parse_file(
                &question_text,
                &question_source,
                &[("name", Piece::Name)],
                &[Piece::Name],
                MIN_QUESTIONS,
            )?;
        }

        Ok(Self {
            sentences,
            questions,
            sha256: hex::encode(hasher.finalize()),
            source: dir.map_or("builtin:datasets/bios".to_string(), |d| {
                d.display().to_string()
            }),
        })
    }
}

fn read(
    dir: Option<&Path>,
    kind: &str,
    file: &str,
    builtin: &'static str,
) -> Result<(String, String), BiosError> {
    match dir {
        None => Ok((format!("datasets/bios/{kind}/{file}"), builtin.to_string())),
        Some(dir) => {
            let path = dir.join(kind).join(file);
            let text = std::fs::read_to_string(&path).map_err(|source| BiosError::PoolRead {
                path: path.clone(),
                source,
            })?;
            Ok((path.display().to_string(), text))
        }
    }
}

/// Words that fill the person placeholders of one sentence.
pub struct PersonWords<'a> {
    pub subject: &'a str,
    pub possessive: &'a str,
    pub object: &'a str,
}

/// Appends the rendered template to `out`, capitalising a person placeholder or text that
/// starts it. The first person placeholder takes `first` and later ones take `rest`. So a first
/// sentence names the person once and then uses the pronoun ("Anna Rossi studied at X, where
/// she ..."). Pass the same words twice to use them throughout.
pub fn render(
    template: &Template,
    first: &PersonWords<'_>,
    rest: &PersonWords<'_>,
    value: &str,
    out: &mut impl TextSink,
) {
    // Nothing has been appended yet, so the next text or person placeholder starts the sentence.
    let mut at_start = true;
    let mut named = false;
    for piece in &template.pieces {
        let words = if named { rest } else { first };
        let text = match piece {
            Piece::Text(text) => text.as_str(),
            Piece::Subject => words.subject,
            Piece::Possessive => words.possessive,
            Piece::Object => words.object,
            Piece::Value | Piece::Name => value,
        };
        named |= matches!(piece, Piece::Subject | Piece::Possessive | Piece::Object);
        // Values are written as the pool has them ("eBay" stays "eBay") so that the
        // biography contains the exact value.
        let is_value = matches!(piece, Piece::Value | Piece::Name);
        if at_start && !is_value {
            capitalize_into(text, out);
        } else {
            out.push_str(text);
        }
        at_start &= text.is_empty();
    }
}

fn capitalize_into(text: &str, out: &mut impl TextSink) {
    let mut chars = text.chars();
    if let Some(first) = chars.next() {
        let mut buffer = [0; 4];
        for upper in first.to_uppercase() {
            out.push_str(upper.encode_utf8(&mut buffer));
        }
        out.push_str(chars.as_str());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_templates_load() {
        let set = TemplateSet::load(None).unwrap();
        for attribute in Attribute::ALL {
            assert!(set.sentences[attribute.index()].len() >= MIN_SENTENCES);
            assert!(set.questions[attribute.index()].len() >= MIN_QUESTIONS);
        }
    }

    #[test]
    fn render_capitalises_leading_placeholder() {
        let allowed = [("subject", Piece::Subject), ("city", Piece::Value)];
        let template = parse("{subject} was born in {city}.", "t", 1, &allowed).unwrap();
        let words = PersonWords {
            subject: "she",
            possessive: "her",
            object: "her",
        };
        let mut out = String::new();
        render(&template, &words, &words, "Lisbon", &mut out);
        assert_eq!(out, "She was born in Lisbon.");
    }

    #[test]
    fn first_sentence_names_the_person_once() {
        let allowed = [
            ("subject", Piece::Subject),
            ("possessive", Piece::Possessive),
            ("city", Piece::Value),
        ];
        let template = parse(
            "{possessive} story began in {city}, where {subject} was born.",
            "t",
            1,
            &allowed,
        )
        .unwrap();
        let named = PersonWords {
            subject: "Anna Rossi",
            possessive: "Anna Rossi's",
            object: "Anna Rossi",
        };
        let pronouns = PersonWords {
            subject: "she",
            possessive: "her",
            object: "her",
        };
        let mut out = String::new();
        render(&template, &named, &pronouns, "Nantes", &mut out);
        assert_eq!(
            out,
            "Anna Rossi's story began in Nantes, where she was born."
        );
    }

    #[test]
    fn unknown_placeholder_is_rejected() {
        let allowed = [("subject", Piece::Subject), ("city", Piece::Value)];
        let error = parse("{subject} likes {colour}.", "birth_city.txt", 7, &allowed)
            .unwrap_err()
            .to_string();
        assert!(error.contains("birth_city.txt, line 7"), "{error}");
        assert!(error.contains("{colour}"), "{error}");
    }
}
