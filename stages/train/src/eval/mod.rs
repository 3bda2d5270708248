//! Evaluation: biographies attribute accuracy, closed-book QA and hallucination metrics.

pub mod auroc;
pub mod bios;
pub mod bios_data;
pub mod hallucination;
pub mod judge;
pub mod normalize;
pub mod qa;
pub mod squad;

pub use bios::{Accuracy, Probe, accuracy, qa_document, qa_probes, storage_probes};
pub use bios_data::BiosData;
pub use hallucination::{Hallucination, hallucination};
pub use judge::{JudgeScore, Verdict, judge_prompt, parse_verdict};
pub use qa::{QaItem, QaScore, closed_book};
pub use squad::{SquadPassage, read_squad};
