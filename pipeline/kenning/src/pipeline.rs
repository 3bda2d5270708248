//! Pipeline files: parsing, validation before any side effect, and the run itself.

use std::path::Path;

use anyhow::{Context, bail};
use kenning_chunk::{ChunkConfig, ChunkStage};
use kenning_pipeline::config::{InputConfig, OutputConfig};
use kenning_pipeline::{Engine, RunSummary, Stage};
use serde::{Deserialize, Serialize};

use crate::cli::{ChunkArgs, RunArgs, RunOptions};

/// A pipeline file: `[input]`, `[output]` and a list of `[[stages]]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    pub input: InputConfig,
    pub output: OutputConfig,
    #[serde(default)]
    pub stages: Vec<StageConfig>,
}

/// One stage of a pipeline file, chosen by its `kind`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum StageConfig {
    Chunk(ChunkConfig),
}

impl PipelineConfig {
    /// Checks every setting without writing a file or sending a request.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !self.input.path.exists() {
            bail!(
                "input not found: {}. Check the --input path or input.path",
                self.input.path.display()
            );
        }
        if self.input.limit == Some(0) {
            bail!("--limit (input.limit) must be at least 1");
        }
        self.output.validate().map_err(anyhow::Error::msg)?;
        for (i, stage) in self.stages.iter().enumerate() {
            match stage {
                StageConfig::Chunk(chunk) => chunk
                    .validate()
                    .map_err(anyhow::Error::msg)
                    .with_context(|| format!("invalid stage {} (chunk)", i + 1))?,
            }
        }
        Ok(())
    }

    fn build_stages(&self) -> anyhow::Result<Vec<Box<dyn Stage>>> {
        self.stages
            .iter()
            .map(|stage| -> anyhow::Result<Box<dyn Stage>> {
                match stage {
                    StageConfig::Chunk(chunk) => Ok(Box::new(ChunkStage::new(chunk.clone())?)),
                }
            })
            .collect()
    }
}

/// Builds the pipeline of `kenning chunk` from its flags.
pub fn config_from_chunk_args(args: ChunkArgs) -> anyhow::Result<(PipelineConfig, RunOptions)> {
    let input = args.input.to_config();
    let output = args
        .output
        .to_config(kenning_pipeline::config::DEFAULT_CHANNEL_CAPACITY);
    let chunk = ChunkConfig {
        max_tokens: args.max_tokens,
        overlap: args.overlap,
        tokenizer: args.tokenizer,
    };
    let config = PipelineConfig {
        input,
        output,
        stages: vec![StageConfig::Chunk(chunk)],
    };
    Ok((config, args.output.run))
}

/// Reads a pipeline file and applies the flags that replace its settings.
pub fn config_from_file(args: RunArgs) -> anyhow::Result<(PipelineConfig, RunOptions)> {
    let mut config = read_pipeline_file(&args.config)?;
    if let Some(input) = args.input {
        config.input.path = input;
    }
    if let Some(out) = args.out {
        config.output.dir = out;
    }
    if args.limit.is_some() {
        config.input.limit = args.limit;
    }
    if args.skip_invalid {
        config.input.skip_invalid = true;
    }
    Ok((config, args.run))
}

/// Parses a pipeline file, naming the file and the offending key on error.
pub fn read_pipeline_file(path: &Path) -> anyhow::Result<PipelineConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read pipeline file {}", path.display()))?;
    toml::from_str(&text)
        .map_err(|e| anyhow::anyhow!("invalid pipeline file {}: {e}", path.display()))
}

/// Validates the configuration, then runs it on a Tokio runtime.
pub fn run(config: PipelineConfig, options: RunOptions) -> anyhow::Result<RunSummary> {
    config.validate()?;
    let stages = config.build_stages()?;
    let recorded = serde_json::to_value(&config).context("cannot record the configuration")?;

    let engine = Engine {
        input: config.input,
        output: config.output,
        config: recorded,
        restart: options.restart,
        progress: !options.no_progress,
        reopen_complete: false,
        unfingerprinted: Vec::new(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    Ok(runtime.block_on(engine.run(stages))?)
}
