//! The closing summary printed after a run.

use kenning_pipeline::RunSummary;

/// Prints what the run wrote and where, on standard output.
pub fn print(summary: &RunSummary) {
    if summary.already_complete {
        println!(
            "Nothing to do: {} already holds a complete run with this configuration \
             ({} in {}). Pass --restart to run it again.",
            summary.out_dir.display(),
            plural(summary.rows, "row"),
            plural(summary.shards as u64, "shard")
        );
    } else {
        println!(
            "Wrote {} in {} from {} ({} rejected).",
            plural(summary.rows, "row"),
            plural(summary.shards as u64, "shard"),
            plural(summary.documents, "document"),
            summary.rejected
        );
        let sink = &summary.sink;
        if sink.resumed_rows > 0 || sink.replayed_rows > 0 {
            println!(
                "Resumed: {} rows kept from earlier runs, {} recovered from the journal, {} new.",
                sink.resumed_rows,
                sink.replayed_rows,
                sink.written_rows - sink.replayed_rows
            );
        }
        for stage in &summary.stages {
            println!(
                "  stage {:<8} {} records in, {} rows out, {} skipped as already done, {} failed",
                stage.stage, stage.records_in, stage.records_out, stage.skipped_done, stage.failed
            );
        }
    }
    println!("  shards:   {}", summary.data_dir.display());
    println!("  manifest: {}", summary.manifest_path.display());
    println!("  card:     {}", summary.card_path.display());
    if let Some(rejects) = &summary.rejects_path {
        println!("  rejects:  {}", rejects.display());
    }
}

fn plural(count: u64, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}
