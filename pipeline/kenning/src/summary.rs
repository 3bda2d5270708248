//! The closing summary printed after a run.

use kenning_pipeline::RunSummary;

/// Prints what the run wrote and where, on standard output.
pub fn print(summary: &RunSummary) {
    if summary.already_complete {
        println!(
            "Nothing to do: {} already holds a complete run with this configuration \
             ({} rows in {} shards). Pass --restart to run it again.",
            summary.out_dir.display(),
            summary.rows,
            summary.shards
        );
    } else {
        println!(
            "Wrote {} rows in {} shards from {} documents ({} rejected).",
            summary.rows, summary.shards, summary.documents, summary.rejected
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
                "  stage {:<8} {} in, {} out, {} skipped as already done",
                stage.stage, stage.records_in, stage.records_out, stage.skipped_done
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
