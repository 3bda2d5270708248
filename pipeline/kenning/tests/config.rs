//! Pipeline files: the shipped examples run, and invalid settings are rejected before any
//! file is written.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

const KENNING: &str = env!("CARGO_BIN_EXE_kenning");
const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

fn kenning(args: &[&str], dir: &Path) -> Output {
    Command::new(KENNING)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("kenning starts")
}

#[test]
fn shipped_chunk_config_runs() {
    let out = tempfile::tempdir().unwrap();
    let out_dir = out.path().join("passages");
    let output = kenning(
        &[
            "run",
            "configs/chunk.toml",
            "--no-progress",
            "--out",
            out_dir.to_str().unwrap(),
        ],
        Path::new(REPO),
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(out_dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["input"]["documents"], 5);
    assert!(manifest["shards"][0]["rows"].as_u64().unwrap() > 5);
    let card = fs::read_to_string(out_dir.join("README.md")).unwrap();
    assert!(card.starts_with("---\nlicense: cc0-1.0\n"), "{card}");
}

#[test]
fn invalid_pipeline_files_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("docs.jsonl");
    fs::write(&input, "{\"id\": \"a\", \"text\": \"one two three\"}\n").unwrap();
    let base = format!(
        "[input]\npath = {:?}\n\n[output]\ndir = \"out\"\n\n[[stages]]\nkind = \"chunk\"\n",
        input.display().to_string()
    );

    let cases = [
        (
            "unknown key",
            format!("{base}colour = \"red\"\n"),
            "unknown field `colour`",
        ),
        (
            "unknown stage",
            base.replace("\"chunk\"", "\"chunky\""),
            "unknown variant `chunky`",
        ),
        (
            "overlap",
            format!("{base}max_tokens = 8\noverlap = 8\n"),
            "must be smaller than chunk.max_tokens",
        ),
        (
            "zstd level",
            base.replace("dir = \"out\"", "dir = \"out\"\nzstd_level = 99"),
            "zstd_level 99 is invalid",
        ),
        (
            "split",
            base.replace("dir = \"out\"", "dir = \"out\"\nsplit = \"a/b\""),
            "output.split `a/b` is invalid",
        ),
        (
            "byte size",
            base.replace(
                "dir = \"out\"",
                "dir = \"out\"\nshard_bytes = \"12 parsecs\"",
            ),
            "unknown unit `parsecs`",
        ),
        (
            "missing input",
            base.replace("docs.jsonl", "missing.jsonl"),
            "input not found",
        ),
    ];
    for (name, text, expected) in cases {
        let file = dir.path().join("pipeline.toml");
        fs::write(&file, text).unwrap();
        let output = kenning(&["run", "pipeline.toml", "--no-progress"], dir.path());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{name}: the run must fail");
        assert!(stderr.contains(expected), "{name}: {stderr}");
        assert!(
            !dir.path().join("out").exists(),
            "{name}: nothing may be written"
        );
    }
}

#[test]
fn help_lists_subcommands() {
    let output = kenning(&["--help"], Path::new(REPO));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    assert!(stdout.contains("chunk"), "{stdout}");
    assert!(stdout.contains("run"), "{stdout}");
}
