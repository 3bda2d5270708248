//! `kenning train` and `kenning experiment`: flags to settings, the run, and its summary.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, ValueEnum};
use kenning_train::experiment::{
    self, Scale, mixing_phase, spa_squad, spurious_correlation, storage_extraction,
};
use kenning_train::{Corpus, TrainConfig, read_shards};

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Shard folder: DIR/data/*.parquet (output of chunk, mix or augment) or DIR/*.parquet
    /// (such as OUT/data/bios of `kenning bios`). Repeat to train on several folders.
    #[arg(long, required = true)]
    pub data: Vec<PathBuf>,

    /// Continue pretraining a llama-family GGUF model (`default` for SmolLM2-135M-Instruct)
    /// with its own tokenizer, instead of training a new model from scratch.
    #[arg(long)]
    pub init_gguf: Option<String>,

    /// Also write the trained weights as RUN/model.gguf (f32), which `--model-path` of the local
    /// provider, `kenning serve` and `kenning qa` run. Needs --init-gguf.
    #[arg(long)]
    pub export_gguf: bool,

    /// Replace `steps` from the settings.
    #[arg(long)]
    pub steps: Option<u64>,

    /// Delete the run directory first instead of resuming it.
    #[arg(long)]
    pub restart: bool,

    /// Accepted for workflow files; training logs its progress instead of drawing bars.
    #[arg(long, hide = true)]
    pub no_progress: bool,

    /// After training, measure attribute recall on the biographies in this `kenning bios`
    /// output folder (storage: completing each person's biography) and held-out QA accuracy;
    /// written to RUN/eval.json.
    #[arg(long)]
    pub eval_bios: Option<PathBuf>,

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
    /// Experiment to run: storage-vs-extraction, mixing-phase-transition,
    /// spurious-correlation or spa-squad.
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
    let mut config = match &args.config {
        Some(path) => TrainConfig::from_file(path)?,
        None => TrainConfig::default(),
    };
    if let Some(steps) = args.steps {
        config.steps = steps;
    }
    if args.restart && args.out.exists() {
        std::fs::remove_dir_all(&args.out)
            .with_context(|| format!("cannot delete {} for --restart", args.out.display()))?;
    }
    if args.export_gguf && args.init_gguf.is_none() {
        anyhow::bail!(
            "--export-gguf needs --init-gguf: the GGUF file's metadata (tokenizer, chat template) is copied from the initial model"
        );
    }
    let (base_path, initial) = match &args.init_gguf {
        Some(name) => {
            let base = base_model(name, &mut config, &args.out)?;
            (Some(base.path), Some(base.model))
        }
        None => (None, None),
    };
    config.validate()?;

    let mut corpus = Corpus::default();
    for folder in &args.data {
        let part = read_shards(folder, &config.data.text_column)?;
        corpus.documents.extend(part.documents);
        corpus.sources.extend(part.sources);
    }
    let trained = kenning_train::train(&config, &corpus, &args.out, initial)
        .with_context(|| format!("training into {} failed", args.out.display()))?;
    if let (true, Some(base_path)) = (args.export_gguf, &base_path) {
        let path = args.out.join("model.gguf");
        kenning_local::export::write_dense(base_path, &trained.model.tensors(), &path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("  gguf:  {}", path.display());
    }
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
    if let Some(bios) = &args.eval_bios {
        evaluate_bios(&trained, bios, &args.out)?;
    }
    println!("  run:   {}", report.run_dir.display());
    println!(
        "  model: {}",
        report.run_dir.join("model.safetensors").display()
    );
    Ok(())
}

/// Probes per measure of `--eval-bios`.
const EVAL_PROBES: usize = 200;

/// Measures what the trained model recalls of the biographies and prints it.
fn evaluate_bios(
    trained: &kenning_train::run::Trained,
    bios: &std::path::Path,
    run_dir: &std::path::Path,
) -> anyhow::Result<()> {
    use kenning_train::eval::{BiosData, accuracy, qa_probes, storage_probes};

    let data = BiosData::read(bios)?;
    let storage = accuracy(
        &trained.model,
        &trained.tokenizer,
        &storage_probes(&data, &["train", "test"], EVAL_PROBES / 6),
    )?;
    let qa_test = accuracy(
        &trained.model,
        &trained.tokenizer,
        &qa_probes(&data.qa, "test", EVAL_PROBES),
    )?;
    println!(
        "  eval:  biography attribute recall {:.1}% ({}/{}), held-out QA accuracy {:.1}% ({}/{})",
        storage.rate() * 100.0,
        storage.correct,
        storage.total,
        qa_test.rate() * 100.0,
        qa_test.correct,
        qa_test.total
    );
    let path = run_dir.join("eval.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&serde_json::json!({
            "bios": bios,
            "storage": storage,
            "qa_test": qa_test,
        }))? + "\n",
    )
    .with_context(|| format!("cannot write {}", path.display()))?;
    println!("  eval:  {}", path.display());
    Ok(())
}

/// A GGUF model to continue pretraining.
pub(crate) struct BaseModel {
    path: PathBuf,
    pub(crate) model: kenning_train::model::Llama,
}

/// Loads a GGUF model as trainable weights, sets the model shape and the tokenizer of `config`
/// from it, and writes its tokenizer into the run directory.
pub(crate) fn base_model(
    name: &str,
    config: &mut TrainConfig,
    run_dir: &std::path::Path,
) -> anyhow::Result<BaseModel> {
    let path = if name == "default" {
        kenning_local::fetch::ensure_default_model(&crate::local::python(), None)?
    } else {
        PathBuf::from(name)
    };
    let device = config.open_device()?;
    let (shape, mut tensors) = kenning_local::export::read_dense(&path, &device)?;
    let tied = !tensors.contains_key("output.weight");
    config.model.vocab_size = shape.vocab_size;
    config.model.hidden_size = shape.hidden_size;
    config.model.intermediate_size = shape.intermediate_size;
    config.model.num_layers = shape.layers;
    config.model.num_heads = shape.heads;
    config.model.num_kv_heads = shape.kv_heads;
    config.model.rope_theta = f64::from(shape.rope_theta);
    config.model.rms_norm_eps = shape.rms_norm_eps;
    config.model.tie_embeddings = tied;
    config.model.max_seq_len = config.data.seq_len.min(shape.context_length);
    let dtype = config.dtype()?;
    for tensor in tensors.values_mut() {
        *tensor = tensor.to_dtype(dtype)?;
    }
    let model = kenning_train::model::Llama::from_tensors(&config.model, tensors, &device)?;

    // Documents are tokenized as plain text with the model's own vocabulary; `<|endoftext|>`
    // separates them, as in the model's pretraining.
    let file = kenning_local::gguf::GgufFile::open(&path)?;
    let tokenizer = kenning_local::tokenizer::GgufTokenizer::from_gguf(&file)?;
    std::fs::create_dir_all(run_dir)?;
    let tokenizer_path = run_dir.join("base-tokenizer.json");
    tokenizer
        .plain()
        .save(&tokenizer_path, false)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", tokenizer_path.display()))?;
    config.tokenizer.path = Some(tokenizer_path);
    if tokenizer
        .plain()
        .token_to_id(&config.tokenizer.eos_token)
        .is_none()
    {
        config.tokenizer.eos_token = "<|endoftext|>".into();
    }
    Ok(BaseModel { path, model })
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
        "storage-vs-extraction" => run_storage_extraction(&text, &source, &args.out),
        "mixing-phase-transition" => run_mixing_phase(&text, &source, &args.out),
        "spurious-correlation" => run_spurious_correlation(&text, &source, &args.out),
        "spa-squad" => run_spa_squad(&text, &source, &args.out),
        other => anyhow::bail!(
            "unknown experiment `{other}`: choose one of {}",
            experiment::NAMES.join(", ")
        ),
    }
}

fn run_storage_extraction(text: &str, source: &str, out: &Path) -> anyhow::Result<()> {
    let config = storage_extraction::ExperimentConfig::from_toml(text, source)?;
    let report = storage_extraction::run(&config, out)?;
    for v in &report.variants {
        print_accuracies(&format!("{:<16}", v.name), v.storage, v.qa_train, v.qa_test);
    }
    println!("Report: {}", report.report_path.display());
    Ok(())
}

/// Prints one line of storage and QA accuracies, in percent, after `label`.
fn print_accuracies(label: &str, storage: f64, qa_train: f64, qa_test: f64) {
    println!(
        "{label} storage {:>5.1}%  QA train people {:>5.1}%  QA held-out people {:>5.1}%",
        storage * 100.0,
        qa_train * 100.0,
        qa_test * 100.0
    );
}

fn run_mixing_phase(text: &str, source: &str, out: &Path) -> anyhow::Result<()> {
    let config = mixing_phase::ExperimentConfig::from_toml(text, source)?;
    let report = mixing_phase::run(&config, out)?;
    for r in &report.ratios {
        print_accuracies(
            &format!("r = {:.2} ", r.ratio),
            r.storage,
            r.qa_train,
            r.qa_test,
        );
    }
    println!("Report: {}", report.report_path.display());
    Ok(())
}

fn run_spurious_correlation(text: &str, source: &str, out: &Path) -> anyhow::Result<()> {
    let config = spurious_correlation::ExperimentConfig::from_toml(text, source)?;
    let report = spurious_correlation::run(&config, out)?;
    for r in &report.rhos {
        let auroc = r.auroc.map_or("n/a".into(), |v| format!("{v:.3}"));
        println!(
            "rho = {:.2}  hallucination rate {:>5.1}%  QA train people {:>5.1}%  AUROC {auroc}",
            r.rho,
            r.hallucination_rate * 100.0,
            r.qa_train * 100.0
        );
    }
    println!("Report: {}", report.report_path.display());
    Ok(())
}

fn run_spa_squad(text: &str, source: &str, out: &Path) -> anyhow::Result<()> {
    let config = spa_squad::ExperimentConfig::from_toml(text, source)?;
    let report = spa_squad::run(&config, out, &mut crate::spa_squad::PipelineBackend)?;
    for r in std::iter::once(&report.untrained)
        .chain(std::iter::once(&report.raw))
        .chain(&report.spa)
    {
        println!(
            "{:<20} synthetic tokens {:>7}  exact {:>5.1}%  contains answer {:>5.1}%",
            r.name,
            r.synthetic_tokens,
            r.exact * 100.0,
            r.contains * 100.0
        );
    }
    println!("Report: {}", report.report_path.display());
    Ok(())
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
