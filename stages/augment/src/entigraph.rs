//! Two-step entity-graph generation (EntiGraph): one request extracts a document's summary and
//! entities as JSON, then each chosen pair and triple of those entities gets a text about how
//! they relate, grounded in the document.
//!
//! The extracted entities are kept in `entities.jsonl` beside the shards, not in the dataset:
//! they are an intermediate result, and a resumed run reads them from there instead of paying
//! for the extraction again.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use kenning_pipeline::stage::StageError;
use serde::{Deserialize, Serialize};

/// Name of the extraction template.
pub const EXTRACT: &str = "extract_entities";
/// Name of the template about two entities.
pub const PAIR: &str = "relate_pair";
/// Name of the template about three entities.
pub const TRIPLE: &str = "relate_triple";
/// Default number of entity pairs written about per document.
pub const DEFAULT_PAIRS: u32 = 10;
/// Default number of entity triples written about per document.
pub const DEFAULT_TRIPLES: u32 = 5;
/// Entities kept per document; the extraction prompt requests at most 30.
const MAX_ENTITIES: usize = 30;
/// Separator of entity names in the `{entities}` placeholder and the `entities` column.
pub const SEPARATOR: &str = "; ";

/// How many pairs and triples to write about per document.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct EntityGraph {
    pub pairs: u32,
    pub triples: u32,
}

/// The result of the extraction step for one document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Extraction {
    pub doc_id: String,
    pub summary: String,
    /// Entities that occur in the document, in the model's order.
    pub entities: Vec<String>,
}

/// Reason an extraction response is unusable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExtractionError {
    #[error("the response is not a JSON object with `summary` and `entities`")]
    NotJson,
    #[error("fewer than two of the extracted entities occur in the document (found: {0})")]
    TooFewEntities(String),
}

/// Reads the extraction response `text` of a document. The JSON object may be wrapped in prose
/// or a code fence, or (from the raw-completion prompt, which ends inside the object) lack its
/// opening `{"summary": "`. Entities that do not occur in the document, compared without case,
/// are dropped, so that the relation prompts only name what the document contains.
pub fn parse_extraction(
    doc_id: &str,
    document: &str,
    text: &str,
) -> Result<Extraction, ExtractionError> {
    #[derive(Deserialize)]
    struct Raw {
        #[serde(default)]
        summary: serde_json::Value,
        entities: Vec<serde_json::Value>,
    }

    let continued = format!("{{\"summary\": \"{text}");
    let raw = [text, continued.as_str()]
        .into_iter()
        .find_map(|candidate| {
            let start = candidate.find('{')?;
            let end = candidate.rfind('}')?;
            serde_json::from_str::<Raw>(candidate.get(start..=end)?).ok()
        })
        .ok_or(ExtractionError::NotJson)?;

    let lowercase_document = document.to_lowercase();
    let mut seen = HashSet::new();
    let mut entities = Vec::new();
    for entity in raw.entities.iter().filter_map(serde_json::Value::as_str) {
        let entity = entity.trim();
        let folded = entity.to_lowercase();
        if entity.is_empty() || !lowercase_document.contains(&folded) || !seen.insert(folded) {
            continue;
        }
        entities.push(entity.to_string());
        if entities.len() == MAX_ENTITIES {
            break;
        }
    }
    if entities.len() < 2 {
        return Err(ExtractionError::TooFewEntities(entities.join(SEPARATOR)));
    }
    Ok(Extraction {
        doc_id: doc_id.to_string(),
        summary: raw.summary.as_str().unwrap_or_default().trim().to_string(),
        entities,
    })
}

/// Chooses up to `count` combinations of `size` entities out of `entities`, the same ones for
/// the same document and entities in every run. Each combination lists entities in the
/// extraction's order.
pub fn choose(doc_id: &str, entities: &[String], size: usize, count: u32) -> Vec<Vec<String>> {
    let mut all = combinations(entities.len(), size);
    let mut state = doc_id
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64 ^ size as u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    // Fisher–Yates shuffle driven by SplitMix64, seeded from the document id.
    for i in (1..all.len()).rev() {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        all.swap(i, (z % (i as u64 + 1)) as usize);
    }
    all.truncate(count as usize);
    all.into_iter()
        .map(|indices| indices.into_iter().map(|i| entities[i].clone()).collect())
        .collect()
}

/// Returns every increasing `size`-tuple of indices below `n`.
fn combinations(n: usize, size: usize) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    let mut current = Vec::with_capacity(size);
    fn walk(
        start: usize,
        n: usize,
        size: usize,
        current: &mut Vec<usize>,
        out: &mut Vec<Vec<usize>>,
    ) {
        if current.len() == size {
            out.push(current.clone());
            return;
        }
        for i in start..n {
            current.push(i);
            walk(i + 1, n, size, current, out);
            current.pop();
        }
    }
    if size > 0 {
        walk(0, n, size, &mut current, &mut out);
    }
    out
}

/// `entities.jsonl`: the extractions of this output folder, one JSON line per document.
pub struct EntityStore {
    path: PathBuf,
    file: File,
    known: HashMap<String, Extraction>,
}

impl EntityStore {
    /// Opens `path` for appending and reads the extractions of earlier runs.
    pub fn open(stage: &str, path: &Path) -> Result<Self, StageError> {
        let mut known = HashMap::new();
        if let Ok(file) = File::open(path) {
            for line in BufReader::new(file).lines().map_while(Result::ok) {
                // A line cut short by a crash is skipped; its document is extracted again.
                if let Ok(extraction) = serde_json::from_str::<Extraction>(&line) {
                    known.insert(extraction.doc_id.clone(), extraction);
                }
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| StageError::Failed {
                stage: stage.into(),
                message: format!("cannot open {}: {e}", path.display()),
            })?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            known,
        })
    }

    /// Returns the stored extraction of a document.
    pub fn get(&self, doc_id: &str) -> Option<&Extraction> {
        self.known.get(doc_id)
    }

    /// Stores an extraction before any relation request is sent for it.
    pub fn insert(&mut self, stage: &str, extraction: Extraction) -> Result<(), StageError> {
        let mut line = serde_json::to_string(&extraction).expect("an extraction serializes");
        line.push('\n');
        // One write call, so that a killed process leaves no line without its newline for the
        // next run's first line to be appended to.
        self.file
            .write_all(line.as_bytes())
            .map_err(|e| StageError::Failed {
                stage: stage.into(),
                message: format!("cannot write {}: {e}", self.path.display()),
            })?;
        self.known.insert(extraction.doc_id.clone(), extraction);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCUMENT: &str = "Johannes Gutenberg built a printing press in Mainz around 1440.";

    #[test]
    fn extraction_reads_wrapped_json() {
        let text = "Here it is:\n```json\n{\"summary\": \"Gutenberg's press.\", \"entities\": [\"Johannes Gutenberg\", \"Mainz\", \"printing press\"]}\n```";
        let extraction = parse_extraction("d", DOCUMENT, text).unwrap();
        assert_eq!(extraction.summary, "Gutenberg's press.");
        assert_eq!(
            extraction.entities,
            ["Johannes Gutenberg", "Mainz", "printing press"]
        );
    }

    #[test]
    fn extraction_reads_completion_continuation() {
        let text = "A press in Mainz.\", \"entities\": [\"Mainz\", \"Johannes Gutenberg\"]}";
        let extraction = parse_extraction("d", DOCUMENT, text).unwrap();
        assert_eq!(extraction.summary, "A press in Mainz.");
        assert_eq!(extraction.entities, ["Mainz", "Johannes Gutenberg"]);
    }

    #[test]
    fn extraction_drops_entities_not_in_document() {
        let text = r#"{"summary": "s", "entities": ["Mainz", "Paris", "mainz", 7, " Johannes Gutenberg "]}"#;
        let extraction = parse_extraction("d", DOCUMENT, text).unwrap();
        assert_eq!(extraction.entities, ["Mainz", "Johannes Gutenberg"]);
    }

    #[test]
    fn extraction_rejects_prose_and_lone_entities() {
        assert_eq!(
            parse_extraction("d", DOCUMENT, "I cannot do that."),
            Err(ExtractionError::NotJson)
        );
        assert_eq!(
            parse_extraction(
                "d",
                DOCUMENT,
                r#"{"summary": "s", "entities": ["Mainz", "Rome"]}"#
            ),
            Err(ExtractionError::TooFewEntities("Mainz".into()))
        );
    }

    #[test]
    fn choose_is_fixed_and_bounded() {
        let entities: Vec<String> = (0..6).map(|i| format!("e{i}")).collect();
        let pairs = choose("doc-1", &entities, 2, 4);
        assert_eq!(pairs.len(), 4);
        assert_eq!(pairs, choose("doc-1", &entities, 2, 4));
        assert_ne!(pairs, choose("doc-2", &entities, 2, 4));
        let distinct: HashSet<_> = pairs.iter().collect();
        assert_eq!(distinct.len(), 4);
        // All 20 triples of 6 entities when more are requested.
        assert_eq!(choose("doc-1", &entities, 3, 100).len(), 20);
    }
}
