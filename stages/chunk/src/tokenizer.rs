//! Tokenizers that report where each token sits in the text.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use unicode_segmentation::UnicodeSegmentation;

/// The tokenizer that counts tokens.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum TokenizerSpec {
    /// Unicode words (UAX #29) and punctuation marks, each one token. A fallback that needs
    /// no model files and counts roughly 0.75 of a BPE tokenizer's tokens on English prose.
    #[default]
    Words,
    /// Runs of non-whitespace characters.
    Whitespace,
    /// A Hugging Face `tokenizer.json`.
    File(PathBuf),
}

impl fmt::Display for TokenizerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Words => f.write_str("words"),
            Self::Whitespace => f.write_str("whitespace"),
            Self::File(path) => write!(f, "{}", path.display()),
        }
    }
}

impl FromStr for TokenizerSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "words" => Ok(Self::Words),
            "whitespace" => Ok(Self::Whitespace),
            path if path.ends_with(".json") => Ok(Self::File(PathBuf::from(path))),
            other => Err(format!(
                "unknown tokenizer `{other}`: use `words`, `whitespace` or the path of a tokenizer.json"
            )),
        }
    }
}

impl Serialize for TokenizerSpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TokenizerSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Failure to load or run a tokenizer.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("cannot load tokenizer {path}: {message}")]
    Load { path: PathBuf, message: String },
    #[error("tokenizer failed on document {doc_id}: {message}")]
    Encode { doc_id: String, message: String },
}

/// A loaded tokenizer.
pub enum Tokens {
    Words,
    Whitespace,
    Hugging(Box<tokenizers::Tokenizer>),
}

impl Tokens {
    pub fn load(spec: &TokenizerSpec) -> Result<Self, TokenizerError> {
        match spec {
            TokenizerSpec::Words => Ok(Self::Words),
            TokenizerSpec::Whitespace => Ok(Self::Whitespace),
            TokenizerSpec::File(path) => tokenizers::Tokenizer::from_file(path)
                .map(|t| Self::Hugging(Box::new(t)))
                .map_err(|e| TokenizerError::Load {
                    path: path.clone(),
                    message: e.to_string(),
                }),
        }
    }

    /// Returns the byte range of every token of `text`, in order.
    pub fn spans(&self, doc_id: &str, text: &str) -> Result<Vec<Range<usize>>, TokenizerError> {
        match self {
            Self::Words => Ok(text
                .split_word_bound_indices()
                .filter(|(_, segment)| !segment.chars().all(char::is_whitespace))
                .map(|(start, segment)| start..start + segment.len())
                .collect()),
            Self::Whitespace => {
                let mut spans = Vec::new();
                let mut start = None;
                for (i, c) in text.char_indices() {
                    match (c.is_whitespace(), start) {
                        (false, None) => start = Some(i),
                        (true, Some(s)) => {
                            spans.push(s..i);
                            start = None;
                        }
                        _ => {}
                    }
                }
                if let Some(s) = start {
                    spans.push(s..text.len());
                }
                Ok(spans)
            }
            Self::Hugging(tokenizer) => {
                let encoding =
                    tokenizer
                        .encode(text, false)
                        .map_err(|e| TokenizerError::Encode {
                            doc_id: doc_id.to_string(),
                            message: e.to_string(),
                        })?;
                let mut spans = Vec::with_capacity(encoding.len());
                for &(start, end) in encoding.get_offsets() {
                    let valid = start <= end
                        && end <= text.len()
                        && text.is_char_boundary(start)
                        && text.is_char_boundary(end);
                    if !valid {
                        return Err(TokenizerError::Encode {
                            doc_id: doc_id.to_string(),
                            message: format!(
                                "offset {start}..{end} is not a character range of the text"
                            ),
                        });
                    }
                    spans.push(start..end);
                }
                Ok(spans)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_count_punctuation_and_skip_spaces() {
        let text = "Genghis Khan's army, exhausted.";
        let spans = Tokens::Words.spans("d", text).unwrap();
        let tokens: Vec<&str> = spans.iter().map(|r| &text[r.clone()]).collect();
        assert_eq!(tokens, ["Genghis", "Khan's", "army", ",", "exhausted", "."]);
    }

    #[test]
    fn whitespace_spans_cover_multibyte_text() {
        let text = "  naïve  café\tüber ";
        let spans = Tokens::Whitespace.spans("d", text).unwrap();
        let tokens: Vec<&str> = spans.iter().map(|r| &text[r.clone()]).collect();
        assert_eq!(tokens, ["naïve", "café", "über"]);
    }

    #[test]
    fn tokenizer_json_gives_byte_spans() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer.json");
        let json = r#"{
            "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
            "normalizer": null, "pre_tokenizer": {"type": "Whitespace"},
            "post_processor": null, "decoder": null,
            "model": {"type": "WordLevel", "vocab": {"[UNK]": 0, "the": 1, "river": 2}, "unk_token": "[UNK]"}
        }"#;
        std::fs::write(&path, json).unwrap();
        let tokens = Tokens::load(&TokenizerSpec::File(path)).unwrap();

        let text = "Über the river,  naïve end.";
        let spans = tokens.spans("d", text).unwrap();
        let pieces: Vec<&str> = spans.iter().map(|r| &text[r.clone()]).collect();
        assert_eq!(pieces, ["Über", "the", "river", ",", "naïve", "end", "."]);
    }

    #[test]
    fn missing_tokenizer_file_is_an_error() {
        let spec = TokenizerSpec::File("/nonexistent/tokenizer.json".into());
        let error = Tokens::load(&spec)
            .err()
            .expect("loading must fail")
            .to_string();
        assert!(error.contains("/nonexistent/tokenizer.json"), "{error}");
    }

    #[test]
    fn spec_parses_names_and_paths() {
        assert_eq!(
            "words".parse::<TokenizerSpec>().unwrap(),
            TokenizerSpec::Words
        );
        assert_eq!(
            "models/tokenizer.json".parse::<TokenizerSpec>().unwrap(),
            TokenizerSpec::File("models/tokenizer.json".into())
        );
        assert!("bpe".parse::<TokenizerSpec>().is_err());
    }
}
