//! Resume after a crash: `kenning chunk` killed with SIGKILL at random points and run again
//! must end with the same rows as an uninterrupted run, one per key.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::{UInt32Type, UInt64Type};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const KENNING: &str = env!("CARGO_BIN_EXE_kenning");

/// Writes `documents` JSONL documents of `words` pseudo-random words each; every third
/// document has a null title.
fn write_corpus(path: &Path, documents: usize, words: usize, seed: u64) {
    const VOCABULARY: [&str; 24] = [
        "river", "Mongol", "army", "city", "treaty", "ancient", "engine", "protein", "court",
        "harbor", "1207", "election", "the", "of", "and", "a", "was", "in", "école", "naïve",
        "東京", "—", ",", ".",
    ];
    let mut rng = StdRng::seed_from_u64(seed);
    let mut lines = String::new();
    for d in 0..documents {
        let text: Vec<&str> = (0..words)
            .map(|_| VOCABULARY[rng.random_range(0..VOCABULARY.len())])
            .collect();
        let title = if d % 3 == 0 {
            serde_json::Value::Null
        } else {
            format!("Doc {d}").into()
        };
        let line =
            serde_json::json!({"id": format!("doc-{d}"), "title": title, "text": text.join(" ")});
        lines.push_str(&line.to_string());
        lines.push('\n');
    }
    fs::write(path, lines).unwrap();
}

/// Builds a `kenning chunk` command with small shards, so that one run writes many of them.
fn chunk_command(input: &Path, out: &Path) -> Command {
    chunk_command_with(input, out, 48)
}

fn chunk_command_with(input: &Path, out: &Path, max_tokens: u32) -> Command {
    let mut command = Command::new(KENNING);
    command
        .args(["--quiet", "chunk", "--no-progress", "--overlap", "8"])
        .arg("--max-tokens")
        .arg(max_tokens.to_string())
        .args(["--shard-bytes", "96KiB", "--row-group-rows", "300"])
        .arg("--input")
        .arg(input)
        .arg("--out")
        .arg(out);
    command
}

fn run(mut command: Command) -> Output {
    let output = command.output().expect("kenning starts");
    assert!(
        output.status.success(),
        "kenning failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Reads every row of `out/data/*.parquet` as its column values in text form, by key, and
/// fails on a key stored twice.
fn read_rows(out: &Path) -> BTreeMap<String, Vec<String>> {
    let mut rows = BTreeMap::new();
    let mut shards: Vec<PathBuf> = fs::read_dir(out.join("data"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    shards.sort();
    for shard in shards {
        let reader = ParquetRecordBatchReaderBuilder::try_new(fs::File::open(&shard).unwrap())
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            for i in 0..batch.num_rows() {
                let values: Vec<String> = batch
                    .columns()
                    .iter()
                    .map(|c| cell_text(c.as_ref(), i))
                    .collect();
                let key = values[0].clone();
                let duplicate = rows.insert(key.clone(), values);
                assert!(
                    duplicate.is_none(),
                    "key {key} is stored twice ({})",
                    shard.display()
                );
            }
        }
    }
    rows
}

fn cell_text(column: &dyn Array, i: usize) -> String {
    if column.is_null(i) {
        return "<null>".into();
    }
    match column.data_type() {
        DataType::Utf8 => column.as_string::<i32>().value(i).to_string(),
        DataType::UInt32 => column.as_primitive::<UInt32Type>().value(i).to_string(),
        DataType::UInt64 => column.as_primitive::<UInt64Type>().value(i).to_string(),
        other => panic!("unexpected column type {other}"),
    }
}

fn manifest(out: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(out.join("manifest.json")).unwrap()).unwrap()
}

#[test]
fn kill_at_random_points_then_resume() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("corpus.jsonl");
    write_corpus(&input, 1500, 400, 7);

    let reference_out = dir.path().join("reference");
    let started = Instant::now();
    run(chunk_command(&input, &reference_out));
    let uninterrupted = started.elapsed();
    let reference = read_rows(&reference_out);
    assert!(reference.len() > 10_000, "only {} rows", reference.len());
    let reference_shards = manifest(&reference_out)["shards"].as_array().unwrap().len();
    assert!(reference_shards >= 10, "only {reference_shards} shards");

    // A fixed seed keeps failures reproducible; KENNING_KILL_SEED explores other points.
    let seed = std::env::var("KENNING_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2026);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut kills = 0;
    let mut sequence = 0;
    // Each sequence kills up to three runs into one folder, then lets a run finish and compares.
    // Sequences continue until enough runs were killed mid-way, because a loaded machine
    // makes some runs finish before their kill point.
    while kills < 12 && sequence < 12 {
        let out = dir.path().join(format!("interrupted-{sequence}"));
        for _ in 0..3 {
            // A resumed run has less left to do, so later kills come earlier.
            let delay = uninterrupted.mul_f64(rng.random_range(0.02..0.7));
            let mut child = chunk_command(&input, &out)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(delay);
            let finished = child.try_wait().unwrap().is_some();
            if !finished {
                child.kill().unwrap(); // SIGKILL on Unix.
                kills += 1;
            }
            child.wait().unwrap();
            if finished {
                break;
            }
        }

        let output = run(chunk_command(&input, &out));
        let resumed = read_rows(&out);
        assert_eq!(
            resumed.len(),
            reference.len(),
            "seed {seed}, sequence {sequence}: row count differs\n{}",
            String::from_utf8_lossy(&output.stdout)
        );
        for (key, row) in &reference {
            assert_eq!(
                resumed.get(key),
                Some(row),
                "seed {seed}, sequence {sequence}: row {key}"
            );
        }
        let rows: u64 = manifest(&out)["shards"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["rows"].as_u64().unwrap())
            .sum();
        assert_eq!(rows as usize, reference.len(), "manifest row count");
        assert!(
            !out.join(".kenning/wal").exists(),
            "the journal is removed after a complete run"
        );
        sequence += 1;
    }
    eprintln!("{kills} runs killed before they finished (seed {seed})");
    assert!(
        kills >= 10,
        "only {kills} runs were killed before they finished (seed {seed})"
    );
}

#[test]
fn changed_config_is_refused_until_restart() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("corpus.jsonl");
    write_corpus(&input, 20, 100, 1);
    let out = dir.path().join("out");
    run(chunk_command(&input, &out));

    let output = chunk_command_with(&input, &out, 32).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("different configuration"), "{stderr}");
    assert!(stderr.contains("stages[0].max_tokens: 48 → 32"), "{stderr}");
    assert!(stderr.contains("--restart"), "{stderr}");

    let mut restarted = chunk_command_with(&input, &out, 32);
    restarted.arg("--restart");
    run(restarted);
    assert_eq!(manifest(&out)["config"]["stages"][0]["max_tokens"], 32);
}

#[test]
fn complete_run_is_not_repeated() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("corpus.jsonl");
    write_corpus(&input, 20, 100, 3);
    let out = dir.path().join("out");
    run(chunk_command(&input, &out));
    let before = read_rows(&out);
    let manifest_before = fs::read(out.join("manifest.json")).unwrap();

    let output = run(chunk_command(&input, &out));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("Nothing to do"), "{stdout}");
    assert_eq!(read_rows(&out), before);
    assert_eq!(
        fs::read(out.join("manifest.json")).unwrap(),
        manifest_before
    );
}

#[test]
fn foreign_output_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("corpus.jsonl");
    write_corpus(&input, 5, 20, 4);
    let out = dir.path().join("out");
    fs::create_dir(&out).unwrap();
    fs::write(out.join("thesis.tex"), "mine").unwrap();

    let output = chunk_command(&input, &out).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("not written by kenning"), "{stderr}");
    assert_eq!(
        fs::read_dir(&out).unwrap().count(),
        1,
        "nothing is added to the folder"
    );
}

#[test]
fn pyarrow_and_duckdb_read_every_shard() {
    let python = std::env::var("KENNING_PYTHON").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../.venv/bin/python").to_string()
    });
    assert!(
        Path::new(&python).exists(),
        "{python} not found: run `just setup`, or set KENNING_PYTHON to a Python with pyarrow and duckdb"
    );
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/python/check_shards.py"
    );
    let squad = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/datasets/squad_val_200.json"
    );

    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus.jsonl");
    write_corpus(&corpus, 300, 300, 11);
    let untitled = dir.path().join("untitled.jsonl");
    fs::write(
        &untitled,
        "{\"id\": \"a\", \"text\": \"no title here\"}\n{\"id\": \"b\", \"text\": \"nor here\"}\n",
    )
    .unwrap();

    let mut cases = vec![("corpus", corpus), ("untitled", untitled)];
    if Path::new(squad).exists() {
        cases.push(("squad", PathBuf::from(squad)));
    }
    for (name, input) in cases {
        let out = dir.path().join(name);
        run(chunk_command(&input, &out));
        let check = Command::new(&python)
            .arg(script)
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "{name}: {}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
        assert_eq!(
            report["rows"].as_u64().unwrap() as usize,
            read_rows(&out).len(),
            "{name}"
        );
    }
}
