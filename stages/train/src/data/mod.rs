//! Training data: documents read from Parquet shards, tokenized and packed into sequences.

pub mod packing;
pub mod shards;

pub use packing::PackedCorpus;
pub use shards::{Corpus, SourceFile, read_shards};
