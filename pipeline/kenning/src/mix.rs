//! `kenning mix`: flags to settings, the run, and its summary.

use kenning_mix::{MixConfig, MixOutput, MixSummary};

use crate::cli::MixArgs;

/// Runs `kenning mix` with the given flags.
pub fn run(args: MixArgs) -> anyhow::Result<MixSummary> {
    let config = MixConfig {
        a: args.a,
        b: args.b,
        ratio: args.ratio,
        text_column: args.text_column,
        seed: args.seed,
        bucket_bytes: args.bucket_bytes,
    };
    let output = MixOutput {
        dir: args.out,
        license: args.license,
        shard_bytes: args.shard_bytes,
        row_group_rows: kenning_pipeline::sink::writer::DEFAULT_ROW_GROUP_ROWS,
        row_group_bytes: kenning_pipeline::sink::writer::DEFAULT_ROW_GROUP_BYTES,
        zstd_level: args.zstd_level,
    };
    Ok(kenning_mix::run(config, output, args.restart)?)
}

/// Prints the achieved ratio and where the output is, on standard output.
pub fn print(summary: &MixSummary) {
    if summary.already_complete {
        println!(
            "Nothing to do: {} already holds this mix (share of A {:.4}). Pass --restart to run it again.",
            summary.out_dir.display(),
            summary.achieved_ratio
        );
        return;
    }
    println!(
        "Mixed {} rows into {} shard(s): side A is {:.4} of the tokens (target {}).",
        summary.rows, summary.shards, summary.achieved_ratio, summary.target_ratio
    );
    for (name, side) in [("A", &summary.a), ("B", &summary.b)] {
        println!(
            "  {name}: kept {} of {} rows, {} of {} tokens ({})",
            side.selected_rows, side.rows, side.selected_tokens, side.tokens, side.path
        );
    }
    println!("  shards:   {}", summary.out_dir.join("data").display());
    println!(
        "  manifest: {}",
        summary.out_dir.join("manifest.json").display()
    );
    println!(
        "  card:     {}",
        summary.out_dir.join("README.md").display()
    );
}
