//! Diversity statistics of a generated corpus: gzip compression ratio, cross-document 4-gram
//! repetition and self-BLEU. Low diversity as the corpus grows is the failure mode of synthetic
//! rewrites, and these three numbers show it. The README's "Corpus statistics" section gives the
//! formulas.

use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};

/// Documents drawn for self-BLEU; each is scored against all the others, so the work grows with
/// the square of this number.
pub const SELF_BLEU_SAMPLE: usize = 100;
/// Seed of the self-BLEU sample, fixed so that the same corpus always gives the same value.
pub const SELF_BLEU_SEED: u64 = 0x6b65_6e6e_696e_6700;
/// The n of the cross-document repetition and the highest n-gram order of BLEU.
const ORDER: usize = 4;

/// Diversity statistics of a corpus.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CorpusStatistics {
    /// Documents (rows) measured.
    pub documents: u64,
    /// Words, as [`words`] splits them.
    pub words: u64,
    /// UTF-8 bytes of the corpus divided by its gzip size (level 6); higher means more redundant.
    pub gzip_ratio: f64,
    /// Share of the documents' distinct word 4-grams that also occur in another document, 0 to 1.
    pub self_repetition_4gram: f64,
    /// Mean BLEU-4 of each sampled document against the other sampled ones, 0 to 1; `None` when
    /// fewer than two documents have four words.
    pub self_bleu: Option<f64>,
    /// Documents in the self-BLEU sample.
    pub self_bleu_sample: u64,
}

/// Splits `text` into lowercase words: maximal runs of alphanumeric characters.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Measures a corpus in one pass over its documents.
#[derive(Default)]
pub struct StatisticsBuilder {
    documents: u64,
    words: u64,
    raw_bytes: u64,
    gzip: Option<GzEncoder<ByteCounter>>,
    /// Documents that contain each 4-gram, by the 4-gram's 64-bit hash.
    four_grams: HashMap<u64, u32>,
    /// Reservoir sample for self-BLEU: (document index, words).
    sample: Vec<(u64, Vec<String>)>,
    eligible: u64,
    random: u64,
}

impl StatisticsBuilder {
    pub fn new() -> Self {
        Self {
            gzip: Some(GzEncoder::new(ByteCounter(0), Compression::default())),
            random: SELF_BLEU_SEED,
            ..Self::default()
        }
    }

    /// Adds one document.
    ///
    /// NOTE: the 4-gram index keeps one entry per distinct 4-gram of the corpus, about 16 bytes
    /// each (an estimate), so a corpus of a billion words needs several GiB for it.
    pub fn add(&mut self, text: &str) {
        self.documents += 1;
        self.raw_bytes += text.len() as u64 + 1;
        if let Some(gzip) = &mut self.gzip {
            gzip.write_all(text.as_bytes())
                .and_then(|()| gzip.write_all(b"\n"))
                .expect("writing to a byte counter cannot fail");
        }

        let words = words(text);
        self.words += words.len() as u64;
        let distinct: HashSet<u64> = words.windows(ORDER).map(hash_gram).collect();
        for gram in distinct {
            let documents = self.four_grams.entry(gram).or_insert(0);
            *documents = documents.saturating_add(1);
        }

        if words.len() >= ORDER {
            self.eligible += 1;
            if self.sample.len() < SELF_BLEU_SAMPLE {
                self.sample.push((self.documents, words));
            } else {
                let slot = self.next_random() % self.eligible;
                if let Some(entry) = self.sample.get_mut(slot as usize) {
                    *entry = (self.documents, words);
                }
            }
        }
    }

    /// Returns the statistics of the documents added so far.
    pub fn finish(mut self) -> CorpusStatistics {
        let compressed = self
            .gzip
            .take()
            .map(|gzip| gzip.finish().expect("a byte counter cannot fail").0)
            .unwrap_or(0);
        let gzip_ratio = if compressed == 0 {
            0.0
        } else {
            self.raw_bytes as f64 / compressed as f64
        };

        // Each 4-gram counts once per document that contains it: shared when two or more do.
        let (shared, total) =
            self.four_grams
                .values()
                .fold((0u64, 0u64), |(shared, total), &documents| {
                    let documents = u64::from(documents);
                    let shared_here = if documents >= 2 { documents } else { 0 };
                    (shared + shared_here, total + documents)
                });
        let self_repetition_4gram = if total == 0 {
            0.0
        } else {
            shared as f64 / total as f64
        };

        self.sample.sort_by_key(|(index, _)| *index);
        let sample: Vec<Vec<String>> = self.sample.into_iter().map(|(_, w)| w).collect();
        CorpusStatistics {
            documents: self.documents,
            words: self.words,
            gzip_ratio,
            self_repetition_4gram,
            self_bleu_sample: sample.len() as u64,
            self_bleu: self_bleu(&sample),
        }
    }

    /// SplitMix64: enough to draw a fixed, evenly spread sample.
    fn next_random(&mut self) -> u64 {
        self.random = self.random.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.random;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Counts the bytes written to it, so that gzip needs no buffer for the whole corpus.
#[derive(Default)]
struct ByteCounter(u64);

impl Write for ByteCounter {
    fn write(&mut self, buffer: &[u8]) -> std::io::Result<usize> {
        self.0 += buffer.len() as u64;
        Ok(buffer.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn hash_gram(gram: &[String]) -> u64 {
    let mut hasher = DefaultHasher::new();
    gram.hash(&mut hasher);
    hasher.finish()
}

/// The two highest counts of an n-gram over the documents, and the document with the highest:
/// (highest, its document, second highest).
type BestCounts<'a> = HashMap<&'a [String], (u32, usize, u32)>;

/// N-gram counts of one document for orders 1 to 4.
fn gram_counts(words: &[String]) -> [HashMap<&[String], u32>; ORDER] {
    std::array::from_fn(|i| {
        let mut counts = HashMap::new();
        for gram in words.windows(i + 1) {
            *counts.entry(gram).or_insert(0) += 1;
        }
        counts
    })
}

/// Returns the mean BLEU-4 of each document against all the others as references, or `None`
/// with fewer than two documents.
pub fn self_bleu(documents: &[Vec<String>]) -> Option<f64> {
    if documents.len() < 2 {
        return None;
    }
    let counts: Vec<_> = documents.iter().map(|d| gram_counts(d)).collect();

    // The best count among the *other* documents is then found without a scan.
    let mut best: [BestCounts; ORDER] = Default::default();
    for (document, orders) in counts.iter().enumerate() {
        for (order, grams) in orders.iter().enumerate() {
            for (&gram, &count) in grams {
                let entry = best[order].entry(gram).or_insert((0, usize::MAX, 0));
                if count > entry.0 {
                    *entry = (count, document, entry.0);
                } else if count > entry.2 {
                    entry.2 = count;
                }
            }
        }
    }

    let lengths: Vec<usize> = documents.iter().map(Vec::len).collect();
    let mut total = 0.0;
    for (document, orders) in counts.iter().enumerate() {
        let mut log_precision = 0.0;
        for (order, grams) in orders.iter().enumerate() {
            let candidates: u32 = grams.values().sum();
            let matched: u32 = grams
                .iter()
                .map(|(gram, &count)| {
                    let (first, owner, second) = best[order][gram];
                    let reference = if owner == document { second } else { first };
                    count.min(reference)
                })
                .sum();
            // Smoothing: a zero match count becomes 0.1, so that one order without a match
            // does not make the whole score zero.
            let matched = if matched == 0 {
                0.1
            } else {
                f64::from(matched)
            };
            log_precision += (matched / f64::from(candidates.max(1))).ln() / ORDER as f64;
        }
        let length = documents[document].len();
        let reference = closest_other_length(&lengths, document, length);
        let brevity = if length >= reference {
            1.0
        } else {
            (1.0 - reference as f64 / length as f64).exp()
        };
        total += brevity * log_precision.exp();
    }
    Some(total / documents.len() as f64)
}

/// Returns the length of the other document closest to `length`, the shorter one on a tie.
fn closest_other_length(lengths: &[usize], document: usize, length: usize) -> usize {
    lengths
        .iter()
        .enumerate()
        .filter(|(other, _)| *other != document)
        .map(|(_, &l)| l)
        .min_by_key(|&l| (l.abs_diff(length), l))
        .unwrap_or(length)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measure(documents: &[&str]) -> CorpusStatistics {
        let mut builder = StatisticsBuilder::new();
        for document in documents {
            builder.add(document);
        }
        builder.finish()
    }

    #[test]
    fn words_are_lowercase_alphanumeric_runs() {
        assert_eq!(
            words("Mainz, 1440: the PRESS!"),
            ["mainz", "1440", "the", "press"]
        );
    }

    #[test]
    fn repetition_counts_shared_grams() {
        // 4-grams: {abcd, bcde} and {abcd, bcdf}; abcd is in both documents, so 2 of the 4
        // (document, 4-gram) pairs are shared.
        let stats = measure(&["a b c d e", "a b c d f"]);
        assert!((stats.self_repetition_4gram - 0.5).abs() < 1e-12);
        assert_eq!(stats.documents, 2);
        assert_eq!(stats.words, 10);
    }

    #[test]
    fn repetition_of_disjoint_documents_is_zero() {
        let stats = measure(&["one two three four five", "six seven eight nine ten"]);
        assert_eq!(stats.self_repetition_4gram, 0.0);
    }

    #[test]
    fn self_bleu_matches_hand_computation() {
        // Each document against the other: precisions 4/5, 3/4, 2/3, 1/2, equal lengths, so
        // BLEU = (0.8 · 0.75 · 0.6667 · 0.5)^(1/4) = 0.2^(1/4).
        let stats = measure(&["a b c d e", "a b c d f"]);
        let expected = 0.2f64.powf(0.25);
        let bleu = stats.self_bleu.unwrap();
        assert!((bleu - expected).abs() < 1e-9, "{bleu} != {expected}");
    }

    #[test]
    fn self_bleu_of_copies_is_one() {
        let text = "the press in mainz printed the bible around 1440";
        let stats = measure(&[text, text, text]);
        assert!((stats.self_bleu.unwrap() - 1.0).abs() < 1e-12);
        assert!((stats.self_repetition_4gram - 1.0).abs() < 1e-12);
    }

    #[test]
    fn self_bleu_applies_brevity_penalty() {
        // The short document matches fully but is 4 words against 8: BP = exp(1 - 8/4).
        let bleu = self_bleu(&[words("a b c d"), words("a b c d e f g h")]).unwrap();
        let short = (1.0f64 - 2.0).exp();
        // The long one: precisions 4/8, 3/7, 2/6, 1/5 and no penalty.
        let long = (0.5f64 * 3.0 / 7.0 * (2.0 / 6.0) * 0.2).powf(0.25);
        assert!((bleu - (short + long) / 2.0).abs() < 1e-9, "{bleu}");
    }

    #[test]
    fn self_bleu_needs_two_documents() {
        assert_eq!(measure(&["only one document here"]).self_bleu, None);
        assert_eq!(measure(&["too short", "also short"]).self_bleu, None);
    }

    #[test]
    fn gzip_ratio_grows_with_redundancy() {
        let repeated = vec!["the same sentence about the printing press"; 200];
        let varied: Vec<String> = (0..200)
            .map(|i| format!("document {i} with value {}", i * 7919 % 1013))
            .collect();
        let varied: Vec<&str> = varied.iter().map(String::as_str).collect();
        let high = measure(&repeated).gzip_ratio;
        let low = measure(&varied).gzip_ratio;
        assert!(high > 10.0, "{high}");
        assert!(low < high, "{low} >= {high}");
    }

    #[test]
    fn sample_is_fixed_and_bounded() {
        let texts: Vec<String> = (0..500)
            .map(|i| format!("document number {i} says {} things", i % 17))
            .collect();
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        let first = measure(&texts);
        let second = measure(&texts);
        assert_eq!(first.self_bleu_sample, SELF_BLEU_SAMPLE as u64);
        assert_eq!(first.self_bleu, second.self_bleu);
    }
}
