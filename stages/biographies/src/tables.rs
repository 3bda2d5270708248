//! The three output tables, `people`, `bios` and `qa`, as Arrow record batches built row
//! range by row range.

use std::ops::Range;
use std::sync::Arc;

use arrow_array::builder::{StringBuilder, UInt32Builder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use kenning_pipeline::sink::ColumnSettings;

use crate::attribute::Attribute;
use crate::people::{Generator, Person};
use crate::permutation::Permutation;
use crate::rng::hash;
use crate::templates::{PersonWords, TemplateSet};
use crate::text::{self, TextSink, push_decimal};

/// Answer of every question about an unknown person.
pub const UNKNOWN_ANSWER: &str = "I don't know";
const BIOS_ORDER: u64 = 20;

/// One output table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Table {
    People,
    Bios,
    Qa,
}

impl std::str::FromStr for Table {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| format!("unknown table `{s}`: use bios, qa or people"))
    }
}

impl Table {
    pub const ALL: [Table; 3] = [Table::Bios, Table::Qa, Table::People];

    pub fn name(self) -> &'static str {
        match self {
            Self::People => "people",
            Self::Bios => "bios",
            Self::Qa => "qa",
        }
    }

    /// Returns each column with its description, for the schema, manifest and card.
    pub fn columns(self) -> Vec<(&'static str, DataType, bool, &'static str)> {
        let utf8 = DataType::Utf8;
        let mut columns = vec![
            (
                "key",
                utf8.clone(),
                false,
                "Stable row key: person_id/table/variant/sample.",
            ),
            (
                "person_id",
                utf8.clone(),
                false,
                "Person id, `p` and nine digits.",
            ),
            (
                "full_name",
                utf8.clone(),
                false,
                "First, middle and last name; unique per person.",
            ),
        ];
        match self {
            Self::People => {
                columns.extend([
                    ("first_name", utf8.clone(), false, "First name."),
                    ("middle_name", utf8.clone(), false, "Middle name."),
                    ("last_name", utf8.clone(), false, "Surname."),
                    (
                        "origin",
                        utf8.clone(),
                        false,
                        "Origin of the surname, such as `French`.",
                    ),
                    (
                        "pronoun",
                        utf8.clone(),
                        false,
                        "`he` or `she`, as the biographies use it.",
                    ),
                    (
                        "birth_date",
                        utf8.clone(),
                        false,
                        "Birth date as the biographies write it.",
                    ),
                    ("birth_city", utf8.clone(), false, "Birth city."),
                    ("university", utf8.clone(), false, "University."),
                    ("major", utf8.clone(), false, "Field of study."),
                    ("employer", utf8.clone(), false, "Employer."),
                    (
                        "employer_city",
                        utf8.clone(),
                        false,
                        "Headquarters city of the employer.",
                    ),
                    (
                        "group",
                        utf8,
                        false,
                        "`train`, `test` (QA held out) or `unknown` (no biography).",
                    ),
                ]);
            }
            Self::Bios => {
                columns.extend([
                    (
                        "variant",
                        DataType::UInt32,
                        false,
                        "Biography number of this person, 0 to multiplicity - 1.",
                    ),
                    (
                        "text",
                        utf8,
                        false,
                        "The biography: six sentences, one per attribute.",
                    ),
                ]);
            }
            Self::Qa => {
                columns.extend([
                    ("attribute", utf8.clone(), false, "Attribute asked about."),
                    ("question", utf8.clone(), false, "The question."),
                    (
                        "answer",
                        utf8.clone(),
                        false,
                        "The attribute value, or `I don't know` for unknown people.",
                    ),
                    (
                        "split",
                        utf8.clone(),
                        false,
                        "`train`, `test` or `unknown`.",
                    ),
                    (
                        "preferred",
                        utf8,
                        true,
                        "The surname's preferred value for a correlated attribute, else null.",
                    ),
                ]);
            }
        }
        columns
    }

    /// Parquet settings of the columns. Min/max statistics are kept only where the rows are
    /// sorted by the column: `person_id` in `qa` and `people`, `group`, and `split`, which
    /// has one value per `qa` file. Elsewhere every page spans nearly the whole range of
    /// values, so the bounds never let a reader skip anything, while computing them compares
    /// every value. Long texts and names get plain encoding. Keys and person ids are sorted
    /// in `qa` and `people`, so they get DELTA_BYTE_ARRAY there.
    pub fn column_settings(self) -> ColumnSettings<'static> {
        match self {
            Self::People => ColumnSettings {
                plain: &["full_name"],
                delta: &["key", "person_id"],
                no_statistics: &[
                    "key",
                    "full_name",
                    "first_name",
                    "middle_name",
                    "last_name",
                    "origin",
                    "pronoun",
                    "birth_date",
                    "birth_city",
                    "university",
                    "major",
                    "employer",
                    "employer_city",
                ],
            },
            Self::Bios => ColumnSettings {
                plain: &["key", "person_id", "full_name", "text"],
                delta: &[],
                no_statistics: &["key", "person_id", "full_name", "text"],
            },
            Self::Qa => ColumnSettings {
                plain: &["full_name", "question"],
                delta: &["key", "person_id"],
                no_statistics: &[
                    "key",
                    "full_name",
                    "attribute",
                    "question",
                    "answer",
                    "preferred",
                ],
            },
        }
    }

    pub fn schema(self) -> SchemaRef {
        let fields: Vec<Field> = self
            .columns()
            .into_iter()
            .map(|(name, ty, nullable, _)| Field::new(name, ty, nullable))
            .collect();
        Arc::new(Schema::new(fields))
    }
}

/// Returns the id of person number `index`.
pub fn person_id(index: u64) -> String {
    let mut id = String::new();
    push_person_id(&mut id, index);
    id
}

/// Appends the id of person number `index`, `p` and at least nine digits, to `out`.
pub fn push_person_id(out: &mut impl TextSink, index: u64) {
    out.push_str("p");
    push_decimal(out, index, 9);
}

/// Group of a person: training people, held-out people and unknown people.
pub fn group(generator: &Generator, index: u64) -> &'static str {
    let people = generator.config.people;
    let train = train_people(generator);
    if index < train {
        "train"
    } else if index < people {
        "test"
    } else {
        "unknown"
    }
}

/// Number of people whose QA rows are in the `train` split.
pub fn train_people(generator: &Generator) -> u64 {
    (generator.config.people as f64 * generator.config.train_fraction).round() as u64
}

/// Builds the rows of one table and split.
pub struct TableBuilder<'g> {
    generator: &'g Generator,
    templates: &'g TemplateSet,
    bios_order: Permutation,
}

impl<'g> TableBuilder<'g> {
    pub fn new(generator: &'g Generator, templates: &'g TemplateSet) -> Self {
        let rows = generator.config.people * u64::from(generator.config.multiplicity);
        Self {
            generator,
            templates,
            bios_order: Permutation::new(rows, hash(generator.config.seed, &[BIOS_ORDER])),
        }
    }

    /// Returns the splits of `table` with their row counts, in file order.
    pub fn splits(&self, table: Table) -> Vec<(&'static str, u64)> {
        let config = &self.generator.config;
        match table {
            Table::People => vec![("train", self.generator.total())],
            Table::Bios => vec![("train", config.people * u64::from(config.multiplicity))],
            Table::Qa => {
                let questions = Attribute::ALL.len() as u64;
                let train = train_people(self.generator);
                vec![
                    ("train", train * questions),
                    ("test", (config.people - train) * questions),
                    ("unknown", config.unknown_count() * questions),
                ]
            }
        }
    }

    /// Builds rows `rows` of `split` of `table`.
    pub fn batch(&self, table: Table, split: &str, rows: Range<u64>) -> RecordBatch {
        let arrays = match table {
            Table::People => self.people_rows(rows),
            Table::Bios => self.bios_rows(rows),
            Table::Qa => self.qa_rows(split, rows),
        };
        RecordBatch::try_new(table.schema(), arrays).expect("columns match the table schema")
    }

    fn bios_rows(&self, rows: Range<u64>) -> Vec<ArrayRef> {
        let generator = self.generator;
        let multiplicity = u64::from(generator.config.multiplicity);
        let count = (rows.end - rows.start) as usize;
        let mut keys = StringBuilder::with_capacity(count, count * 32);
        let mut ids = StringBuilder::with_capacity(count, count * 10);
        let mut names = StringBuilder::with_capacity(count, count * 24);
        let mut variants = UInt32Builder::with_capacity(count);
        let mut texts = StringBuilder::with_capacity(count, count * 640);
        // Name buffers reused from row to row.
        let mut name = String::new();
        let mut possessive = String::new();

        for row in rows {
            let slot = self.bios_order.apply(row);
            let person = generator.person(slot / multiplicity);
            let variant = (slot % multiplicity) as u32;
            name.clear();
            generator.push_full_name(&person, &mut name);
            possessive.clear();
            possessive.push_str(&name);
            possessive.push_str("'s");

            push_person_id(&mut keys, person.index);
            keys.push_str("/bios/biography/");
            push_decimal(&mut keys, u64::from(variant), 1);
            keys.append_value("");
            push_person_id(&mut ids, person.index);
            ids.append_value("");
            names.append_value(&name);
            variants.append_value(variant);

            let named = PersonWords {
                subject: &name,
                possessive: &possessive,
                object: &name,
            };
            text::biography_named(
                generator,
                self.templates,
                &person,
                &named,
                variant,
                &mut texts,
            );
            texts.append_value("");
        }

        vec![
            Arc::new(keys.finish()),
            Arc::new(ids.finish()),
            Arc::new(names.finish()),
            Arc::new(variants.finish()),
            Arc::new(texts.finish()),
        ]
    }

    fn qa_rows(&self, split: &str, rows: Range<u64>) -> Vec<ArrayRef> {
        let generator = self.generator;
        let questions = Attribute::ALL.len() as u64;
        let first_person = match split {
            "train" => 0,
            "test" => train_people(generator),
            _ => generator.config.people,
        };
        let count = (rows.end - rows.start) as usize;
        let mut keys = StringBuilder::with_capacity(count, count * 32);
        let mut ids = StringBuilder::with_capacity(count, count * 10);
        let mut names = StringBuilder::with_capacity(count, count * 24);
        let mut attributes = StringBuilder::with_capacity(count, count * 12);
        let mut texts = StringBuilder::with_capacity(count, count * 64);
        let mut answers = StringBuilder::with_capacity(count, count * 24);
        let mut splits = StringBuilder::with_capacity(count, count * 8);
        let mut preferred = StringBuilder::with_capacity(count, 0);
        // The QA rows of one person are consecutive, so the person and the name are built once
        // per person instead of once per question.
        let mut person: Option<Person> = None;
        let mut name = String::new();

        for row in rows {
            let index = first_person + row / questions;
            let person = match &person {
                Some(person) if person.index == index => person,
                _ => {
                    let drawn = generator.person(index);
                    name.clear();
                    generator.push_full_name(&drawn, &mut name);
                    person.insert(drawn)
                }
            };
            let attribute = Attribute::ALL[(row % questions) as usize];

            push_person_id(&mut keys, index);
            keys.push_str("/qa/");
            keys.push_str(attribute.name());
            keys.push_str("/0");
            keys.append_value("");
            push_person_id(&mut ids, index);
            ids.append_value("");
            names.append_value(&name);
            attributes.append_value(attribute.name());
            text::question(
                generator,
                self.templates,
                person,
                &name,
                attribute,
                &mut texts,
            );
            texts.append_value("");
            if split == "unknown" {
                answers.append_value(UNKNOWN_ANSWER);
            } else {
                generator.push_value(person, attribute, &mut answers);
                answers.append_value("");
            }
            splits.append_value(split);
            preferred.append_option(generator.preferred_value(person, attribute));
        }

        vec![
            Arc::new(keys.finish()),
            Arc::new(ids.finish()),
            Arc::new(names.finish()),
            Arc::new(attributes.finish()),
            Arc::new(texts.finish()),
            Arc::new(answers.finish()),
            Arc::new(splits.finish()),
            Arc::new(preferred.finish()),
        ]
    }

    fn people_rows(&self, rows: Range<u64>) -> Vec<ArrayRef> {
        let generator = self.generator;
        let count = (rows.end - rows.start) as usize;
        let columns = Table::People.columns().len();
        let mut builders: Vec<StringBuilder> = (0..columns)
            .map(|_| StringBuilder::with_capacity(count, count * 16))
            .collect();

        for row in rows {
            let person = generator.person(row);
            let origin = &generator.names.origins[person.origin];
            let [
                key,
                id,
                name,
                first,
                middle,
                last,
                origin_name,
                pronoun,
                values @ ..,
                group,
            ] = builders.as_mut_slice()
            else {
                unreachable!("the people table has {columns} columns");
            };

            push_person_id(key, person.index);
            key.push_str("/people/record/0");
            key.append_value("");
            push_person_id(id, person.index);
            id.append_value("");
            generator.push_full_name(&person, name);
            name.append_value("");
            first.append_value(&origin.first[person.first]);
            middle.append_value(&origin.first[person.middle]);
            last.append_value(&origin.last[person.last]);
            origin_name.append_value(&origin.name);
            pronoun.append_value(person.pronoun.subject());
            for (builder, attribute) in values.iter_mut().zip(Attribute::ALL) {
                generator.push_value(&person, attribute, builder);
                builder.append_value("");
            }
            group.append_value(self::group(generator, person.index));
        }

        builders
            .iter_mut()
            .map(|builder| Arc::new(builder.finish()) as ArrayRef)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_settings_name_real_columns() {
        for table in Table::ALL {
            let names: Vec<&str> = table.columns().iter().map(|column| column.0).collect();
            let settings = table.column_settings();
            for name in settings
                .plain
                .iter()
                .chain(settings.delta)
                .chain(settings.no_statistics)
            {
                assert!(
                    names.contains(name),
                    "{} has no column `{name}`",
                    table.name()
                );
            }
        }
    }
}
