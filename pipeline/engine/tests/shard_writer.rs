//! Property tests of the shard writer and of the sink's crash recovery.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::UInt32Type;
use arrow_array::{Array, RecordBatch};
use kenning_pipeline::bytesize::ByteSize;
use kenning_pipeline::record::{Cell, Record, RecordKey};
use kenning_pipeline::schema::{Column, ColumnType, RecordSchema};
use kenning_pipeline::sink::{ShardOptions, ShardSink, ShardWriter, WriteOutcome};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::reader::{FileReader, SerializedFileReader};
use proptest::prelude::*;
use sha2::{Digest, Sha256};

fn schema() -> RecordSchema {
    RecordSchema::new(vec![
        Column::new("score", ColumnType::UInt32, true, "A nullable number."),
        Column::new(
            "note",
            ColumnType::Utf8,
            true,
            "A column that may be null in every row.",
        ),
    ])
    .unwrap()
}

fn record(i: usize, text: String, title: Option<String>, score: Option<u32>) -> Record {
    Record {
        key: RecordKey::new(format!("doc-{i}"), "test", "plain", 0),
        split: "train".into(),
        source: format!("input.jsonl:{}", i + 1),
        title,
        text,
        fields: vec![
            ("score".into(), score.map_or(Cell::Null, Cell::UInt32)),
            ("note".into(), Cell::Null),
        ],
    }
}

/// Shard options that make a few hundred short records fill several shards.
fn small_shards() -> ShardOptions {
    ShardOptions {
        shard_bytes: ByteSize(4 * 1024),
        row_group_rows: 16,
        row_group_bytes: ByteSize::mib(1),
        zstd_level: 1,
    }
}

/// Rows of one shard as (key, title, text, score), in file order.
type Row = (String, Option<String>, String, Option<u32>);

fn read_shard(path: &Path) -> (Vec<Row>, arrow_schema::SchemaRef) {
    let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap()).unwrap();
    let schema = builder.schema().clone();
    let mut rows = Vec::new();
    for batch in builder.build().unwrap() {
        let batch: RecordBatch = batch.unwrap();
        let key = batch
            .column_by_name("key")
            .unwrap()
            .as_string::<i32>()
            .clone();
        let title = batch
            .column_by_name("title")
            .unwrap()
            .as_string::<i32>()
            .clone();
        let text = batch
            .column_by_name("text")
            .unwrap()
            .as_string::<i32>()
            .clone();
        let score = batch
            .column_by_name("score")
            .unwrap()
            .as_primitive::<UInt32Type>()
            .clone();
        let note = batch.column_by_name("note").unwrap();
        assert_eq!(
            note.null_count(),
            batch.num_rows(),
            "the note column is all null"
        );
        for i in 0..batch.num_rows() {
            rows.push((
                key.value(i).to_string(),
                title.is_valid(i).then(|| title.value(i).to_string()),
                text.value(i).to_string(),
                score.is_valid(i).then(|| score.value(i)),
            ));
        }
    }
    (rows, schema)
}

fn text_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z ]{0,40}",
        "\\PC{1,200}",
        // Long texts make shards and row groups roll by bytes.
        "[a-zA-Z0-9 ]{2000,6000}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Whatever the limits, the shards hold every row once, in order, with the declared schema,
    /// zstd compression, bounded row groups and the checksum the writer reported.
    #[test]
    fn shards_hold_every_row_in_order(
        rows in prop::collection::vec((text_strategy(), prop::option::of("\\PC{0,20}"), prop::option::of(any::<u32>())), 0..300),
        shard_kib in 1u64..64,
        row_group_rows in 1usize..80,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let options = ShardOptions {
            shard_bytes: ByteSize(shard_kib * 1024),
            row_group_rows,
            row_group_bytes: ByteSize::mib(1),
            zstd_level: 3,
        };
        let mut writer = ShardWriter::new(dir.path(), "train", schema(), options, 0).unwrap();
        let mut finished = Vec::new();
        let mut expected = Vec::new();
        for (i, (text, title, score)) in rows.into_iter().enumerate() {
            let record = record(i, text, title, score);
            expected.push((record.key.to_string(), record.title.clone(), record.text.clone(), score));
            finished.extend(writer.push(&record).unwrap());
        }
        finished.extend(writer.finish().unwrap());

        let mut read = Vec::new();
        for (position, shard) in finished.iter().enumerate() {
            prop_assert_eq!(shard.index as usize, position);
            let bytes = fs::read(&shard.path).unwrap();
            prop_assert_eq!(bytes.len() as u64, shard.bytes);
            prop_assert_eq!(hex::encode(Sha256::digest(&bytes)), shard.sha256.clone());

            let (shard_rows, shard_schema) = read_shard(&shard.path);
            prop_assert_eq!(shard_rows.len() as u64, shard.rows);
            prop_assert!(shard.rows > 0, "no empty shard is written");
            let declared = schema();
            prop_assert_eq!(shard_schema.fields(), declared.arrow().fields());

            let reader = SerializedFileReader::new(File::open(&shard.path).unwrap()).unwrap();
            for group in reader.metadata().row_groups() {
                prop_assert!(group.num_rows() as usize <= row_group_rows);
                for column in group.columns() {
                    prop_assert!(matches!(column.compression(), Compression::ZSTD(_)));
                }
            }
            read.extend(shard_rows);
        }
        prop_assert_eq!(read, expected);
        let leftovers = fs::read_dir(dir.path()).unwrap().count();
        prop_assert_eq!(leftovers, finished.len(), "no temporary file is left behind");
    }

    /// A sink dropped without closing, as a killed process leaves it, and opened again
    /// ends with each written key exactly once, whatever the point of the crash.
    #[test]
    fn sink_recovers_from_crash_at_any_point(
        total in 1usize..400,
        crash_points in prop::collection::vec(0usize..400, 1..4),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let options = small_shards();
        let text = |i: usize| format!("passage {i} {}", "word ".repeat(i % 37));

        let mut crash_points = crash_points;
        crash_points.sort();
        for crash_at in crash_points {
            let mut sink = ShardSink::open(dir.path(), schema(), options.clone()).unwrap();
            // Each attempt produces the records from the start, as a resumed stage does.
            for i in 0..total.min(crash_at) {
                let outcome = sink.write(&record(i, text(i), None, Some(i as u32))).unwrap();
                prop_assert!(matches!(outcome, WriteOutcome::Written | WriteOutcome::AlreadyDone));
            }
            drop(sink);
        }

        let mut sink = ShardSink::open(dir.path(), schema(), options).unwrap();
        for i in 0..total {
            sink.write(&record(i, text(i), None, Some(i as u32))).unwrap();
        }
        let shards = sink.close().unwrap();

        let mut keys = BTreeMap::new();
        for shard in &shards {
            for (key, _, text_value, score) in read_shard(&shard.path).0 {
                let i = score.unwrap() as usize;
                prop_assert_eq!(&text_value, &text(i));
                prop_assert!(keys.insert(key.clone(), ()).is_none(), "key {} stored twice", key);
            }
        }
        prop_assert_eq!(keys.len(), total);
    }
}

#[test]
fn undeclared_field_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer =
        ShardWriter::new(dir.path(), "train", schema(), ShardOptions::default(), 0).unwrap();
    let mut bad = record(0, "text".into(), None, None);
    bad.fields.push(("colour".into(), Cell::Utf8("red".into())));

    let error = writer.push(&bad).unwrap_err().to_string();
    assert!(error.contains("`colour`"), "{error}");
    assert!(error.contains("doc-0/test/plain/0"), "{error}");
}

#[test]
fn wrong_field_type_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer =
        ShardWriter::new(dir.path(), "train", schema(), ShardOptions::default(), 0).unwrap();
    let mut bad = record(0, "text".into(), None, None);
    bad.fields[0].1 = Cell::Utf8("high".into());

    let error = writer.push(&bad).unwrap_err().to_string();
    assert!(error.contains("`score` must be UInt32 or null"), "{error}");
}

#[test]
fn reopened_sink_totals_stored_rows() {
    let dir = tempfile::tempdir().unwrap();
    let options = small_shards();
    // Every seventh score is null; the rest are the row index.
    let score = |i: usize| (!i.is_multiple_of(7)).then_some(i as u32);
    let text = |i: usize| format!("passage {i} {}", "word ".repeat(i % 37));

    // Dropped without closing, so the rows are in finished shards and in the journal.
    let mut sink = ShardSink::open(dir.path(), schema(), options.clone()).unwrap();
    for i in 0..300 {
        sink.write(&record(i, text(i), None, score(i))).unwrap();
    }
    drop(sink);

    let totaled = BTreeMap::from([("test".to_string(), "score".to_string())]);
    let sink = ShardSink::open_with_totals(dir.path(), schema(), options, totaled).unwrap();
    assert!(
        sink.stats().resumed_rows > 0,
        "some rows are in finished shards"
    );
    assert!(
        sink.stats().replayed_rows > 0,
        "some rows are in the journal"
    );
    let total = sink.stored_totals().get("test", "plain");
    let expected_sum: u64 = (0..300).filter_map(score).map(u64::from).sum();
    assert_eq!(total.sum, expected_sum);
    assert_eq!(
        total.nulls,
        (0..300).filter(|i: &usize| i.is_multiple_of(7)).count() as u64
    );
    assert_eq!(sink.stored_totals().get("test", "other").sum, 0);
    assert_eq!(sink.stored_totals().get("other", "plain").nulls, 0);
}
