//! Reads the `bios`, `qa` and `people` tables that `kenning bios` writes.

use std::collections::HashMap;
use std::path::Path;

use kenning_biographies::tables::Table;
use kenning_biographies::{Attribute, BiosConfig, BiosOutput, RunOptions};
use kenning_pipeline::bytesize::ByteSize;

use crate::data::shards::{read_batches, shard_paths, string_column};
use crate::error::{Result, TrainError};

/// One person of the `people` table.
#[derive(Clone, Debug, PartialEq)]
pub struct Person {
    pub person_id: String,
    pub full_name: String,
    /// Attribute values in `Attribute::ALL` order.
    pub values: Vec<String>,
    /// `train`, `test` or `unknown`.
    pub group: String,
}

/// One biography of the `bios` table.
#[derive(Clone, Debug, PartialEq)]
pub struct Biography {
    pub person_id: String,
    pub variant: u32,
    pub text: String,
}

/// One row of the `qa` table.
#[derive(Clone, Debug, PartialEq)]
pub struct QaRow {
    pub person_id: String,
    pub attribute: Attribute,
    pub question: String,
    pub answer: String,
    /// `train`, `test` or `unknown`.
    pub split: String,
    /// The surname's preferred value of a correlated attribute.
    pub preferred: Option<String>,
}

/// The three tables of a biographies run.
#[derive(Clone, Debug, Default)]
pub struct BiosData {
    pub people: HashMap<String, Person>,
    pub bios: Vec<Biography>,
    pub qa: Vec<QaRow>,
}

impl BiosData {
    /// Reads `DIR/data/people`, `DIR/data/bios` and `DIR/data/qa`.
    pub fn read(dir: &Path) -> Result<Self> {
        let data = dir.join("data");
        let mut out = Self::default();

        for path in shard_paths(&data.join("people"))? {
            for batch in read_batches(&path)? {
                let column = |name: &str| -> Result<Vec<String>> {
                    required(string_column(&batch, name, &path)?, name, &path)
                };
                let ids = column("person_id")?;
                let names = column("full_name")?;
                let groups = column("group")?;
                let attributes: Vec<Vec<String>> = Attribute::ALL
                    .iter()
                    .map(|a| column(a.name()))
                    .collect::<Result<_>>()?;
                for (row, id) in ids.into_iter().enumerate() {
                    let person = Person {
                        person_id: id.clone(),
                        full_name: names[row].clone(),
                        values: attributes
                            .iter()
                            .map(|values| values[row].clone())
                            .collect(),
                        group: groups[row].clone(),
                    };
                    out.people.insert(id, person);
                }
            }
        }

        for path in shard_paths(&data.join("bios"))? {
            for batch in read_batches(&path)? {
                let ids = required(
                    string_column(&batch, "person_id", &path)?,
                    "person_id",
                    &path,
                )?;
                let texts = required(string_column(&batch, "text", &path)?, "text", &path)?;
                let variants = batch
                    .column_by_name("variant")
                    .and_then(|c| c.as_any().downcast_ref::<arrow_array::UInt32Array>())
                    .ok_or_else(|| TrainError::MissingColumn {
                        path: path.clone(),
                        column: "variant (UInt32)".into(),
                    })?;
                for (row, (person_id, text)) in ids.into_iter().zip(texts).enumerate() {
                    out.bios.push(Biography {
                        person_id,
                        variant: variants.value(row),
                        text,
                    });
                }
            }
        }

        for path in shard_paths(&data.join("qa"))? {
            for batch in read_batches(&path)? {
                let column = |name: &str| -> Result<Vec<String>> {
                    required(string_column(&batch, name, &path)?, name, &path)
                };
                let ids = column("person_id")?;
                let attributes = column("attribute")?;
                let questions = column("question")?;
                let answers = column("answer")?;
                let splits = column("split")?;
                let preferred = string_column(&batch, "preferred", &path)?;
                for row in 0..ids.len() {
                    let attribute =
                        attributes[row]
                            .parse()
                            .map_err(|message| TrainError::Shard {
                                path: path.clone(),
                                message,
                            })?;
                    out.qa.push(QaRow {
                        person_id: ids[row].clone(),
                        attribute,
                        question: questions[row].clone(),
                        answer: answers[row].clone(),
                        split: splits[row].clone(),
                        preferred: preferred[row].clone(),
                    });
                }
            }
        }
        // Shards are read in file order; sorting makes every evaluation independent of it.
        out.bios
            .sort_by(|a, b| (&a.person_id, a.variant).cmp(&(&b.person_id, b.variant)));
        out.qa
            .sort_by(|a, b| (&a.person_id, a.attribute).cmp(&(&b.person_id, b.attribute)));
        Ok(out)
    }
}

fn required(values: Vec<Option<String>>, column: &str, path: &Path) -> Result<Vec<String>> {
    values
        .into_iter()
        .enumerate()
        .map(|(row, value)| {
            value.ok_or_else(|| TrainError::Shard {
                path: path.to_path_buf(),
                message: format!("column `{column}` is null in row {row}"),
            })
        })
        .collect()
}

/// Generates biographies into `dir` with `kenning bios`'s default output settings (one thread
/// per core, no progress bar), keeping a complete earlier run with the same settings.
pub fn generate(config: BiosConfig, dir: &Path) -> Result<()> {
    let output = BiosOutput {
        dir: dir.to_path_buf(),
        license: "cc0-1.0".into(),
        shard_bytes: ByteSize(256 << 20),
        row_group_rows: 100_000,
        row_group_bytes: ByteSize(64 << 20),
        zstd_level: 3,
        tables: Table::ALL.to_vec(),
    };
    let options = RunOptions {
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        restart: false,
        progress: false,
    };
    kenning_biographies::run(config, output, options)?;
    Ok(())
}
