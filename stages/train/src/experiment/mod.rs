//! Experiments run by `kenning experiment NAME`: each has a TOML config in `experiments/`
//! with a CPU-sized default and a GPU preset, and writes a markdown report with plots.

pub mod storage_extraction;

use crate::error::{Result, TrainError};

/// Size preset of an experiment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// Minutes on a laptop CPU.
    Cpu,
    /// Larger models and data for a GPU.
    Gpu,
}

/// Names of the experiments that can run.
pub const NAMES: [&str; 1] = ["storage-vs-extraction"];

/// Returns the built-in config text of experiment `name` at `scale`.
pub fn builtin_config(name: &str, scale: Scale) -> Result<&'static str> {
    match (name, scale) {
        ("storage-vs-extraction", Scale::Cpu) => Ok(include_str!(
            "../../../../experiments/storage-vs-extraction.toml"
        )),
        ("storage-vs-extraction", Scale::Gpu) => Ok(include_str!(
            "../../../../experiments/storage-vs-extraction.gpu.toml"
        )),
        _ => Err(TrainError::Config(format!(
            "unknown experiment `{name}`: choose one of {}",
            NAMES.join(", ")
        ))),
    }
}
