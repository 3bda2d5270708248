//! Input formats: each layout that `kenning chunk` reads yields the expected documents, ids,
//! titles and passages.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use serde_json::{Map, Value, json};
use tempfile::TempDir;

use common::{
    chunk, column_strings, content_id, doc_ids, read_manifest, read_rejects, read_rows, write_file,
};

/// The flattened SQuAD v1.1 validation sample: 200 passages as `[{title, context, questions}]`.
const SQUAD_SAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/datasets/squad_val_200.json"
);

type Row = Map<String, Value>;

/// Joins `lines` into JSONL text with a final newline.
fn jsonl(lines: &[&str]) -> String {
    lines.iter().map(|line| format!("{line}\n")).collect()
}

/// Returns the rows of each document by id, each list sorted by `sample`.
fn rows_by_doc(rows: &[Row]) -> BTreeMap<String, Vec<Row>> {
    let mut groups: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    for row in rows {
        let id = row["doc_id"]
            .as_str()
            .expect("doc_id is a string")
            .to_string();
        groups.entry(id).or_default().push(row.clone());
    }
    for group in groups.values_mut() {
        group.sort_by_key(|row| row["sample"].as_u64().expect("sample is an integer"));
    }
    groups
}

/// Returns the integer column `name` of a row.
fn number(row: &Row, name: &str) -> usize {
    row[name]
        .as_u64()
        .unwrap_or_else(|| panic!("column `{name}` is {:?}, expected an integer", row[name]))
        as usize
}

/// Checks that the passages of one document slice `source` by their byte offsets, overlap their
/// neighbours, and join back into the source text without its leading and trailing whitespace.
fn assert_passages_cover(source: &str, passages: &[Row], max_tokens: usize) {
    let doc = passages[0]["doc_id"].clone();
    let mut joined = String::new();
    let mut previous_end = None;

    for (i, passage) in passages.iter().enumerate() {
        let (start, end) = (number(passage, "byte_start"), number(passage, "byte_end"));
        let text = passage["text"].as_str().expect("text is a string");
        assert_eq!(
            passage["sample"],
            json!(i),
            "passages of {doc} are numbered from 0"
        );
        assert_eq!(
            number(passage, "chunk_count"),
            passages.len(),
            "chunk_count of {doc}"
        );
        assert!(
            number(passage, "token_count") <= max_tokens,
            "passage {i} of {doc} is too long"
        );
        assert_eq!(
            source.get(start..end),
            Some(text),
            "passage {i} of {doc} must equal its byte range"
        );

        match previous_end {
            None => joined.push_str(text),
            Some(previous_end) => {
                assert!(
                    start < previous_end,
                    "passage {i} of {doc} must overlap the one before"
                );
                assert!(
                    end > previous_end,
                    "passage {i} of {doc} must reach past the one before"
                );
                joined.push_str(&text[previous_end - start..]);
            }
        }
        previous_end = Some(end);
    }
    assert_eq!(
        joined,
        source.trim(),
        "the passages of {doc} must join back into its text"
    );
}

#[test]
fn jsonl_with_custom_field_names() {
    let dir = TempDir::new().unwrap();
    let input = write_file(
        dir.path(),
        "docs.jsonl",
        jsonl(&[
            r#"{"uid": "u1", "name": "First", "body": "First body."}"#,
            r#"{"uid": 2, "body": "Second body.", "text": "Not the text field."}"#,
            r#"{"uid": "u3", "text": "Only a text field."}"#,
        ]),
    );
    let out = dir.path().join("out");
    let fields = [
        "--text-field",
        "body",
        "--id-field",
        "uid",
        "--title-field",
        "name",
    ];

    let run = chunk(&input, &out, &[&fields[..], &["--skip-invalid"]].concat());
    run.assert_success();
    run.assert_stdout_contains("from 2 documents (1 rejected)");

    let rows = read_rows(&out);
    assert_eq!(doc_ids(&rows), ["u1", "2"]);
    assert_eq!(
        column_strings(&rows, "text"),
        ["First body.", "Second body."]
    );
    assert_eq!(rows[0]["title"], json!("First"));
    assert_eq!(rows[1]["title"], Value::Null);
    assert_eq!(rows[0]["key"], json!("u1/chunk/passage/0"));
    assert_eq!(rows[1]["source"], json!(format!("{}:2", input.display())));
    assert_eq!(read_manifest(&out)["input"]["format"], json!("jsonl"));

    let rejects = read_rejects(&out);
    assert_eq!(rejects.len(), 1);
    assert_eq!(rejects[0]["location"], json!({"line": 3}));
    assert!(
        rejects[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("missing field `body`")
    );
}

#[test]
fn json_array_of_objects() {
    let dir = TempDir::new().unwrap();
    let input = write_file(
        dir.path(),
        "docs.json",
        r#"[
            {"id": "x1", "title": "Ex", "text": "The first record."},
            {"id": 2, "text": "The second record."}
        ]"#,
    );
    let out = dir.path().join("out");

    chunk(&input, &out, &[]).assert_success();

    let rows = read_rows(&out);
    assert_eq!(doc_ids(&rows), ["x1", "2"]);
    assert_eq!(
        column_strings(&rows, "text"),
        ["The first record.", "The second record."]
    );
    assert_eq!(rows[0]["title"], json!("Ex"));
    assert_eq!(
        rows[1]["source"],
        json!(format!("{}: record 2", input.display()))
    );
    let manifest = read_manifest(&out);
    assert_eq!(manifest["input"]["format"], json!("json"));
    assert_eq!(manifest["input"]["documents"], json!(2));
}

#[test]
fn flattened_squad_sample() {
    let input = Path::new(SQUAD_SAMPLE);
    assert!(
        input.is_file(),
        "the SQuAD sample is missing at {}",
        input.display()
    );
    let passages: Vec<Value> = serde_json::from_slice(&std::fs::read(input).unwrap()).unwrap();
    assert_eq!(passages.len(), 200);
    let expected: BTreeMap<String, (&str, &str)> = passages
        .iter()
        .map(|p| {
            let title = p["title"].as_str().unwrap();
            let context = p["context"].as_str().unwrap();
            (content_id(Some(title), context), (title, context))
        })
        .collect();

    let dir = TempDir::new().unwrap();
    let out = dir.path().join("out");
    let run = chunk(input, &out, &[]);
    run.assert_success();
    run.assert_stdout_contains("from 200 documents (0 rejected)");

    let manifest = read_manifest(&out);
    assert_eq!(manifest["input"]["format"], json!("json"));
    assert_eq!(manifest["input"]["documents"], json!(200));
    assert_eq!(manifest["input"]["rejected"], json!(0));

    let groups = rows_by_doc(&read_rows(&out));
    assert_eq!(
        groups.keys().collect::<BTreeSet<_>>(),
        expected.keys().collect::<BTreeSet<_>>(),
        "documents without ids get the content hash of title and context"
    );
    for (id, passages) in &groups {
        let (title, context) = expected[id];
        for passage in passages {
            assert_eq!(passage["title"], json!(title), "title of {id}");
        }
        assert_passages_cover(context, passages, 512);
    }
}

#[test]
fn nested_squad_layout() {
    let dir = TempDir::new().unwrap();
    let squad = json!({
        "version": "1.1",
        "data": [
            {
                "title": "Alpha",
                "paragraphs": [
                    {
                        "context": "Alpha has one paragraph here.",
                        "qas": [{
                            "id": "q1",
                            "question": "What does Alpha have?",
                            "answers": [{"text": "one paragraph", "answer_start": 10}]
                        }]
                    },
                    {"context": "And Alpha has a second one.", "qas": []}
                ]
            },
            {
                "title": "Bravo",
                "paragraphs": [{"context": "Bravo has a single paragraph.", "qas": []}]
            }
        ]
    });
    let input = write_file(dir.path(), "squad.json", squad.to_string());
    let expected = [
        (
            "Alpha",
            "Alpha has one paragraph here.",
            "article 1, paragraph 1",
        ),
        (
            "Alpha",
            "And Alpha has a second one.",
            "article 1, paragraph 2",
        ),
        (
            "Bravo",
            "Bravo has a single paragraph.",
            "article 2, paragraph 1",
        ),
    ];

    for format in ["auto", "squad"] {
        let out = dir.path().join(format!("out-{format}"));
        chunk(&input, &out, &["--format", format]).assert_success();

        assert_eq!(read_manifest(&out)["input"]["format"], json!("squad"));
        let rows = read_rows(&out);
        assert_eq!(rows.len(), expected.len());
        for (row, (title, context, location)) in rows.iter().zip(expected) {
            assert_eq!(row["doc_id"], json!(content_id(Some(title), context)));
            assert_eq!(row["title"], json!(title));
            assert_eq!(row["text"], json!(context));
            assert_eq!(
                row["source"],
                json!(format!("{}: {location}", input.display()))
            );
        }
    }
}

/// Writes a Parquet file with the columns `id`, `title` and `text`.
fn write_parquet(path: &Path, id: ArrayRef, title: Vec<Option<&str>>, text: Vec<Option<&str>>) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", id.data_type().clone(), false),
        Field::new("title", DataType::Utf8, true),
        Field::new("text", DataType::Utf8, true),
    ]));
    let columns: Vec<ArrayRef> = vec![
        id,
        Arc::new(StringArray::from(title)),
        Arc::new(StringArray::from(text)),
    ];
    let batch =
        RecordBatch::try_new(schema.clone(), columns).expect("the columns match the schema");
    let mut writer = ArrowWriter::try_new(File::create(path).unwrap(), schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

#[test]
fn parquet_with_string_ids() {
    let dir = TempDir::new().unwrap();
    let input = dir.path().join("docs.parquet");
    write_parquet(
        &input,
        Arc::new(StringArray::from(vec!["p1", "p2", "p3"])),
        vec![Some("One"), Some("Two"), None],
        vec![Some("The first row."), None, Some("The third row.")],
    );
    let source = format!("{}: row 2", input.display());

    let strict = dir.path().join("strict");
    let run = chunk(&input, &strict, &[]);
    run.assert_failure();
    run.assert_stderr_contains(&format!(
        "  {source}: column `text` is null in this row. Fill in the text or drop the row"
    ));
    assert!(
        !strict.exists(),
        "nothing may be written when the input check fails"
    );

    let out = dir.path().join("out");
    let run = chunk(&input, &out, &["--skip-invalid"]);
    run.assert_success();
    run.assert_stdout_contains("from 2 documents (1 rejected)");

    let rows = read_rows(&out);
    assert_eq!(doc_ids(&rows), ["p1", "p3"]);
    assert_eq!(
        column_strings(&rows, "text"),
        ["The first row.", "The third row."]
    );
    assert_eq!(rows[0]["title"], json!("One"));
    assert_eq!(rows[1]["title"], Value::Null);
    assert_eq!(
        rows[1]["source"],
        json!(format!("{}: row 3", input.display()))
    );
    let manifest = read_manifest(&out);
    assert_eq!(manifest["input"]["format"], json!("parquet"));
    assert_eq!(manifest["input"]["rejected"], json!(1));

    let rejects = read_rejects(&out);
    assert_eq!(rejects.len(), 1);
    assert_eq!(rejects[0]["source"], json!(source));
    assert_eq!(rejects[0]["location"], json!({"row": 2}));
    let raw: Value = serde_json::from_str(rejects[0]["raw"].as_str().unwrap()).unwrap();
    assert_eq!(raw, json!({"id": "p2", "title": "Two"}));
}

#[test]
fn parquet_with_integer_ids() {
    let dir = TempDir::new().unwrap();
    let input = dir.path().join("docs.parquet");
    write_parquet(
        &input,
        Arc::new(Int64Array::from(vec![10, -20])),
        vec![None, Some("Minus twenty")],
        vec![Some("Ten."), Some("Minus twenty.")],
    );
    let out = dir.path().join("out");

    chunk(&input, &out, &[]).assert_success();

    let rows = read_rows(&out);
    assert_eq!(doc_ids(&rows), ["10", "-20"]);
    assert_eq!(column_strings(&rows, "text"), ["Ten.", "Minus twenty."]);
    assert_eq!(rows[1]["title"], json!("Minus twenty"));
    assert_eq!(read_manifest(&out)["input"]["documents"], json!(2));
}

#[test]
fn text_folder_with_nested_files() {
    let dir = TempDir::new().unwrap();
    let root = dir.path().join("corpus");
    let a = write_file(&root, "a.txt", "Alpha lives at the top.");
    write_file(&root, "sub/b.md", "# Bravo\n\nBravo is one folder down.");
    write_file(&root, "sub/deeper/c.TXT", "Charlie is two folders down.");
    write_file(&root, "notes.csv", "not,a,document");
    write_file(&root, "sub/image.png", [0x89, b'P', b'N', b'G']);
    let out = dir.path().join("out");

    chunk(&root, &out, &[]).assert_success();

    let rows = read_rows(&out);
    assert_eq!(doc_ids(&rows), ["a.txt", "sub/b.md", "sub/deeper/c.TXT"]);
    assert_eq!(column_strings(&rows, "title"), ["a", "b", "c"]);
    assert_eq!(
        column_strings(&rows, "text"),
        [
            "Alpha lives at the top.",
            "# Bravo\n\nBravo is one folder down.",
            "Charlie is two folders down."
        ]
    );
    assert_eq!(rows[0]["source"], json!(a));
    let manifest = read_manifest(&out);
    assert_eq!(manifest["input"]["format"], json!("text-dir"));
    assert_eq!(manifest["input"]["documents"], json!(3));
}

#[test]
fn content_hash_ids_are_stable() {
    let dir = TempDir::new().unwrap();
    let input = write_file(
        dir.path(),
        "docs.jsonl",
        jsonl(&[
            r#"{"title": "T", "text": "Same text."}"#,
            r#"{"text": "Same text."}"#,
            r#"{"text": "Other text."}"#,
            r#"{"title": "T", "text": "Same text."}"#,
        ]),
    );
    let expected = [
        content_id(Some("T"), "Same text."),
        content_id(None, "Same text."),
        content_id(None, "Other text."),
    ];
    assert_eq!(
        expected.iter().collect::<BTreeSet<_>>().len(),
        3,
        "the expected ids differ"
    );

    let mut runs = Vec::new();
    for name in ["first", "second"] {
        let out = dir.path().join(name);
        chunk(&input, &out, &["--skip-invalid"]).assert_success();
        let rejects = read_rejects(&out);
        assert_eq!(rejects.len(), 1, "the repeated title and text are rejected");
        assert_eq!(rejects[0]["location"], json!({"line": 4}));
        assert_eq!(
            rejects[0]["reason"],
            json!(format!(
                "the same title and text already appear at {}:1. Remove the duplicate",
                input.display()
            ))
        );
        runs.push(doc_ids(&read_rows(&out)));
    }
    assert_eq!(runs[0], expected);
    assert_eq!(runs[1], expected, "a second run gives the same ids");
}

#[test]
fn limit_counts_valid_documents() {
    let dir = TempDir::new().unwrap();
    let input = write_file(
        dir.path(),
        "docs.jsonl",
        jsonl(&[
            r#"{"id": "a", "text": "Alpha."}"#,
            r#"{"id": "b", "text": ""}"#,
            r#"{"id": "c", "text": "Charlie."}"#,
            r#"{"id": "d", "text": "Delta."}"#,
            r#"{"id": "e", "text": "Echo."}"#,
        ]),
    );

    // Reading stops after the first document, before the invalid line 2.
    let out = dir.path().join("one");
    chunk(&input, &out, &["--limit", "1"]).assert_success();
    assert_eq!(doc_ids(&read_rows(&out)), ["a"]);
    assert_eq!(read_manifest(&out)["input"]["rejected"], json!(0));

    // The rejected line does not count towards the limit.
    let out = dir.path().join("three");
    let run = chunk(&input, &out, &["--limit", "3", "--skip-invalid"]);
    run.assert_success();
    run.assert_stdout_contains("from 3 documents (1 rejected)");
    assert_eq!(doc_ids(&read_rows(&out)), ["a", "c", "d"]);
    assert_eq!(read_manifest(&out)["input"]["documents"], json!(3));
}

#[test]
fn small_passages_cover_text() {
    let text = "  Kenning turns documents into passages.\n\nEach passage holds at most eight \
                tokens, and neighbours share two of them: café, naïve, 東京 and 😀 keep \
                their bytes intact. The last sentence ends here.\n";
    let dir = TempDir::new().unwrap();
    let input = write_file(
        dir.path(),
        "docs.jsonl",
        format!("{}\n", json!({"id": "long", "title": "Long", "text": text})),
    );
    let out = dir.path().join("out");

    chunk(&input, &out, &["--max-tokens", "8", "--overlap", "2"]).assert_success();

    let groups = rows_by_doc(&read_rows(&out));
    let passages = &groups["long"];
    assert!(
        passages.len() > 4,
        "the text must need several passages, got {}",
        passages.len()
    );
    assert_passages_cover(text, passages, 8);
}

#[test]
fn whitespace_tokens_give_exact_passages() {
    let words: Vec<String> = (1..=50).map(|i| format!("w{i}")).collect();
    let text = words.join(" ");
    let dir = TempDir::new().unwrap();
    let input = write_file(
        dir.path(),
        "docs.jsonl",
        format!("{}\n", json!({"id": "d", "text": text})),
    );
    let out = dir.path().join("out");

    chunk(
        &input,
        &out,
        &[
            "--max-tokens",
            "8",
            "--overlap",
            "2",
            "--tokenizer",
            "whitespace",
        ],
    )
    .assert_success();

    // Passages start every 8 - 2 = 6 tokens: at 0, 6, ..., 42, and the one at 42 ends at 50.
    let passages = &rows_by_doc(&read_rows(&out))["d"];
    assert_eq!(passages.len(), 8);
    for (k, passage) in passages.iter().enumerate() {
        assert_eq!(
            passage["text"],
            json!(words[6 * k..6 * k + 8].join(" ")),
            "passage {k}"
        );
        assert_eq!(number(passage, "token_count"), 8, "passage {k}");
    }
    assert_passages_cover(&text, passages, 8);
}
