//! The three output tables, `people`, `bios` and `qa`, as Arrow record batches built row
//! range by row range.

use std::fmt::Write as _;
use std::ops::Range;
use std::sync::Arc;

use arrow_array::builder::{StringBuilder, UInt32Builder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use crate::attribute::Attribute;
use crate::people::{Generator, Person, Pronoun};
use crate::permutation::Permutation;
use crate::rng::hash;
use crate::templates::TemplateSet;
use crate::text;

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

    /// Columns whose values rarely repeat, written without dictionary encoding.
    pub fn plain_columns(self) -> &'static [&'static str] {
        match self {
            Self::People => &["key", "person_id", "full_name"],
            Self::Bios => &["key", "person_id", "full_name", "text"],
            Self::Qa => &["key", "person_id", "full_name", "question"],
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
    format!("p{index:09}")
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
        let columns = table.columns().len();
        let mut builders: Vec<StringBuilder> = (0..columns).map(|_| StringBuilder::new()).collect();
        let mut variants = UInt32Builder::new();
        let mut text = String::new();
        let mut key = String::new();
        // The QA rows of one person are consecutive, so the person, name and id are built once
        // per person instead of once per question.
        let mut qa_person: Option<(Person, String, String)> = None;

        for row in rows {
            match table {
                Table::People => {
                    let person = self.generator.person(row);
                    self.people_row(&person, &mut builders);
                }
                Table::Bios => {
                    let slot = self.bios_order.apply(row);
                    let multiplicity = u64::from(self.generator.config.multiplicity);
                    let person = self.generator.person(slot / multiplicity);
                    let variant = (slot % multiplicity) as u32;
                    let name = self.generator.full_name(&person);
                    let id = person_id(person.index);
                    key.clear();
                    write!(key, "{id}/bios/biography/{variant}").expect("a String accepts writes");
                    builders[0].append_value(&key);
                    builders[1].append_value(&id);
                    builders[2].append_value(&name);
                    variants.append_value(variant);
                    text.clear();
                    text::biography(
                        self.generator,
                        self.templates,
                        &person,
                        &name,
                        variant,
                        &mut text,
                    );
                    builders[4].append_value(&text);
                }
                Table::Qa => {
                    let questions = Attribute::ALL.len() as u64;
                    let first_person = match split {
                        "train" => 0,
                        "test" => train_people(self.generator),
                        _ => self.generator.config.people,
                    };
                    let index = first_person + row / questions;
                    if qa_person
                        .as_ref()
                        .is_none_or(|(person, _, _)| person.index != index)
                    {
                        let person = self.generator.person(index);
                        let name = self.generator.full_name(&person);
                        qa_person = Some((person, name, person_id(index)));
                    }
                    let (person, name, id) = qa_person.as_ref().expect("set just above");
                    let attribute = Attribute::ALL[(row % questions) as usize];
                    let words = QaRow {
                        person,
                        name,
                        id,
                        attribute,
                        split,
                    };
                    self.qa_row(&words, &mut builders, &mut key, &mut text);
                }
            }
        }

        let arrays: Vec<ArrayRef> = builders
            .iter_mut()
            .enumerate()
            .map(|(i, builder)| -> ArrayRef {
                if table == Table::Bios && i == 3 {
                    Arc::new(variants.finish())
                } else {
                    Arc::new(builder.finish())
                }
            })
            .collect();
        RecordBatch::try_new(table.schema(), arrays).expect("columns match the table schema")
    }

    fn people_row(&self, person: &Person, builders: &mut [StringBuilder]) {
        let generator = self.generator;
        let origin = &generator.names.origins[person.origin];
        let id = person_id(person.index);
        let values = [
            format!("{id}/people/record/0"),
            id,
            generator.full_name(person),
            origin.first[person.first].clone(),
            origin.first[person.middle].clone(),
            origin.last[person.last].clone(),
            origin.name.clone(),
            match person.pronoun {
                Pronoun::He => "he".into(),
                Pronoun::She => "she".into(),
            },
        ];
        for (builder, value) in builders.iter_mut().zip(&values) {
            builder.append_value(value);
        }
        for (offset, attribute) in Attribute::ALL.into_iter().enumerate() {
            builders[values.len() + offset].append_value(generator.value(person, attribute));
        }
        builders[values.len() + Attribute::ALL.len()].append_value(group(generator, person.index));
    }

    fn qa_row(
        &self,
        row: &QaRow<'_>,
        builders: &mut [StringBuilder],
        key: &mut String,
        question: &mut String,
    ) {
        let generator = self.generator;
        key.clear();
        write!(key, "{}/qa/{}/0", row.id, row.attribute).expect("a String accepts writes");
        builders[0].append_value(&key);
        builders[1].append_value(row.id);
        builders[2].append_value(row.name);
        builders[3].append_value(row.attribute.name());
        question.clear();
        text::question(
            generator,
            self.templates,
            row.person,
            row.name,
            row.attribute,
            question,
        );
        builders[4].append_value(&question);
        if row.split == "unknown" {
            builders[5].append_value(UNKNOWN_ANSWER);
        } else {
            builders[5].append_value(generator.value(row.person, row.attribute));
        }
        builders[6].append_value(row.split);
        builders[7].append_option(generator.preferred_value(row.person, row.attribute));
    }
}

/// One QA row: a question about one attribute of one person.
struct QaRow<'a> {
    person: &'a Person,
    name: &'a str,
    id: &'a str,
    attribute: Attribute,
    split: &'a str,
}
