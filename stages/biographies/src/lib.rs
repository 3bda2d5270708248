//! Synthetic biographies for knowledge-storage, knowledge-extraction and hallucination
//! experiments: fictional people with six attributes, bioS-style biographies with
//! multiplicity, permutation and full-name augmentations, QA pairs with held-out and unknown
//! people, and a knob for spurious correlations between surname and attribute.

pub mod attribute;
pub mod config;
pub mod error;
pub mod manifest;
pub mod names;
pub mod people;
pub mod permutation;
pub mod pools;
pub mod rng;
pub mod run;
pub mod tables;
pub mod templates;
pub mod text;

pub use attribute::Attribute;
pub use config::BiosConfig;
pub use error::BiosError;
pub use run::{BiosOutput, BiosSummary, RunOptions, run};
