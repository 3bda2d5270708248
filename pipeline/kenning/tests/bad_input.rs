//! Bad input: every kind of invalid record stops the run with an error that names the file,
//! the line and the fix, before anything is written. With `--skip-invalid` the record goes to
//! `rejects.jsonl` with its reason, and the manifest and the summary count it.

mod common;

use std::path::Path;

use serde_json::{Value, json};
use tempfile::TempDir;

use common::{Run, chunk, doc_ids, read_manifest, read_rejects, read_rows, write_file};

const HINT: &str = "Fix them, or pass --skip-invalid";

/// Runs without `--skip-invalid` and checks that the run fails with `count` invalid records,
/// that stderr lists `source` (the file and line) with `reason`, and that nothing was written.
fn assert_stops(input: &Path, out: &Path, count: usize, source: &str, reason: &str) -> Run {
    let run = chunk(input, out, &[]);
    run.assert_failure();
    run.assert_stderr_contains(&format!("the input has {count} invalid record(s)"));
    run.assert_stderr_contains(&format!("  {source}: {reason}"));
    run.assert_stderr_contains(HINT);
    assert!(
        !out.exists(),
        "{} must not be created when the input check fails",
        out.display()
    );
    run
}

/// Runs with `--skip-invalid` and checks the counts in the summary and the manifest, and that
/// the shards contain exactly the documents `kept`, in order. Returns the lines of `rejects.jsonl`.
fn assert_skips(input: &Path, out: &Path, kept: &[&str], rejected: usize) -> Vec<Value> {
    let run = chunk(input, out, &["--skip-invalid"]);
    run.assert_success();
    let documents = match kept.len() {
        1 => "1 document".to_string(),
        n => format!("{n} documents"),
    };
    run.assert_stdout_contains(&format!("from {documents} ({rejected} rejected)"));
    run.assert_stdout_contains("rejects:");

    let manifest = read_manifest(out);
    assert_eq!(manifest["input"]["documents"], json!(kept.len()));
    assert_eq!(manifest["input"]["rejected"], json!(rejected));
    assert_eq!(manifest["input"]["rejects_file"], json!("rejects.jsonl"));

    let rows = read_rows(out);
    assert_eq!(
        doc_ids(&rows),
        kept,
        "the shards must contain exactly the valid documents"
    );
    let manifest_rows: u64 = manifest["shards"]
        .as_array()
        .expect("the manifest lists its shards")
        .iter()
        .map(|shard| shard["rows"].as_u64().expect("each shard has a row count"))
        .sum();
    assert_eq!(manifest_rows, rows.len() as u64);

    let rejects = read_rejects(out);
    assert_eq!(
        rejects.len(),
        rejected,
        "rejects.jsonl must list every rejected record"
    );
    for reject in &rejects {
        assert_eq!(
            reject["file"],
            json!(input),
            "reject {reject} must name the input file"
        );
    }
    rejects
}

/// Returns the reason of a reject, panicking when it is missing.
fn reason(reject: &Value) -> &str {
    reject["reason"]
        .as_str()
        .unwrap_or_else(|| panic!("reject {reject} has no reason"))
}

/// Joins `lines` into JSONL text with a final newline.
fn jsonl(lines: &[&str]) -> String {
    lines.iter().map(|line| format!("{line}\n")).collect()
}

#[test]
fn invalid_json_line() {
    let dir = TempDir::new().unwrap();
    let bad = r#"{"id": "b", "text": "unterminated"#;
    let input = write_file(
        dir.path(),
        "docs.jsonl",
        jsonl(&[
            r#"{"id": "a", "text": "Alpha."}"#,
            bad,
            r#"{"id": "c", "text": "Gamma."}"#,
        ]),
    );
    let source = format!("{}:2", input.display());

    let run = assert_stops(
        &input,
        &dir.path().join("out"),
        1,
        &source,
        "invalid JSON at column 33",
    );
    run.assert_stderr_contains("Fix the syntax of this record");

    let rejects = assert_skips(&input, &dir.path().join("skip"), &["a", "c"], 1);
    assert_eq!(rejects[0]["source"], json!(source));
    assert_eq!(rejects[0]["location"], json!({"line": 2}));
    assert!(reason(&rejects[0]).starts_with("invalid JSON at column 33"));
    assert_eq!(rejects[0]["raw"], json!(bad));
}

#[test]
fn missing_text_field() {
    let dir = TempDir::new().unwrap();
    let bad = r#"{"id": "b", "body": "Bravo."}"#;
    let input = write_file(
        dir.path(),
        "docs.jsonl",
        jsonl(&[
            r#"{"id": "a", "text": "Alpha."}"#,
            r#"{"id": "c", "text": "Gamma."}"#,
            bad,
        ]),
    );
    let source = format!("{}:3", input.display());

    let run = assert_stops(
        &input,
        &dir.path().join("out"),
        1,
        &source,
        "missing field `text`",
    );
    run.assert_stderr_contains("body");
    run.assert_stderr_contains("set --text-field");

    let rejects = assert_skips(&input, &dir.path().join("skip"), &["a", "c"], 1);
    assert_eq!(rejects[0]["location"], json!({"line": 3}));
    assert!(reason(&rejects[0]).starts_with("missing field `text`"));
    assert_eq!(rejects[0]["raw"], json!(bad));
}

#[test]
fn wrongly_typed_fields() {
    let dir = TempDir::new().unwrap();
    let lines = [
        r#"{"id": "a", "text": "Alpha."}"#,
        r#"{"id": "b", "text": 42}"#,
        r#"{"id": true, "text": "Charlie."}"#,
        r#"{"id": 1.5, "text": "Delta."}"#,
        r#"{"id": "e", "title": ["x"], "text": "Echo."}"#,
        r#"{"id": 6, "title": null, "text": "Foxtrot."}"#,
    ];
    let input = write_file(dir.path(), "docs.jsonl", jsonl(&lines));
    let path = input.display().to_string();
    let expected = [
        (
            2,
            "field `text` is a number, expected a string. Store the text as a JSON string",
        ),
        (
            3,
            "field `id` is a boolean, expected a string or an integer. Fix the id",
        ),
        (
            4,
            "field `id` is a number, expected a string or an integer. Fix the id",
        ),
        (
            5,
            "field `title` is an array, expected a string or null. Store the title as a JSON string",
        ),
    ];

    let run = assert_stops(
        &input,
        &dir.path().join("out"),
        4,
        &format!("{path}:2"),
        expected[0].1,
    );
    for (line, message) in &expected[1..] {
        run.assert_stderr_contains(&format!("  {path}:{line}: {message}"));
    }

    // An integer id is kept as its decimal text, and a null title is no title.
    let rejects = assert_skips(&input, &dir.path().join("skip"), &["a", "6"], 4);
    for (reject, (line, message)) in rejects.iter().zip(expected) {
        assert_eq!(reject["location"], json!({ "line": line }));
        assert!(
            reason(reject).starts_with(message),
            "reject {reject} must start with {message:?}"
        );
        assert_eq!(reject["raw"], json!(lines[line - 1]));
    }
}

#[test]
fn empty_text() {
    let dir = TempDir::new().unwrap();
    let lines = [
        r#"{"id": "a", "text": ""}"#,
        r#"{"id": "b", "text": "Bravo."}"#,
        r#"{"id": "c", "text": " \n\t "}"#,
        r#"{"id": "  ", "text": "Delta."}"#,
    ];
    let input = write_file(dir.path(), "docs.jsonl", jsonl(&lines));
    let path = input.display().to_string();
    let empty_text = "the text is empty. Add text or remove the record";

    let run = assert_stops(
        &input,
        &dir.path().join("out"),
        3,
        &format!("{path}:1"),
        empty_text,
    );
    run.assert_stderr_contains(&format!("  {path}:3: {empty_text}"));
    run.assert_stderr_contains(&format!("  {path}:4: the id is empty. Give a non-empty id"));

    let rejects = assert_skips(&input, &dir.path().join("skip"), &["b"], 3);
    assert_eq!(rejects[0]["location"], json!({"line": 1}));
    assert_eq!(reason(&rejects[0]), empty_text);
    assert_eq!(rejects[0]["raw"], json!(lines[0]));
    assert_eq!(rejects[1]["location"], json!({"line": 3}));
    assert_eq!(rejects[1]["raw"], json!(lines[2]));
    assert_eq!(rejects[2]["location"], json!({"line": 4}));
    assert!(reason(&rejects[2]).starts_with("the id is empty"));
}

#[test]
fn invalid_utf8_line() {
    let dir = TempDir::new().unwrap();
    let mut bytes = jsonl(&[r#"{"id": "a", "text": "Alpha."}"#]).into_bytes();
    bytes.extend_from_slice(b"{\"id\": \"b\", \"text\": \"caf\xe9 au lait\"}\n");
    bytes.extend_from_slice(jsonl(&[r#"{"id": "c", "text": "Gamma."}"#]).as_bytes());
    let input = write_file(dir.path(), "docs.jsonl", bytes);
    let source = format!("{}:2", input.display());
    // The Latin-1 byte 0xE9 follows `{"id": "b", "text": "caf`, which is 24 bytes long.
    let message = "invalid UTF-8 at byte 25 of the line. Re-encode the file as UTF-8";

    assert_stops(&input, &dir.path().join("out"), 1, &source, message);

    let rejects = assert_skips(&input, &dir.path().join("skip"), &["a", "c"], 1);
    assert_eq!(rejects[0]["location"], json!({"line": 2}));
    assert_eq!(reason(&rejects[0]), message);
    // A JSON string cannot contain the invalid byte, so the rejects file keeps U+FFFD in its place.
    assert_eq!(
        rejects[0]["raw"],
        json!("{\"id\": \"b\", \"text\": \"caf\u{FFFD} au lait\"}")
    );
}

#[test]
fn invalid_utf8_text_file() {
    let dir = TempDir::new().unwrap();
    let root = dir.path().join("corpus");
    write_file(&root, "a.txt", "Alpha is fine.");
    let bad = write_file(&root, "sub/b.txt", b"ok \xc3\x28 broken");
    write_file(&root, "sub/c.md", "# Gamma\n\nAlso fine.");
    let message = "invalid UTF-8 at byte 4 of the file. Re-encode the file as UTF-8";

    assert_stops(
        &root,
        &dir.path().join("out"),
        1,
        &bad.display().to_string(),
        message,
    );

    let run = chunk(&root, &dir.path().join("skip"), &["--skip-invalid"]);
    run.assert_success();
    run.assert_stdout_contains("from 2 documents (1 rejected)");
    let out = dir.path().join("skip");
    assert_eq!(doc_ids(&read_rows(&out)), ["a.txt", "sub/c.md"]);
    assert_eq!(read_manifest(&out)["input"]["rejected"], json!(1));
    let rejects = read_rejects(&out);
    assert_eq!(rejects.len(), 1);
    assert_eq!(rejects[0]["file"], json!(bad));
    assert_eq!(rejects[0]["location"], json!("file"));
    assert_eq!(reason(&rejects[0]), message);
}

#[test]
fn lone_surrogate_escape() {
    let dir = TempDir::new().unwrap();
    let lines = [
        r#"{"id": "a", "text": "smile \ud83d\ude00"}"#,
        r#"{"id": "b", "text": "broken \ud800 here"}"#,
        r#"{"id": "c", "text": "broken at the end \ud800"}"#,
        r#"{"id": "d", "text": "trailing half \udc00 alone"}"#,
        r#"{"id": "e", "text": "leading half \ud800\u0041 before a letter"}"#,
        r#"{"id": "f", "text": "escaped backslash \\ud800 is plain text"}"#,
    ];
    let input = write_file(dir.path(), "docs.jsonl", jsonl(&lines));
    let path = input.display().to_string();
    let message = "contains a lone UTF-16 surrogate escape such as \\ud800";

    let run = assert_stops(
        &input,
        &dir.path().join("out"),
        4,
        &format!("{path}:2"),
        message,
    );
    for line in 3..=5 {
        run.assert_stderr_contains(&format!("  {path}:{line}: {message}"));
    }
    run.assert_stderr_contains("Replace it with the intended character or remove it");

    let out = dir.path().join("skip");
    let rejects = assert_skips(&input, &out, &["a", "f"], 4);
    for (reject, line) in rejects.iter().zip(2..=5) {
        assert_eq!(reject["location"], json!({ "line": line }));
        assert!(
            reason(reject).starts_with(message),
            "reject {reject} must start with {message:?}"
        );
        assert_eq!(reject["raw"], json!(lines[line - 1]));
    }

    // A valid surrogate pair decodes to one character, and `\\ud800` is no escape.
    let rows = read_rows(&out);
    assert_eq!(rows[0]["text"], json!("smile \u{1F600}"));
    assert_eq!(
        rows[1]["text"],
        json!("escaped backslash \\ud800 is plain text")
    );
}

#[test]
fn nul_escape() {
    let dir = TempDir::new().unwrap();
    let lines = [
        r#"{"id": "a", "text": "Alpha."}"#,
        r#"{"id": "b", "text": "be\u0000fore"}"#,
        r#"{"id": "c", "title": "Ti\u0000tle", "text": "Charlie."}"#,
        r#"{"id": "d", "text": "Delta."}"#,
    ];
    let input = write_file(dir.path(), "docs.jsonl", jsonl(&lines));
    let path = input.display().to_string();
    let text_message = "the text contains a NUL character (U+0000) at character 3. Remove it";
    let title_message = "the title contains a NUL character (U+0000) at character 3. Remove it";

    let run = assert_stops(
        &input,
        &dir.path().join("out"),
        2,
        &format!("{path}:2"),
        text_message,
    );
    run.assert_stderr_contains(&format!("  {path}:3: {title_message}"));

    let rejects = assert_skips(&input, &dir.path().join("skip"), &["a", "d"], 2);
    assert_eq!(rejects[0]["location"], json!({"line": 2}));
    assert!(reason(&rejects[0]).starts_with(text_message));
    assert_eq!(rejects[0]["raw"], json!(lines[1]));
    assert_eq!(rejects[1]["location"], json!({"line": 3}));
    assert!(reason(&rejects[1]).starts_with(title_message));
    assert_eq!(rejects[1]["raw"], json!(lines[2]));
}

#[test]
fn nul_byte() {
    let dir = TempDir::new().unwrap();
    let bad = "{\"id\": \"b\", \"text\": \"be\0fore\"}";
    let input = write_file(
        dir.path(),
        "docs.jsonl",
        jsonl(&[
            r#"{"id": "a", "text": "Alpha."}"#,
            r#"{"id": "c", "text": "Gamma."}"#,
            bad,
        ]),
    );
    let source = format!("{}:3", input.display());
    // `{"id": "b", "text": "be` is 23 bytes long, so the NUL byte is byte 24.
    let message = "contains a NUL byte (0x00) at byte 24 of the line. Remove it";

    assert_stops(&input, &dir.path().join("out"), 1, &source, message);

    let rejects = assert_skips(&input, &dir.path().join("skip"), &["a", "c"], 1);
    assert_eq!(rejects[0]["location"], json!({"line": 3}));
    assert!(reason(&rejects[0]).starts_with(message));
    assert_eq!(rejects[0]["raw"], json!(bad));
}

#[test]
fn nul_byte_in_text_file() {
    let dir = TempDir::new().unwrap();
    let root = dir.path().join("corpus");
    write_file(&root, "a.txt", "Alpha.");
    let bad = write_file(&root, "b.txt", "be\0fore");

    assert_stops(
        &root,
        &dir.path().join("out"),
        1,
        &bad.display().to_string(),
        "the text contains a NUL character (U+0000) at character 3. Remove it",
    );
}

#[test]
fn bom_at_start_of_jsonl() {
    let dir = TempDir::new().unwrap();
    let first = r#"{"id": "a", "text": "Alpha."}"#;
    let contents = format!(
        "\u{FEFF}{}",
        jsonl(&[
            first,
            r#"{"id": "b", "text": "Bravo."}"#,
            r#"{"id": "c", "text": "Gamma."}"#
        ])
    );
    let input = write_file(dir.path(), "docs.jsonl", contents);
    let source = format!("{}:1", input.display());

    let run = assert_stops(
        &input,
        &dir.path().join("out"),
        1,
        &source,
        "the file starts with a UTF-8 byte order mark (BOM). Save it as UTF-8 without a BOM",
    );
    run.assert_stderr_contains("sed -i");

    let rejects = assert_skips(&input, &dir.path().join("skip"), &["b", "c"], 1);
    assert_eq!(rejects[0]["location"], json!({"line": 1}));
    assert!(reason(&rejects[0]).contains("byte order mark"));
    assert_eq!(rejects[0]["raw"], json!(format!("\u{FEFF}{first}")));
}

#[test]
fn bom_at_start_of_json_array() {
    let dir = TempDir::new().unwrap();
    let input = write_file(
        dir.path(),
        "docs.json",
        "\u{FEFF}[{\"id\": \"a\", \"text\": \"Alpha.\"}]",
    );

    for extra in [&[][..], &["--skip-invalid"][..]] {
        let out = dir.path().join("out");
        let run = chunk(&input, &out, extra);
        run.assert_failure();
        run.assert_stderr_contains(&format!(
            "{}: the file starts with a UTF-8 byte order mark (BOM). Save it as UTF-8 without a BOM",
            input.display()
        ));
        assert!(
            !out.exists(),
            "nothing may be written when the whole input is unusable"
        );
    }
}

#[test]
fn duplicate_ids() {
    let dir = TempDir::new().unwrap();
    let lines = [
        r#"{"id": "a", "text": "The first a."}"#,
        r#"{"id": "b", "text": "Bravo."}"#,
        r#"{"id": "a", "text": "The second a."}"#,
    ];
    let input = write_file(dir.path(), "docs.jsonl", jsonl(&lines));
    let path = input.display().to_string();

    let run = assert_stops(
        &input,
        &dir.path().join("out"),
        1,
        &format!("{path}:3"),
        &format!("id `a` is already used at {path}:1. Ids must be unique"),
    );
    run.assert_stderr_contains("remove the id field to get content-hash ids");

    let out = dir.path().join("skip");
    let rejects = assert_skips(&input, &out, &["a", "b"], 1);
    assert_eq!(rejects[0]["location"], json!({"line": 3}));
    assert_eq!(rejects[0]["raw"], json!(lines[2]));
    assert_eq!(
        read_rows(&out)[0]["text"],
        json!("The first a."),
        "the first `a` is kept"
    );
}

#[test]
fn zero_length_file() {
    let dir = TempDir::new().unwrap();
    for name in ["docs.jsonl", "docs.json", "docs.parquet"] {
        let input = write_file(dir.path(), name, "");
        for extra in [&[][..], &["--skip-invalid"][..]] {
            let out = dir.path().join("out");
            let run = chunk(&input, &out, extra);
            run.assert_failure();
            run.assert_stderr_contains(&format!(
                "input file {} is empty (zero length). Give a file that contains documents",
                input.display()
            ));
            assert!(!out.exists(), "nothing may be written for the empty {name}");
        }
    }
}

#[test]
fn zero_length_text_file() {
    let dir = TempDir::new().unwrap();
    let root = dir.path().join("corpus");
    write_file(&root, "a.txt", "Alpha.");
    let empty = write_file(&root, "b.txt", "");
    let message = "the file is empty (zero length). Remove it or add text";

    assert_stops(
        &root,
        &dir.path().join("out"),
        1,
        &empty.display().to_string(),
        message,
    );

    let out = dir.path().join("skip");
    let run = chunk(&root, &out, &["--skip-invalid"]);
    run.assert_success();
    run.assert_stdout_contains("from 1 document (1 rejected)");
    assert_eq!(doc_ids(&read_rows(&out)), ["a.txt"]);
    let rejects = read_rejects(&out);
    assert_eq!(rejects.len(), 1);
    assert_eq!(rejects[0]["file"], json!(empty));
    assert_eq!(reason(&rejects[0]), message);
}

#[test]
fn missing_input_file() {
    let dir = TempDir::new().unwrap();
    let input = dir.path().join("no-such-file.jsonl");

    for extra in [&[][..], &["--skip-invalid"][..], &["--format", "jsonl"][..]] {
        let out = dir.path().join("out");
        let run = chunk(&input, &out, extra);
        run.assert_failure();
        run.assert_stderr_contains(&format!(
            "input not found: {}. Check the --input path",
            input.display()
        ));
        assert!(!out.exists(), "nothing may be written for a missing input");
    }
}

#[test]
fn non_object_lines() {
    let dir = TempDir::new().unwrap();
    let lines = [
        r#"[{"id": "x", "text": "In an array."}]"#,
        r#"{"id": "a", "text": "Alpha."}"#,
        r#""just a string""#,
        "42",
        "null",
    ];
    let input = write_file(dir.path(), "docs.jsonl", jsonl(&lines));
    let path = input.display().to_string();
    let expected = [
        (1, "the line holds an array, expected a JSON object"),
        (3, "the line holds a string, expected a JSON object"),
        (4, "the line holds a number, expected a JSON object"),
        (5, "the line holds null, expected a JSON object"),
    ];

    let run = assert_stops(
        &input,
        &dir.path().join("out"),
        4,
        &format!("{path}:1"),
        expected[0].1,
    );
    for (line, message) in &expected[1..] {
        run.assert_stderr_contains(&format!("  {path}:{line}: {message}"));
    }

    let rejects = assert_skips(&input, &dir.path().join("skip"), &["a"], 4);
    for (reject, (line, message)) in rejects.iter().zip(expected) {
        assert_eq!(reject["location"], json!({ "line": line }));
        assert!(
            reason(reject).starts_with(message),
            "reject {reject} must start with {message:?}"
        );
        assert_eq!(reject["raw"], json!(lines[line - 1]));
    }
}

#[test]
fn many_problems_are_all_counted() {
    let dir = TempDir::new().unwrap();
    let mut lines = vec![r#"{"id": "good", "text": "Fine."}"#.to_string()];
    lines.extend((0..25).map(|i| format!(r#"{{"id": "bad{i}", "text": ""}}"#)));
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let input = write_file(dir.path(), "docs.jsonl", jsonl(&refs));
    let path = input.display().to_string();

    // The error lists the first 20 problems and counts the rest.
    let run = assert_stops(
        &input,
        &dir.path().join("out"),
        25,
        &format!("{path}:2"),
        "the text is empty",
    );
    run.assert_stderr_contains(&format!("  {path}:21: the text is empty"));
    run.assert_stderr_contains("  ... and 5 more");
    assert!(
        !run.stderr.contains(&format!("{path}:22:")),
        "only 20 problems are listed in full"
    );

    let rejects = assert_skips(&input, &dir.path().join("skip"), &["good"], 25);
    assert_eq!(rejects.last().unwrap()["location"], json!({"line": 26}));
}
