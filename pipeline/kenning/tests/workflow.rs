//! `kenning run configs/quickstart.toml --quick`: the main job end to end at a reduced size.
//! Biographies, SPA rewrites by the local model, training and evaluation; pyarrow and DuckDB
//! read every shard the workflow wrote.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn check_shards(out: &Path) {
    let python = std::env::var("KENNING_PYTHON")
        .unwrap_or_else(|_| repository().join(".venv/bin/python").display().to_string());
    let check = Command::new(&python)
        .arg(repository().join("tests/python/check_shards.py"))
        .arg(out)
        .output()
        .unwrap_or_else(|e| panic!("{python}: {e}; run `just setup`"));
    assert!(
        check.status.success(),
        "{}: {}{}",
        out.display(),
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn quickstart_quick_writes_readable_shards() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("quickstart");
    let run = common::kenning()
        .current_dir(repository())
        .args([
            "run",
            "configs/quickstart.toml",
            "--quick",
            "--no-progress",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stdout}\n{stderr}");

    for step in ["bios", "spa-articles", "spa-bios"] {
        check_shards(&out.join(step));
    }
    let manifest = common::read_manifest(&out.join("spa-articles"));
    assert_eq!(manifest["stages"][0]["failed"], 0, "{manifest}");
    let rows = common::read_rows(&out.join("spa-articles"));
    assert_eq!(rows.len(), 2);
    assert!(
        rows.iter()
            .all(|r| !r["text"].as_str().unwrap().trim().is_empty())
    );

    let eval: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("train/eval.json")).unwrap())
            .unwrap();
    assert!(eval["storage"]["total"].as_u64().unwrap() > 0, "{eval}");
    assert!(eval["qa_test"]["total"].as_u64().unwrap() > 0, "{eval}");
    assert!(out.join("train/model.safetensors").is_file());
    assert!(stdout.contains("Workflow finished"), "{stdout}");
    assert!(stdout.contains("biography attribute recall"), "{stdout}");

    // A second run resumes: every step finds its work done.
    let again = common::kenning()
        .current_dir(repository())
        .args([
            "run",
            "configs/quickstart.toml",
            "--quick",
            "--no-progress",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let rows_again = common::read_rows(&out.join("spa-articles"));
    assert_eq!(rows_again, rows);
}

#[test]
fn unknown_step_reference_fails_before_any_step() {
    let dir = tempfile::tempdir().unwrap();
    let file = common::write_file(
        dir.path(),
        "broken.toml",
        "[workflow]\nout = \"x\"\n\n[[steps]]\nname = \"a\"\ncommand = \"bios\"\nargs = { people = 10, names = \"{later}/names.txt\" }\n",
    );
    let out = dir.path().join("out");
    let run = common::run([
        "run",
        file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    run.assert_failure()
        .assert_stderr_contains("{later} names no earlier step");
    assert!(!out.exists());
}
