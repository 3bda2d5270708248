//! The spa-squad experiment's backend: the default local model (SmolLM2-135M-Instruct) as the
//! base model to train, and `kenning augment --provider local` as the SPA generator.

use std::path::Path;

use clap::Parser;
use kenning_train::TrainConfig;
use kenning_train::experiment::spa_squad::{AugmentRequest, BackendError, SpaBackend};
use kenning_train::model::Llama;

use crate::cli::{AugmentArgs, Cli, Command};

/// License of the SQuAD passages, written into the SPA corpora's dataset cards.
const SQUAD_LICENSE: &str = "cc-by-sa-4.0";

/// Runs the experiment's model loading and generation through the binary's own commands.
pub struct PipelineBackend;

impl SpaBackend for PipelineBackend {
    fn base_model(
        &mut self,
        train: &mut TrainConfig,
        run_dir: &Path,
    ) -> Result<Llama, BackendError> {
        Ok(crate::train::base_model("default", train, run_dir)?.model)
    }

    fn augment(&mut self, request: &AugmentRequest<'_>) -> Result<(), BackendError> {
        let (summary, corpus) = crate::augment::run(augment_args(request)?)?;
        tracing::info!(
            strategy = request.strategy,
            rows = summary.rows,
            already_complete = summary.already_complete,
            completion_tokens = corpus.completion_tokens,
            "augment finished"
        );
        Ok(())
    }
}

/// Builds the flags of `kenning augment` for `request`, so that the rewrites come from the same
/// code path and defaults as the command line. Text cut off at `max_tokens` is kept, because
/// the small model often writes past a short limit.
fn augment_args(request: &AugmentRequest<'_>) -> Result<AugmentArgs, BackendError> {
    let generation = request.generation;
    let argv: Vec<String> = [
        "kenning",
        "augment",
        "--provider",
        "local",
        "--input",
        &request.input.display().to_string(),
        "--out",
        &request.out.display().to_string(),
        "--strategies",
        request.strategy,
        "--k",
        &request.k.to_string(),
        "--max-tokens",
        &generation.max_tokens.to_string(),
        "--temperature",
        &generation.temperature.to_string(),
        "--seed",
        &generation.seed.to_string(),
        "--license",
        SQUAD_LICENSE,
        "--keep-truncated",
        "--no-progress",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    match Cli::try_parse_from(&argv)?.command {
        Command::Augment(args) => Ok(*args),
        _ => Err(format!("`{}` did not parse as `kenning augment`", argv.join(" ")).into()),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use kenning_train::experiment::spa_squad::GenerationConfig;

    use super::*;

    #[test]
    fn augment_args_carry_request() {
        let generation = GenerationConfig {
            max_tokens: 200,
            temperature: 0.5,
            seed: 7,
        };
        let input = PathBuf::from("out/passages.jsonl");
        let out = PathBuf::from("out/spa/teacher");
        let request = AugmentRequest {
            input: &input,
            out: &out,
            strategy: "teacher",
            k: 3,
            generation: &generation,
        };
        let args = augment_args(&request).unwrap();
        assert_eq!(args.provider, "local");
        assert_eq!(args.input.input, input);
        assert_eq!(args.output.out, out);
        assert_eq!(args.strategies, vec!["teacher"]);
        assert_eq!(args.k, 3);
        assert_eq!(args.max_tokens, 200);
        assert_eq!(args.temperature, 0.5);
        assert_eq!(args.seed, Some(7));
        assert!(args.keep_truncated);
        assert_eq!(args.output.license, SQUAD_LICENSE);
    }
}
