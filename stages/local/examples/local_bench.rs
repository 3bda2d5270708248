//! Prefill and decode speed of the local model, single stream and batched.
//!
//! `cargo run --release -p kenning-local --example local_bench -- [--weights q8_0] [--batch 8]
//! [--prompt-tokens 256] [--new-tokens 64] [--model PATH]`; prints one JSON object.

use std::time::Instant;

#[path = "common/cpu.rs"]
mod cpu;

use cpu::cpu_seconds;

use kenning_local::{
    GenerateRequest, LoadOptions, LocalModel, Prompt, SamplingParams, WeightFormat,
};

// The same allocator as the `kenning` binary, so that the figures are what `kenning serve` and
// `kenning augment --provider local` do.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut weights = WeightFormat::Q8_0;
    let mut batch = 8usize;
    let mut prompt_tokens = 256usize;
    let mut new_tokens = 64usize;
    let mut model = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or("every flag takes a value")?;
        match flag.as_str() {
            "--weights" => weights = WeightFormat::parse(&value)?,
            "--batch" => batch = value.parse()?,
            "--prompt-tokens" => prompt_tokens = value.parse()?,
            "--new-tokens" => new_tokens = value.parse()?,
            "--model" => model = Some(value),
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    let path = match model {
        Some(path) => path.into(),
        None => kenning_local::fetch::ensure_default_model("python3", None)?,
    };

    let started = Instant::now();
    let mut options = LoadOptions::new(path);
    options.weights = weights;
    options.max_batch = batch.max(1);
    let model = LocalModel::load(&options)?;
    let load_s = started.elapsed().as_secs_f64();

    // A prompt of about `prompt_tokens` tokens: ordinary prose, cut by tokens.
    let prose = "The committee met in the old library to discuss the river's flooding, the new bridge, and the budget for the coming year. ";
    let mut text = String::new();
    while model.tokenizer().encode_text(&text)?.len() < prompt_tokens {
        text.push_str(prose);
    }
    let request = |seed: u64, max_tokens: usize| GenerateRequest {
        prompt: Prompt::Text(text.clone()),
        max_tokens,
        sampling: SamplingParams {
            temperature: 0.8,
            seed,
            ..SamplingParams::default()
        },
        // No stop at end of sequence is possible for raw text; every request runs to the limit.
        stop: Vec::new(),
    };
    let prompt_len = model.prompt_tokens(&Prompt::Text(text.clone()))?.len();

    // Prefill: a one-token generation is almost all prompt processing.
    let started = Instant::now();
    let cpu = cpu_seconds();
    model.generate_blocking(request(1, 1))?;
    let prefill_tps = prompt_len as f64 / started.elapsed().as_secs_f64();
    let prefill_cpu = cpu_seconds() - cpu;

    // Single stream decode, from the worker's counters of decoding steps (prompt steps and
    // the queue excluded).
    let before = model.decode_stats();
    let cpu = cpu_seconds();
    model.generate_blocking(request(2, new_tokens))?;
    let single_cpu = cpu_seconds() - cpu - prefill_cpu;
    let single = model.decode_stats().since(&before);
    let single_decode_tps = single.tokens_per_second();

    // Batch: `batch` requests submitted at once. Their prompts run one at a time as they
    // arrive, then each step decodes every admitted request; the rate counts decoding steps
    // only (`batch_steps` near `new_tokens` means the requests shared nearly every step).
    let runtime = tokio_runtime()?;
    let before = model.decode_stats();
    let started = Instant::now();
    let cpu = cpu_seconds();
    let results = runtime.block_on(async {
        let mut tasks = Vec::new();
        for seed in 0..batch as u64 {
            let model = model.clone();
            let req = request(10 + seed, new_tokens);
            tasks.push(tokio::spawn(async move { model.generate(req).await }));
        }
        let mut out = Vec::new();
        for task in tasks {
            out.push(task.await.expect("task"));
        }
        out
    });
    let wall = started.elapsed().as_secs_f64();
    let batch_cpu = cpu_seconds() - cpu - batch as f64 * prefill_cpu;
    for result in results {
        result?;
    }
    let batched = model.decode_stats().since(&before);
    let batch_decode_tps = batched.tokens_per_second();
    // Tokens per CPU-second: the work a token costs, which other load on the machine changes
    // far less than wall time.
    let single_cpu_tps = single.tokens as f64 / single_cpu.max(1e-3);
    let batch_cpu_tps = batched.tokens as f64 / batch_cpu.max(1e-3);

    println!(
        "{{\"weights\": \"{}\", \"load_s\": {load_s:.2}, \"prompt_tokens\": {prompt_len}, \"prefill_tps\": {prefill_tps:.1}, \"single_decode_tps\": {single_decode_tps:.1}, \"batch\": {batch}, \"batch_decode_tps\": {batch_decode_tps:.1}, \"batch_wall_s\": {wall:.2}, \"batch_steps\": {}, \"batch_speedup\": {:.2}, \"single_decode_cpu_tps\": {single_cpu_tps:.1}, \"batch_decode_cpu_tps\": {batch_cpu_tps:.1}}}",
        weights.name(),
        batched.steps,
        batch_decode_tps / single_decode_tps
    );
    Ok(())
}

fn tokio_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
}
