//! `kenning mix`: two shard sets interleaved at a target token ratio, globally shuffled.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use arrow_array::cast::AsArray;
use arrow_array::types::UInt32Type;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

const KENNING: &str = env!("CARGO_BIN_EXE_kenning");

fn run(args: &[&str], out: &Path) -> Output {
    let output = Command::new(KENNING)
        .arg("--quiet")
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .expect("kenning starts");
    assert!(
        output.status.success(),
        "kenning {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Returns (key, source, tokens) of every output row, in file order.
fn read_rows(out: &Path) -> Vec<(String, String, u32)> {
    let mut shards: Vec<PathBuf> = fs::read_dir(out.join("data"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    shards.sort();
    let mut rows = Vec::new();
    for shard in shards {
        let reader = ParquetRecordBatchReaderBuilder::try_new(fs::File::open(shard).unwrap())
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let keys = batch.column_by_name("key").unwrap().as_string::<i32>();
            let sources = batch.column_by_name("source").unwrap().as_string::<i32>();
            let tokens = batch
                .column_by_name("tokens")
                .unwrap()
                .as_primitive::<UInt32Type>();
            for i in 0..batch.num_rows() {
                rows.push((
                    keys.value(i).to_string(),
                    sources.value(i).to_string(),
                    tokens.value(i),
                ));
            }
        }
    }
    rows
}

/// Writes a web-like corpus of `documents` JSONL documents with varied lengths.
fn write_corpus(path: &Path, documents: usize) {
    let words = [
        "river", "market", "the", "of", "council", "harvest", "engine", "city", "and", "a",
    ];
    let mut text = String::new();
    for d in 0..documents {
        let length = 20 + (d * 37) % 200;
        let body: Vec<&str> = (0..length)
            .map(|i| words[(d + i * 7) % words.len()])
            .collect();
        text.push_str(
            &serde_json::json!({"id": format!("web-{d}"), "text": body.join(" ")}).to_string(),
        );
        text.push('\n');
    }
    fs::write(path, text).unwrap();
}

#[test]
fn mix_reaches_ratio_and_shuffles() {
    let dir = tempfile::tempdir().unwrap();
    let bios = dir.path().join("bios");
    run(&["bios", "--no-progress", "--people", "3000"], &bios);
    let corpus = dir.path().join("web.jsonl");
    write_corpus(&corpus, 4000);
    let web = dir.path().join("web");
    run(
        &[
            "chunk",
            "--no-progress",
            "--max-tokens",
            "100",
            "--overlap",
            "0",
            "--input",
            corpus.to_str().unwrap(),
        ],
        &web,
    );

    let mixed = dir.path().join("mixed");
    let a = bios.join("data/bios");
    let b = web.join("data");
    let args = [
        "mix",
        "--a",
        a.to_str().unwrap(),
        "--b",
        b.to_str().unwrap(),
        "--ratio",
        "0.3",
        "--seed",
        "3",
        "--bucket-bytes",
        "64KiB",
    ];
    let output = run(&args, &mixed);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("target 0.3"), "{stdout}");

    let rows = read_rows(&mixed);
    let tokens_a: u64 = rows
        .iter()
        .filter(|r| r.1 == "a")
        .map(|r| u64::from(r.2))
        .sum();
    let tokens_b: u64 = rows
        .iter()
        .filter(|r| r.1 == "b")
        .map(|r| u64::from(r.2))
        .sum();
    let achieved = tokens_a as f64 / (tokens_a + tokens_b) as f64;
    // Rows are kept independently, so the share varies by sampling noise: with about a
    // thousand biographies kept, its standard deviation is near 0.005.
    assert!((achieved - 0.3).abs() < 0.03, "achieved share {achieved}");

    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(mixed.join("manifest.json")).unwrap()).unwrap();
    let recorded = manifest["achieved_ratio"].as_f64().unwrap();
    assert!(
        (recorded - achieved).abs() < 1e-9,
        "manifest {recorded}, rows {achieved}"
    );
    let whole_a = manifest["a"]["selected_rows"] == manifest["a"]["rows"];
    let whole_b = manifest["b"]["selected_rows"] == manifest["b"]["rows"];
    assert!(
        whole_a || whole_b,
        "the scarce side is kept whole: {manifest}"
    );

    let keys: HashSet<&String> = rows.iter().map(|r| &r.0).collect();
    assert_eq!(keys.len(), rows.len(), "keys are unique");

    // A global shuffle switches sides often; concatenated sides would switch once.
    let switches = rows.windows(2).filter(|w| w[0].1 != w[1].1).count();
    let share_a = rows.iter().filter(|r| r.1 == "a").count() as f64 / rows.len() as f64;
    let expected = 2.0 * share_a * (1.0 - share_a) * (rows.len() - 1) as f64;
    assert!(
        switches as f64 > 0.8 * expected,
        "{switches} switches, about {expected:.0} expected"
    );

    let again = dir.path().join("again");
    run(&args, &again);
    assert_eq!(read_rows(&again), rows, "the same seed gives the same mix");
}

#[test]
fn invalid_ratio_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let output = Command::new(KENNING)
        .args([
            "mix",
            "--a",
            "/nonexistent/a",
            "--b",
            "/nonexistent/b",
            "--ratio",
            "1.5",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("ratio is 1.5"), "{stderr}");
    assert!(!out.exists());

    let output = Command::new(KENNING)
        .args([
            "mix",
            "--a",
            "/nonexistent/a",
            "--b",
            "/nonexistent/b",
            "--ratio",
            "0.5",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("/nonexistent/a: not found"), "{stderr}");
    assert!(!out.exists());
}
