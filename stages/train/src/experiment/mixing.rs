//! Corpus mixing for the mixing-phase-transition experiment: generic web text read from a
//! file or folder, and a corpus in which biographies make up a given fraction of the bytes.
//!
//! `kenning mix` samples the rows of two shard sets without repeating any, so it drops
//! biographies when the web text is short. This mix keeps every biography and repeats web
//! text instead, so that every ratio trains on the same people.

use std::path::Path;

use kenning_pipeline::InputConfig;
use kenning_pipeline::input::{self, InputError, Item};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::error::{Result, TrainError};

/// Biographies mixed with web text.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MixedCorpus {
    /// Every biography once, then the web documents.
    pub documents: Vec<String>,
    /// Number of biography documents at the start of `documents`.
    pub bios_documents: usize,
    pub bios_bytes: usize,
    pub web_bytes: usize,
    /// Passes over the web text that the mix needed; above 1 means web documents repeat.
    pub web_passes: f64,
}

impl MixedCorpus {
    /// Returns the share of the corpus bytes that are biographies.
    pub fn bios_fraction(&self) -> f64 {
        let total = self.bios_bytes + self.web_bytes;
        if total == 0 {
            0.0
        } else {
            self.bios_bytes as f64 / total as f64
        }
    }

    /// Returns the web documents of the corpus.
    pub fn web(&self) -> &[String] {
        &self.documents[self.bios_documents..]
    }
}

/// Mixes every document of `bios` once with web documents so that biographies make up
/// `ratio` (above 0, at most 1) of the corpus bytes.
///
/// Web documents are taken in an order shuffled by `seed` and start again from the first
/// when the web text is shorter than the mix needs. The last one is cut at a word boundary,
/// so the realized fraction misses `ratio` by at most one word of web text.
pub fn mix(bios: &[String], web: &[String], ratio: f64, seed: u64) -> Result<MixedCorpus> {
    if !(ratio > 0.0 && ratio <= 1.0) {
        return Err(TrainError::Config(format!(
            "mixing ratio {ratio} is invalid: give a fraction above 0 and at most 1"
        )));
    }
    let bios_bytes: usize = bios.iter().map(String::len).sum();
    let target = (bios_bytes as f64 * (1.0 - ratio) / ratio).round() as usize;
    let web_total: usize = web.iter().map(String::len).sum();
    if target > 0 && web_total == 0 {
        return Err(TrainError::Config(format!(
            "mixing ratio {ratio} needs web text, but the web text is empty"
        )));
    }

    let mut order: Vec<usize> = (0..web.len()).collect();
    order.shuffle(&mut StdRng::seed_from_u64(seed));
    let mut documents = bios.to_vec();
    let mut web_bytes = 0;
    for &index in order.iter().cycle() {
        let remaining = target - web_bytes;
        if remaining == 0 {
            break;
        }
        let document = &web[index];
        if document.is_empty() {
            continue;
        }
        let piece = if document.len() <= remaining {
            document.as_str()
        } else {
            cut_at_word(document, remaining)
        };
        if piece.is_empty() {
            break;
        }
        web_bytes += piece.len();
        documents.push(piece.to_string());
    }

    Ok(MixedCorpus {
        documents,
        bios_documents: bios.len(),
        bios_bytes,
        web_bytes,
        web_passes: if web_total == 0 {
            0.0
        } else {
            web_bytes as f64 / web_total as f64
        },
    })
}

/// Returns the longest prefix of `text` of at most `max_bytes` bytes that ends before a
/// space, or at a character boundary when the prefix has no space.
fn cut_at_word(text: &str, max_bytes: usize) -> &str {
    let mut end = max_bytes.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    match text[..end].rfind(' ') {
        Some(space) if space > 0 => &text[..space],
        _ => &text[..end],
    }
}

/// Reads the documents of `path` as web text. The path is a SQuAD JSON file (its passages), a
/// JSON or JSONL file with a `text` field, a Parquet file or folder of shards with a `text`
/// column, or a folder of `.txt` and `.md` files. Invalid records are skipped and counted in
/// the log.
pub fn read_web_text(path: &Path) -> Result<Vec<String>> {
    let not_usable = |message: String| TrainError::WebText {
        path: path.to_path_buf(),
        message,
    };
    if !path.exists() {
        return Err(not_usable(
            "file or folder not found. Set `web_text` in the experiment config (pass it with \
             --config) to a SQuAD JSON file, a JSONL file, or a folder of Parquet shards or \
             text files; a relative path is read from the current folder"
                .into(),
        ));
    }

    let describe = |e: InputError| not_usable(e.to_string());
    let mut documents = Vec::new();
    let mut rejected = 0usize;
    for item in input::open(&InputConfig::new(path)).map_err(describe)? {
        match item.map_err(describe)? {
            Item::Valid(document) => documents.push(document.text),
            Item::Rejected(problem) => {
                rejected += 1;
                tracing::debug!(%problem, "skipped web text record");
            }
        }
    }
    if rejected > 0 {
        tracing::warn!(path = %path.display(), rejected, "skipped invalid web text records");
    }
    if documents.is_empty() {
        return Err(not_usable("contains no documents".into()));
    }
    Ok(documents)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bios() -> Vec<String> {
        (0..40)
            .map(|i| format!("Person {i} was born in City {i} and studied at University {i}."))
            .collect()
    }

    fn web() -> Vec<String> {
        (0..25)
            .map(|i| format!("Web page {i} says that tides rise and fall twice a day. ").repeat(3))
            .collect()
    }

    #[test]
    fn realized_fraction_is_near_ratio() {
        for ratio in [0.05, 0.1, 0.2, 0.4, 0.8, 0.95] {
            let corpus = mix(&bios(), &web(), ratio, 7).unwrap();
            let error = (corpus.bios_fraction() - ratio).abs();
            assert!(
                error < 0.005,
                "ratio {ratio}: realized {}",
                corpus.bios_fraction()
            );
        }
    }

    #[test]
    fn every_biography_is_kept_once() {
        let corpus = mix(&bios(), &web(), 0.3, 1).unwrap();
        assert_eq!(corpus.bios_documents, bios().len());
        assert_eq!(&corpus.documents[..corpus.bios_documents], &bios()[..]);
        let bytes: usize = corpus.web().iter().map(String::len).sum();
        assert_eq!(bytes, corpus.web_bytes);
    }

    #[test]
    fn short_web_text_repeats() {
        let corpus = mix(&bios(), &web(), 0.05, 1).unwrap();
        assert!(corpus.web_passes > 1.0, "passes {}", corpus.web_passes);
        let first = &web()[0];
        let copies = corpus.web().iter().filter(|d| *d == first).count();
        assert!(copies >= 2, "{copies} copies of the first web document");
    }

    #[test]
    fn ratio_one_has_no_web_text() {
        let corpus = mix(&bios(), &web(), 1.0, 1).unwrap();
        assert_eq!(corpus.web_bytes, 0);
        assert_eq!(corpus.documents.len(), bios().len());
        assert_eq!(corpus.bios_fraction(), 1.0);
    }

    #[test]
    fn mix_depends_on_seed_only() {
        let a = mix(&bios(), &web(), 0.2, 3).unwrap();
        let b = mix(&bios(), &web(), 0.2, 3).unwrap();
        let c = mix(&bios(), &web(), 0.2, 4).unwrap();
        assert_eq!(a, b);
        assert_ne!(a.documents, c.documents);
    }

    #[test]
    fn invalid_ratios_are_rejected() {
        for ratio in [0.0, -0.1, 1.5, f64::NAN] {
            assert!(mix(&bios(), &web(), ratio, 1).is_err(), "ratio {ratio}");
        }
    }

    #[test]
    fn empty_web_text_is_rejected_below_one() {
        let error = mix(&bios(), &[], 0.5, 1).unwrap_err().to_string();
        assert!(error.contains("web text is empty"), "{error}");
    }

    #[test]
    fn cut_keeps_whole_words() {
        assert_eq!(cut_at_word("alpha beta gamma", 12), "alpha beta");
        assert_eq!(cut_at_word("alphabet", 5), "alpha");
        assert_eq!(cut_at_word("été", 1), "");
        assert_eq!(cut_at_word("été", 2), "é");
    }

    #[test]
    fn web_text_reads_text_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), "The first page.").unwrap();
        std::fs::write(dir.path().join("b.md"), "The second page.").unwrap();
        let mut documents = read_web_text(dir.path()).unwrap();
        documents.sort();
        assert_eq!(documents, ["The first page.", "The second page."]);
    }

    #[test]
    fn missing_web_text_names_path_and_fix() {
        let error = read_web_text(Path::new("no/such/web.json"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("no/such/web.json"), "{error}");
        assert!(error.contains("web_text"), "{error}");
    }
}
