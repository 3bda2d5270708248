//! `kenning bios`: flags to settings, the run, and its summary.

use kenning_biographies::pools::PoolFiles;
use kenning_biographies::{BiosConfig, BiosOutput, BiosSummary, RunOptions};

use crate::cli::BiosArgs;

/// Runs `kenning bios` with the given flags.
pub fn run(args: BiosArgs) -> anyhow::Result<BiosSummary> {
    let config = BiosConfig {
        people: args.people,
        unknown_people: args.unknown_people,
        multiplicity: args.multiplicity,
        permute: args.permute,
        fullname: args.fullname,
        train_fraction: args.train_fraction,
        birth_years: args.birth_years,
        correlate: args.correlate,
        rho: args.rho,
        seed: args.seed,
        pools: PoolFiles {
            cities: args.cities,
            universities: args.universities,
            majors: args.majors,
            employers: args.employers,
            names: args.names,
        },
        templates: args.templates,
    };
    let output = BiosOutput {
        dir: args.out,
        license: args.license,
        shard_bytes: args.shard_bytes,
        row_group_rows: args.row_group_rows,
        row_group_bytes: args.row_group_bytes,
        zstd_level: args.zstd_level,
        tables: args.tables,
    };
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let options = RunOptions {
        threads,
        restart: args.run.restart,
        progress: !args.run.no_progress,
    };
    Ok(kenning_biographies::run(config, output, options)?)
}

/// Prints what the run wrote and where, on standard output.
pub fn print(summary: &BiosSummary) {
    if summary.already_complete {
        println!(
            "Nothing to do: {} already holds a complete run with these settings. Pass --restart to run it again.",
            summary.out_dir.display()
        );
    } else {
        println!("Wrote biographies to {}.", summary.out_dir.display());
        if summary.resumed_shards > 0 {
            println!(
                "Resumed: kept {} shard(s) that an interrupted run had completed.",
                summary.resumed_shards
            );
        }
    }
    for (table, (rows, shards)) in &summary.tables {
        println!(
            "  {table:<8} {rows} rows in {shards} shard(s): {}/data/{table}",
            summary.out_dir.display()
        );
    }
    println!("  manifest: {}", summary.manifest_path.display());
    println!("  card:     {}", summary.card_path.display());
}
