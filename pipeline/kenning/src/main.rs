//! The `kenning` command.

mod augment;
mod bios;
mod cli;
mod judge;
mod local;
mod mix;
mod pipeline;
mod qa;
mod serve;
mod spa_squad;
mod summary;
mod train;
mod workflow;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use cli::{Cli, Command};

// Training and the local model allocate and free large tensors every step. glibc's malloc
// returns them to the kernel and faults them in again, which cost about a third of the CPU time
// of a training step on 2 cores (measured), so mimalloc, which keeps them, is the allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let threads = match &cli.command {
        Command::Augment(args) => args.local.threads,
        Command::Serve(args) => args.model.threads,
        Command::Qa(args) => args.model.threads,
        Command::Train(args) => args.threads,
        Command::Experiment(args) => args.threads,
        _ => None,
    };
    local::configure_threads(threads);
    init_logging(cli.quiet, cli.verbose);

    finish(execute(cli.command))
}

/// Runs one command and prints its summary.
fn execute(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Chunk(args) => {
            let (config, options) = pipeline::config_from_chunk_args(args)?;
            summary::print(&pipeline::run(config, options)?);
        }
        Command::Run(args) => {
            if workflow::is_workflow(&args.config)? {
                return workflow::run(args);
            }
            let (config, options) = pipeline::config_from_file(args)?;
            summary::print(&pipeline::run(config, options)?);
        }
        Command::Augment(args) => {
            let (summary, corpus) = augment::run(*args)?;
            summary::print(&summary);
            augment::print(&corpus);
        }
        Command::Qa(args) => {
            let out = args.out.clone();
            qa::print(&qa::run(args)?, &out);
        }
        Command::Serve(args) => serve::run(args)?,
        Command::Model(command) => serve::model_command(command)?,
        Command::Train(args) => train::run_train(args)?,
        Command::Experiment(args) => train::run_experiment(args)?,
        Command::Mix(args) => mix::print(&mix::run(args)?),
        Command::Bios(args) => bios::print(&bios::run(args)?),
    }
    Ok(())
}

/// Exit status of a command that prints its own results.
fn finish(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Sends `tracing` events to standard error. `RUST_LOG` overrides the level that the flags set.
fn init_logging(quiet: bool, verbose: u8) {
    let level = match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let default = format!(
        "kenning={level},kenning_pipeline={level},kenning_chunk={level},kenning_biographies={level},kenning_mix={level},kenning_augment={level},kenning_local={level},kenning_train={level},warn"
    );
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .compact()
        .init();
}
