//! Experiments run by `kenning experiment NAME`: each has a TOML config in `experiments/`
//! with a CPU-sized default and a GPU preset, and writes a markdown report with plots.

mod common;
pub mod mixing;
pub mod mixing_phase;
pub mod spa_squad;
mod spa_squad_report;
pub mod spurious_correlation;
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
pub const NAMES: [&str; 4] = [
    "storage-vs-extraction",
    "mixing-phase-transition",
    "spurious-correlation",
    "spa-squad",
];

/// Returns the built-in config text of experiment `name` at `scale`.
pub fn builtin_config(name: &str, scale: Scale) -> Result<&'static str> {
    match (name, scale) {
        ("storage-vs-extraction", Scale::Cpu) => Ok(include_str!(
            "../../../../experiments/storage-vs-extraction.toml"
        )),
        ("storage-vs-extraction", Scale::Gpu) => Ok(include_str!(
            "../../../../experiments/storage-vs-extraction.gpu.toml"
        )),
        ("mixing-phase-transition", Scale::Cpu) => Ok(include_str!(
            "../../../../experiments/mixing-phase-transition.toml"
        )),
        ("mixing-phase-transition", Scale::Gpu) => Ok(include_str!(
            "../../../../experiments/mixing-phase-transition.gpu.toml"
        )),
        ("spurious-correlation", Scale::Cpu) => Ok(include_str!(
            "../../../../experiments/spurious-correlation.toml"
        )),
        ("spurious-correlation", Scale::Gpu) => Ok(include_str!(
            "../../../../experiments/spurious-correlation.gpu.toml"
        )),
        ("spa-squad", Scale::Cpu) => Ok(include_str!("../../../../experiments/spa-squad.toml")),
        ("spa-squad", Scale::Gpu) => Ok(include_str!("../../../../experiments/spa-squad.gpu.toml")),
        _ => Err(TrainError::Config(format!(
            "unknown experiment `{name}`: choose one of {}",
            NAMES.join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_parses() {
        for name in NAMES {
            for scale in [Scale::Cpu, Scale::Gpu] {
                let text = builtin_config(name, scale).unwrap();
                let source = format!("{name} {scale:?}");
                let parsed = match name {
                    "storage-vs-extraction" => {
                        storage_extraction::ExperimentConfig::from_toml(text, &source).map(drop)
                    }
                    "mixing-phase-transition" => {
                        mixing_phase::ExperimentConfig::from_toml(text, &source).map(drop)
                    }
                    "spurious-correlation" => {
                        spurious_correlation::ExperimentConfig::from_toml(text, &source).map(drop)
                    }
                    "spa-squad" => spa_squad::ExperimentConfig::from_toml(text, &source).map(drop),
                    other => panic!("NAMES lists `{other}`, which this test does not parse"),
                };
                assert!(parsed.is_ok(), "{source}: {}", parsed.unwrap_err());
            }
        }
    }

    #[test]
    fn unknown_name_is_rejected() {
        let error = builtin_config("no-such-experiment", Scale::Cpu)
            .unwrap_err()
            .to_string();
        assert!(error.contains("spurious-correlation"), "{error}");
    }
}
