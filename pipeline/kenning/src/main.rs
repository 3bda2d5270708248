//! The `kenning` command.

mod augment;
mod bios;
mod cli;
mod mix;
mod pipeline;
mod summary;
mod train;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.quiet, cli.verbose);

    let result = match cli.command {
        Command::Chunk(args) => pipeline::config_from_chunk_args(args)
            .and_then(|(config, options)| pipeline::run(config, options)),
        Command::Run(args) => pipeline::config_from_file(args)
            .and_then(|(config, options)| pipeline::run(config, options)),
        Command::Augment(args) => augment::run(args),
        Command::Train(args) => return report_exit(train::run_train(args)),
        Command::Experiment(args) => return report_exit(train::run_experiment(args)),
        Command::Mix(args) => {
            return match mix::run(args) {
                Ok(summary) => {
                    mix::print(&summary);
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("error: {error:#}");
                    ExitCode::FAILURE
                }
            };
        }
        Command::Bios(args) => {
            return match bios::run(args) {
                Ok(summary) => {
                    bios::print(&summary);
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("error: {error:#}");
                    ExitCode::FAILURE
                }
            };
        }
    };

    match result {
        Ok(summary) => {
            summary::print(&summary);
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Returns the exit code of a command that printed its own summary.
fn report_exit(result: anyhow::Result<()>) -> ExitCode {
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
        "kenning={level},kenning_pipeline={level},kenning_chunk={level},kenning_biographies={level},kenning_mix={level},kenning_augment={level},kenning_train={level},warn"
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
