//! `kenning train` and `kenning experiment`: flags to settings, the run, and its summary.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use kenning_train::experiment::{self, Scale, storage_extraction};
use kenning_train::{TrainConfig, read_shards};

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Shard folder: DIR/data/*.parquet (output of chunk, mix or augment) or DIR/*.parquet
    /// (such as OUT/data/bios of `kenning bios`).
    #[arg(long)]
    pub data: PathBuf,

    /// Training settings as TOML (model, tokenizer, data, optim, schedule); defaults when unset.
    #[arg(long)]
    pub config: Option<PathBuf>,

    /// Run directory: config, data hashes, tokenizer, metrics, plots, checkpoints, model.
    /// A run directory with checkpoints of the same config is resumed.
    #[arg(long)]
    pub out: PathBuf,

    /// CPU threads of the tensor kernels (RAYON_NUM_THREADS wins when set); all cores by default.
    #[arg(long)]
    pub threads: Option<usize>,
}

#[derive(Debug, Args)]
pub struct ExperimentArgs {
    /// Experiment to run: storage-vs-extraction.
    pub name: String,

    /// Output folder for the runs, the report (report.md) and the plots.
    #[arg(long)]
    pub out: PathBuf,

    /// Size preset: `cpu` runs in minutes, `gpu` needs a build with the `cuda` feature.
    #[arg(long, value_enum, default_value = "cpu")]
    pub scale: ScaleArg,

    /// Experiment settings as TOML instead of the built-in preset (see experiments/).
    #[arg(long)]
    pub config: Option<PathBuf>,

    /// CPU threads of the tensor kernels (RAYON_NUM_THREADS wins when set); all cores by default.
    #[arg(long)]
    pub threads: Option<usize>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ScaleArg {
    Cpu,
    Gpu,
}

/// Runs `kenning train` and prints where the run went.
pub fn run_train(args: TrainArgs) -> anyhow::Result<()> {
    pin_threads(args.threads);
    let config = match &args.config {
        Some(path) => TrainConfig::from_file(path)?,
        None => TrainConfig::default(),
    };
    config.validate()?;
    let corpus = read_shards(&args.data, &config.data.text_column)?;
    let trained = kenning_train::train(&config, &corpus, &args.out, None)
        .with_context(|| format!("training into {} failed", args.out.display()))?;
    let report = &trained.report;
    println!(
        "Trained {} parameters for {} steps ({:.2} epochs, {} tokens) at {:.0} tokens/s.",
        report.parameters,
        report.steps,
        report.epochs,
        report.tokens_seen,
        report.tokens_per_second
    );
    match report.final_val_loss {
        Some(val) => println!(
            "  final loss {:.4}, validation loss {val:.4}",
            report.final_loss
        ),
        None => println!("  final loss {:.4}", report.final_loss),
    }
    println!("  run:   {}", report.run_dir.display());
    println!(
        "  model: {}",
        report.run_dir.join("model.safetensors").display()
    );
    Ok(())
}

/// Runs `kenning experiment` and prints the results table's location.
pub fn run_experiment(args: ExperimentArgs) -> anyhow::Result<()> {
    pin_threads(args.threads);
    let scale = match args.scale {
        ScaleArg::Cpu => Scale::Cpu,
        ScaleArg::Gpu => Scale::Gpu,
    };
    let (text, source) = match &args.config {
        Some(path) => (
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read experiment config {}", path.display()))?,
            path.display().to_string(),
        ),
        None => (
            experiment::builtin_config(&args.name, scale)?.to_string(),
            format!("built-in {} preset", args.name),
        ),
    };
    match args.name.as_str() {
        "storage-vs-extraction" => {
            let config = storage_extraction::ExperimentConfig::from_toml(&text, &source)?;
            let report = storage_extraction::run(&config, &args.out)?;
            for v in &report.variants {
                println!(
                    "{:<16} storage {:>5.1}%  QA train people {:>5.1}%  QA held-out people {:>5.1}%",
                    v.name,
                    v.storage * 100.0,
                    v.qa_train * 100.0,
                    v.qa_test * 100.0
                );
            }
            println!("Report: {}", report.report_path.display());
            Ok(())
        }
        other => anyhow::bail!(
            "unknown experiment `{other}`: choose one of {}",
            experiment::NAMES.join(", ")
        ),
    }
}

fn pin_threads(threads: Option<usize>) {
    // `main` has already set the variable; only an explicit --threads changes it.
    if threads.is_none() && std::env::var_os("RAYON_NUM_THREADS").is_some() {
        return;
    }
    let threads =
        threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    // SAFETY: the train and experiment commands call this first, before they start any thread.
    unsafe { kenning_train::pin_thread_count(threads) };
}
