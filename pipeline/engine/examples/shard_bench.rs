//! Throughput and memory benchmark of the shard writer.
//!
//! `generate` writes a deterministic corpus of English-like rows, one row per line, and
//! `write` pushes those rows through [`ShardWriter`] and prints one JSON line with the
//! figures. `bench/run_shard_bench.py` runs both and compares the result with pyarrow.
//!
//! ```text
//! cargo run --release --example shard_bench -p kenning-pipeline -- generate --output bench-out/shard-writer/rows.txt
//! cargo run --release --example shard_bench -p kenning-pipeline -- write --input bench-out/shard-writer/rows.txt
//! ```

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use kenning_pipeline::bytesize::ByteSize;
use kenning_pipeline::record::{Record, RecordKey};
use kenning_pipeline::schema::RecordSchema;
use kenning_pipeline::sink::{FinishedShard, ShardOptions, ShardWriter};
use parquet::file::reader::{FileReader, SerializedFileReader};
use serde::{Deserialize, Serialize};

/// Version of the corpus format. Raise it when the generator's output changes, so that
/// corpora written by an older generator are not reused.
const CORPUS_FORMAT: u32 = 1;

/// Seed of the vocabulary, fixed so that every corpus draws from the same words.
const VOCABULARY_SEED: u64 = 0x6b65_6e6e_696e_6721;
/// Words in the vocabulary: the common English words below, then made-up words.
const VOCABULARY_SIZE: usize = 30_000;
/// Exponent of the Zipf distribution that words are drawn from. Natural-language word
/// frequencies follow Zipf's law with an exponent close to 1.
const ZIPF_EXPONENT: f64 = 1.0;

/// Most frequent English words, roughly in frequency order, which take the top ranks.
const COMMON_WORDS: &[&str] = &[
    "the", "of", "and", "to", "a", "in", "is", "that", "for", "it", "as", "was", "with", "be",
    "by", "on", "not", "he", "this", "are", "or", "his", "from", "at", "which", "but", "have",
    "an", "they", "you", "were", "their", "one", "all", "we", "can", "her", "has", "there", "been",
    "if", "more", "when", "will", "would", "who", "so", "no", "she", "other", "its", "may",
    "these", "what", "them", "than", "some", "him", "time", "into", "only", "do", "could", "new",
    "about", "two", "first", "then", "also", "after", "any", "like", "our", "such", "over", "most",
    "made", "where", "many", "out", "up", "between", "world", "each", "work", "years", "people",
    "state", "through", "water", "during", "system", "under", "later", "known", "city", "used",
    "part", "while", "number", "history", "however",
];

const ONSETS: &[&str] = &[
    "b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "br",
    "ch", "cl", "cr", "dr", "fl", "gr", "pl", "pr", "sh", "sl", "sp", "st", "th", "tr",
];
const VOWELS: &[&str] = &["a", "e", "i", "o", "u", "ai", "ea", "ee", "io", "ou"];
const CODAS: &[&str] = &[
    "", "", "", "n", "r", "s", "t", "l", "m", "nd", "ng", "nt", "rs", "st",
];

#[derive(Parser)]
#[command(about = "Benchmark of Kenning's Parquet shard writer")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write the corpus: one row of English-like text per line, reused when already present.
    Generate(GenerateArgs),
    /// Write the corpus's rows into zstd Parquet shards and print the figures as one JSON line.
    Write(WriteArgs),
}

#[derive(Args)]
struct GenerateArgs {
    /// Corpus file to write. A sidecar `<file>.json` records how it was made.
    #[arg(long)]
    output: PathBuf,
    /// Number of rows (lines).
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// Mean target length of a row in bytes. Targets are uniform within ±25% of it, and a row
    /// ends at the first sentence end past its target, so rows are a few percent longer.
    #[arg(long, default_value_t = 2048)]
    row_bytes: u64,
    /// Seed of the word sequence.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Args)]
struct WriteArgs {
    /// Corpus file: one row per line, as written by `generate`.
    #[arg(long)]
    input: PathBuf,
    /// Folder in which a temporary output folder is created and removed after the run.
    #[arg(long, default_value = "bench-out/shard-writer")]
    work_dir: PathBuf,
    /// zstd compression level.
    #[arg(long, default_value_t = ShardOptions::default().zstd_level)]
    zstd_level: i32,
    /// Maximum rows in one Parquet row group.
    #[arg(long, default_value_t = ShardOptions::default().row_group_rows)]
    row_group_rows: usize,
    /// Maximum estimated encoded size of one row group, such as 64MiB.
    #[arg(long, default_value_t = ShardOptions::default().row_group_bytes)]
    row_group_bytes: ByteSize,
    /// Size at which a shard is closed and the next one started, such as 256MiB.
    #[arg(long, default_value_t = ShardOptions::default().shard_bytes)]
    shard_bytes: ByteSize,
    /// Keep the output folder and print its path in the JSON line as `output_dir`.
    #[arg(long)]
    keep: bool,
}

/// Settings and size of a corpus, stored in its sidecar file. A corpus is reused only when all
/// of them match.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct CorpusInfo {
    format: u32,
    rows: u64,
    row_bytes: u64,
    seed: u64,
    /// Size of the corpus file in bytes, newlines included.
    file_bytes: u64,
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Generate(args) => generate(&args),
        Command::Write(args) => write(&args),
    }
}

/// SplitMix64 (Steele, Lea and Flood, 2014): a small generator whose output depends only on
/// the seed, so the corpus stays the same across versions of this crate's dependencies.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Returns a number in `0..bound`.
    fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }

    /// Returns a number in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// Words and their cumulative Zipf weights, for drawing words by frequency rank.
struct Vocabulary {
    words: Vec<String>,
    cumulative: Vec<f64>,
}

impl Vocabulary {
    fn new() -> Self {
        let mut rng = SplitMix64(VOCABULARY_SEED);
        let mut words: Vec<String> = COMMON_WORDS.iter().map(|w| w.to_string()).collect();
        while words.len() < VOCABULARY_SIZE {
            let syllables = 1 + rng.below(3);
            let mut word = String::new();
            for _ in 0..syllables {
                word.push_str(rng.pick(ONSETS));
                word.push_str(rng.pick(VOWELS));
                word.push_str(rng.pick(CODAS));
            }
            words.push(word);
        }

        let mut total = 0.0;
        let cumulative = (1..=words.len())
            .map(|rank| {
                total += 1.0 / (rank as f64).powf(ZIPF_EXPONENT);
                total
            })
            .collect();
        Self { words, cumulative }
    }

    fn draw(&self, rng: &mut SplitMix64) -> &str {
        let total = *self.cumulative.last().expect("vocabulary is not empty");
        let target = rng.unit() * total;
        let index = self.cumulative.partition_point(|&c| c <= target);
        &self.words[index.min(self.words.len() - 1)]
    }
}

/// Appends sentences of 6 to 24 words to `row` until it is at least `target` bytes long.
fn fill_row(row: &mut String, target: usize, vocabulary: &Vocabulary, rng: &mut SplitMix64) {
    while row.len() < target {
        if !row.is_empty() {
            row.push(' ');
        }
        let words = 6 + rng.below(19);
        for i in 0..words {
            let word = vocabulary.draw(rng);
            if i == 0 {
                let mut chars = word.chars();
                if let Some(first) = chars.next() {
                    row.extend(first.to_uppercase());
                    row.push_str(chars.as_str());
                }
            } else {
                row.push(' ');
                row.push_str(word);
                if i + 1 < words && rng.below(12) == 0 {
                    row.push(',');
                }
            }
        }
        row.push('.');
    }
}

fn sidecar_path(corpus: &Path) -> PathBuf {
    let mut name = corpus.as_os_str().to_owned();
    name.push(".json");
    PathBuf::from(name)
}

/// Returns whether `corpus` exists, is complete and was made with the same settings.
fn corpus_is_current(corpus: &Path, expected: &CorpusInfo) -> bool {
    let Ok(sidecar) = fs::read_to_string(sidecar_path(corpus)) else {
        return false;
    };
    let Ok(info) = serde_json::from_str::<CorpusInfo>(&sidecar) else {
        return false;
    };
    let file_bytes = fs::metadata(corpus).map(|m| m.len()).ok();
    info.format == expected.format
        && info.rows == expected.rows
        && info.row_bytes == expected.row_bytes
        && info.seed == expected.seed
        && file_bytes == Some(info.file_bytes)
}

fn generate(args: &GenerateArgs) -> Result<()> {
    if args.rows == 0 || args.row_bytes < 16 {
        bail!("--rows must be at least 1 and --row-bytes at least 16");
    }
    let mut info = CorpusInfo {
        format: CORPUS_FORMAT,
        rows: args.rows,
        row_bytes: args.row_bytes,
        seed: args.seed,
        file_bytes: 0,
    };
    if corpus_is_current(&args.output, &info) {
        eprintln!("reusing corpus {}", args.output.display());
        return Ok(());
    }

    if let Some(parent) = args.output.parent() {
        fs::create_dir_all(parent)
            .with_context(|| format!("failed to create folder {}", parent.display()))?;
    }
    let started = Instant::now();
    let tmp_path = args.output.with_extension("tmp");
    let file = File::create(&tmp_path)
        .with_context(|| format!("failed to create {}", tmp_path.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);

    let vocabulary = Vocabulary::new();
    let mut rng = SplitMix64(args.seed);
    let spread = args.row_bytes / 4;
    let mut row = String::with_capacity(2 * args.row_bytes as usize);
    for _ in 0..args.rows {
        let target = args.row_bytes - spread + rng.below(2 * spread + 1);
        row.clear();
        fill_row(&mut row, target as usize, &vocabulary, &mut rng);
        row.push('\n');
        out.write_all(row.as_bytes())?;
        info.file_bytes += row.len() as u64;
    }
    out.into_inner()
        .map_err(|e| e.into_error())
        .and_then(|file| file.sync_all())
        .with_context(|| format!("failed to write {}", tmp_path.display()))?;
    fs::rename(&tmp_path, &args.output).with_context(|| {
        format!(
            "failed to rename {} to {}",
            tmp_path.display(),
            args.output.display()
        )
    })?;
    fs::write(
        sidecar_path(&args.output),
        serde_json::to_string_pretty(&info)? + "\n",
    )
    .with_context(|| format!("failed to write {}", sidecar_path(&args.output).display()))?;

    eprintln!(
        "wrote corpus {}: {} rows, {} bytes in {:.1} s",
        args.output.display(),
        info.rows,
        info.file_bytes,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Returns the process's peak resident set size in bytes (`VmHWM` in `/proc/self/status`),
/// or `None` where that file does not exist, as outside Linux.
fn peak_rss_bytes() -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn count_row_groups(shards: &[FinishedShard]) -> Result<usize> {
    let mut row_groups = 0;
    for shard in shards {
        let file = File::open(&shard.path)
            .with_context(|| format!("failed to open shard {}", shard.path.display()))?;
        let reader = SerializedFileReader::new(file)
            .with_context(|| format!("failed to read the footer of {}", shard.path.display()))?;
        row_groups += reader.metadata().num_row_groups();
    }
    Ok(row_groups)
}

fn write(args: &WriteArgs) -> Result<()> {
    let options = ShardOptions {
        shard_bytes: args.shard_bytes,
        row_group_rows: args.row_group_rows,
        row_group_bytes: args.row_group_bytes,
        zstd_level: args.zstd_level,
    };
    options.validate().map_err(anyhow::Error::msg)?;
    fs::create_dir_all(&args.work_dir)
        .with_context(|| format!("failed to create folder {}", args.work_dir.display()))?;
    let out_dir = tempfile::tempdir_in(&args.work_dir).with_context(|| {
        format!(
            "failed to create a temporary folder in {}",
            args.work_dir.display()
        )
    })?;
    let source_name = args.input.file_name().map_or_else(
        || "input".to_string(),
        |name| name.to_string_lossy().to_string(),
    );

    // The clock covers reading the corpus, building records and writing every shard,
    // including the fsync and rename that complete each one.
    let started = Instant::now();
    let input = File::open(&args.input)
        .with_context(|| format!("failed to open corpus {}", args.input.display()))?;
    let mut reader = BufReader::with_capacity(1 << 20, input);
    let schema = RecordSchema::new(vec![])?;
    let mut writer = ShardWriter::new(out_dir.path(), "train", schema, options, 0)?;

    // One record is reused for every row so that the benchmark measures the writer and not
    // the allocator. The strings match those that `bench/shard_writer_pyarrow.py` writes.
    let mut record = Record {
        key: RecordKey::new("", "bench", "plain", 0),
        split: "train".to_string(),
        source: String::new(),
        title: Some("Benchmark document".to_string()),
        text: String::new(),
        fields: Vec::new(),
    };
    let mut shards = Vec::new();
    let mut rows: u64 = 0;
    let mut text_bytes: u64 = 0;
    loop {
        record.text.clear();
        let read = reader.read_line(&mut record.text).with_context(|| {
            format!(
                "failed to read line {} of {}",
                rows + 1,
                args.input.display()
            )
        })?;
        if read == 0 {
            break;
        }
        if record.text.ends_with('\n') {
            record.text.pop();
        }
        rows += 1;
        text_bytes += record.text.len() as u64;

        record.key.doc_id.clear();
        write!(record.key.doc_id, "doc-{rows:08}")?;
        record.source.clear();
        write!(record.source, "{source_name}:{rows}")?;

        shards.extend(writer.push(&record)?);
    }
    shards.extend(writer.finish()?);
    let seconds = started.elapsed().as_secs_f64();
    let peak_rss = peak_rss_bytes();

    if rows == 0 {
        bail!("corpus {} has no rows", args.input.display());
    }
    let output_bytes: u64 = shards.iter().map(|shard| shard.bytes).sum();
    let row_groups = count_row_groups(&shards)?;
    let mut figures = serde_json::json!({
        "writer": "kenning",
        "rows": rows,
        "text_bytes": text_bytes,
        "text_mb": text_bytes as f64 / 1e6,
        "seconds": seconds,
        "mb_per_s": text_bytes as f64 / 1e6 / seconds,
        "output_bytes": output_bytes,
        "output_files": shards.len(),
        "row_groups": row_groups,
        "peak_rss_bytes": peak_rss,
        "peak_rss_mb": peak_rss.map(|bytes| bytes as f64 / 1e6),
    });
    if args.keep {
        figures["output_dir"] = out_dir.keep().to_string_lossy().into();
    } else {
        out_dir
            .close()
            .context("failed to remove the temporary output folder")?;
    }
    println!("{figures}");
    Ok(())
}
