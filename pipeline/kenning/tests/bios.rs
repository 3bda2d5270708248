//! `kenning bios` end to end: tables that pyarrow and DuckDB read, QA answers equal to the
//! people table, a global shuffle, determinism by seed, resume after SIGKILL and clear errors.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use arrow_array::Array;
use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const KENNING: &str = env!("CARGO_BIN_EXE_kenning");

fn bios_command(out: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(KENNING);
    command
        .args(["--quiet", "bios", "--no-progress", "--out"])
        .arg(out)
        .args(args);
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

fn shard_paths(out: &Path, table: &str) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = fs::read_dir(out.join("data").join(table))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    paths
}

/// Reads every row of a table, in file order, as column name → text value (null as `None`).
fn read_table(out: &Path, table: &str) -> Vec<HashMap<String, Option<String>>> {
    let mut rows = Vec::new();
    for path in shard_paths(out, table) {
        let reader = ParquetRecordBatchReaderBuilder::try_new(fs::File::open(&path).unwrap())
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let batch: RecordBatch = batch.unwrap();
            let schema = batch.schema();
            for i in 0..batch.num_rows() {
                let mut row = HashMap::new();
                for (field, column) in schema.fields().iter().zip(batch.columns()) {
                    let value = if column.is_null(i) {
                        None
                    } else if let Some(strings) = column.as_string_opt::<i32>() {
                        Some(strings.value(i).to_string())
                    } else {
                        Some(
                            column
                                .as_primitive::<arrow_array::types::UInt32Type>()
                                .value(i)
                                .to_string(),
                        )
                    };
                    row.insert(field.name().clone(), value);
                }
                rows.push(row);
            }
        }
    }
    rows
}

fn manifest(out: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(out.join("manifest.json")).unwrap()).unwrap()
}

/// Returns the SHA-256 of every shard, by path, as the manifest lists them.
fn checksums(out: &Path) -> Vec<(String, String)> {
    let manifest = manifest(out);
    let mut sums = Vec::new();
    for table in manifest["tables"].as_object().unwrap().values() {
        for shard in table["shards"].as_array().unwrap() {
            sums.push((
                shard["path"].as_str().unwrap().to_string(),
                shard["sha256"].as_str().unwrap().to_string(),
            ));
        }
    }
    sums.sort();
    sums
}

fn get<'r>(row: &'r HashMap<String, Option<String>>, column: &str) -> &'r str {
    row[column]
        .as_deref()
        .unwrap_or_else(|| panic!("{column} is null"))
}

#[test]
fn tables_match_people_and_readers_agree() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bios");
    run(bios_command(
        &out,
        &[
            "--people",
            "3000",
            "--multiplicity",
            "5",
            "--permute",
            "--correlate",
            "birth_city",
            "--rho",
            "0.8",
            "--shard-bytes",
            "256KiB",
        ],
    ));

    let people = read_table(&out, "people");
    assert_eq!(people.len(), 3300, "3000 people and 300 unknown people");
    let by_id: HashMap<&str, &HashMap<String, Option<String>>> = people
        .iter()
        .map(|row| (get(row, "person_id"), row))
        .collect();

    let qa = read_table(&out, "qa");
    assert_eq!(qa.len(), 3300 * 6);
    let mut split_counts: HashMap<&str, usize> = HashMap::new();
    for row in &qa {
        let person = by_id[get(row, "person_id")];
        let attribute = get(row, "attribute");
        let split = get(row, "split");
        *split_counts.entry(split).or_default() += 1;
        assert_eq!(get(person, "group"), split, "{row:?}");
        if split == "unknown" {
            assert_eq!(get(row, "answer"), "I don't know");
        } else {
            assert_eq!(get(row, "answer"), get(person, attribute), "{row:?}");
        }
        assert!(
            get(row, "question").contains(get(person, "full_name")),
            "{row:?}"
        );
        assert_eq!(
            row["preferred"].is_some(),
            attribute == "birth_city",
            "{row:?}"
        );
    }
    assert_eq!(split_counts["train"], 1500 * 6);
    assert_eq!(split_counts["test"], 1500 * 6);
    assert_eq!(split_counts["unknown"], 300 * 6);

    let bios = read_table(&out, "bios");
    assert_eq!(bios.len(), 15_000);
    let mut per_person: HashMap<&str, usize> = HashMap::new();
    let mut adjacent_same = 0;
    for (i, row) in bios.iter().enumerate() {
        let id = get(row, "person_id");
        *per_person.entry(id).or_default() += 1;
        let person = by_id[id];
        assert_ne!(
            get(person, "group"),
            "unknown",
            "unknown people have no biography"
        );
        for column in [
            "birth_date",
            "birth_city",
            "university",
            "major",
            "employer",
            "employer_city",
        ] {
            assert!(
                get(row, "text").contains(get(person, column)),
                "{column} missing: {row:?}"
            );
        }
        if i > 0 && get(&bios[i - 1], "person_id") == id {
            adjacent_same += 1;
        }
    }
    assert_eq!(per_person.len(), 3000);
    assert!(per_person.values().all(|&n| n == 5));
    assert!(
        adjacent_same * 100 < bios.len(),
        "{adjacent_same} adjacent pairs share a person"
    );

    let python = std::env::var("KENNING_PYTHON").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../.venv/bin/python").to_string()
    });
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/python/check_shards.py"
    );
    let check = Command::new(&python)
        .arg(script)
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );

    let card = fs::read_to_string(out.join("README.md")).unwrap();
    for expected in [
        "config_name: bios",
        "config_name: qa",
        "config_name: people",
        "split: unknown",
        "ρ = 0.8",
    ] {
        assert!(card.contains(expected), "the card lacks `{expected}`");
    }
}

#[test]
fn same_seed_gives_identical_shards() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--people",
        "2000",
        "--multiplicity",
        "2",
        "--seed",
        "11",
        "--shard-bytes",
        "128KiB",
    ];
    let first = dir.path().join("first");
    let second = dir.path().join("second");
    run(bios_command(&first, &args));
    let mut one_thread = bios_command(&second, &args);
    one_thread.args(["--threads", "1"]);
    run(one_thread);
    assert_eq!(checksums(&first), checksums(&second));
    assert!(
        checksums(&first).len() > 3,
        "the run must span several shards"
    );

    let other = dir.path().join("other");
    run(bios_command(
        &other,
        &[
            "--people",
            "2000",
            "--multiplicity",
            "2",
            "--seed",
            "12",
            "--shard-bytes",
            "128KiB",
        ],
    ));
    assert_ne!(checksums(&first), checksums(&other));
}

#[test]
fn kill_then_resume_gives_identical_shards() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--people",
        "30000",
        "--multiplicity",
        "2",
        "--shard-bytes",
        "64KiB",
        "--threads",
        "2",
    ];
    let reference = dir.path().join("reference");
    let started = Instant::now();
    run(bios_command(&reference, &args));
    let uninterrupted = started.elapsed();

    let mut rng = StdRng::seed_from_u64(5);
    let mut kills = 0;
    let mut attempt = 0;
    // Some runs finish before their kill point, because a resumed run has less left to do and
    // other load changes the run time. Up to 60 attempts leave room for that.
    while kills < 10 && attempt < 60 {
        attempt += 1;
        let out = dir.path().join(format!("interrupted-{}", attempt / 3));
        let mut child = bios_command(&out, &args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(uninterrupted.mul_f64(rng.random_range(0.05..0.6)));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL on Unix.
            kills += 1;
        }
        child.wait().unwrap();
    }
    assert!(kills >= 10, "only {kills} runs were killed mid-way");

    for sequence in 0..=(attempt / 3) {
        let out = dir.path().join(format!("interrupted-{sequence}"));
        run(bios_command(&out, &args));
        assert_eq!(
            checksums(&out),
            checksums(&reference),
            "sequence {sequence}"
        );
        for table in ["bios", "qa", "people"] {
            let listed = manifest(&out)["tables"][table]["shards"]
                .as_array()
                .unwrap()
                .len();
            assert_eq!(
                shard_paths(&out, table).len(),
                listed,
                "{table}: stray files"
            );
        }
    }
}

#[test]
fn invalid_settings_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 6] = [
        (
            &["--people", "10", "--rho", "1.5", "--correlate", "major"],
            "rho is 1.5",
        ),
        (
            &["--people", "10", "--multiplicity", "0"],
            "multiplicity must be at least 1",
        ),
        (
            &["--people", "10", "--cities", "/nonexistent/cities.txt"],
            "/nonexistent/cities.txt",
        ),
        (
            &[
                "--people",
                "10",
                "--correlate",
                "employer_city",
                "--rho",
                "0.5",
            ],
            "correlate employer instead",
        ),
        (
            &["--people", "10", "--correlate", "shoe_size"],
            "unknown attribute `shoe_size`",
        ),
        (
            &["--people", "10", "--birth-years", "2000-1990"],
            "birth_years [2000, 1990] is empty",
        ),
    ];
    for (args, expected) in cases {
        let out = dir.path().join("out");
        let output = bios_command(&out, args).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} must fail");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!out.exists(), "{args:?}: nothing may be written");
    }
}
