//! The column layout of a run's shards, declared once before anything is written.

use std::collections::HashSet;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef};
use serde::Serialize;

/// Columns every shard has, in this order, before the stage-specific ones.
pub const BASE_COLUMNS: [&str; 8] = [
    "key", "doc_id", "stage", "variant", "sample", "title", "text", "source",
];

/// The value type of a stage-specific column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    Utf8,
    UInt32,
    UInt64,
    Int64,
    Float64,
    Boolean,
}

impl ColumnType {
    pub fn arrow_type(self) -> DataType {
        match self {
            Self::Utf8 => DataType::Utf8,
            Self::UInt32 => DataType::UInt32,
            Self::UInt64 => DataType::UInt64,
            Self::Int64 => DataType::Int64,
            Self::Float64 => DataType::Float64,
            Self::Boolean => DataType::Boolean,
        }
    }

    /// Returns the type name that Hugging Face dataset cards use in `dataset_info.features`.
    pub fn hf_dtype(self) -> &'static str {
        match self {
            Self::Utf8 => "string",
            Self::UInt32 => "uint32",
            Self::UInt64 => "uint64",
            Self::Int64 => "int64",
            Self::Float64 => "float64",
            Self::Boolean => "bool",
        }
    }
}

/// A stage-specific column.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Column {
    pub name: String,
    pub ty: ColumnType,
    pub nullable: bool,
    /// One line for the dataset card.
    pub description: String,
}

impl Column {
    pub fn new(name: &str, ty: ColumnType, nullable: bool, description: &str) -> Self {
        Self {
            name: name.to_string(),
            ty,
            nullable,
            description: description.to_string(),
        }
    }
}

/// Invalid column declaration.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("column `{0}` is declared twice or shadows a base column ({BASE_COLUMNS:?})")]
    Duplicate(String),
    #[error("column name `{0}` is invalid: use lowercase letters, digits and `_`")]
    InvalidName(String),
}

/// The full row layout: the base columns followed by the final stage's columns.
#[derive(Clone, Debug)]
pub struct RecordSchema {
    extra: Vec<Column>,
    arrow: SchemaRef,
}

impl RecordSchema {
    pub fn new(extra: Vec<Column>) -> Result<Self, SchemaError> {
        let mut seen: HashSet<&str> = BASE_COLUMNS.into_iter().collect();
        for column in &extra {
            let valid = !column.name.is_empty()
                && column
                    .name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !valid {
                return Err(SchemaError::InvalidName(column.name.clone()));
            }
            if !seen.insert(&column.name) {
                return Err(SchemaError::Duplicate(column.name.clone()));
            }
        }

        let mut fields = vec![
            Field::new("key", DataType::Utf8, false),
            Field::new("doc_id", DataType::Utf8, false),
            Field::new("stage", DataType::Utf8, false),
            Field::new("variant", DataType::Utf8, false),
            Field::new("sample", DataType::UInt32, false),
            Field::new("title", DataType::Utf8, true),
            Field::new("text", DataType::Utf8, false),
            Field::new("source", DataType::Utf8, false),
        ];
        fields.extend(
            extra
                .iter()
                .map(|c| Field::new(&c.name, c.ty.arrow_type(), c.nullable)),
        );
        let arrow = Arc::new(Schema::new(fields));
        Ok(Self { extra, arrow })
    }

    pub fn arrow(&self) -> &SchemaRef {
        &self.arrow
    }

    pub fn extra(&self) -> &[Column] {
        &self.extra
    }

    /// Returns every column with its card type and description, base columns first.
    pub fn describe(&self) -> Vec<(String, &'static str, String)> {
        let base = [
            (
                "key",
                "string",
                "Stable record key: doc_id/stage/variant/sample.",
            ),
            (
                "doc_id",
                "string",
                "Id of the source document (a content hash when the input had none).",
            ),
            ("stage", "string", "Stage that produced the record."),
            (
                "variant",
                "string",
                "Variant within the stage, such as a prompt strategy.",
            ),
            (
                "sample",
                "uint32",
                "Sample index within the document, stage and variant.",
            ),
            (
                "title",
                "string",
                "Title of the source document, when it has one.",
            ),
            ("text", "string", "The record's text."),
            (
                "source",
                "string",
                "Input file and line or record the document came from.",
            ),
        ];
        let mut out: Vec<_> = base
            .iter()
            .map(|(n, t, d)| (n.to_string(), *t, d.to_string()))
            .collect();
        out.extend(
            self.extra
                .iter()
                .map(|c| (c.name.clone(), c.ty.hf_dtype(), c.description.clone())),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_column_cannot_shadow_base() {
        let err =
            RecordSchema::new(vec![Column::new("text", ColumnType::Utf8, false, "")]).unwrap_err();
        assert!(matches!(err, SchemaError::Duplicate(name) if name == "text"));
    }

    #[test]
    fn arrow_schema_keeps_declared_order() {
        let schema = RecordSchema::new(vec![Column::new(
            "token_count",
            ColumnType::UInt32,
            true,
            "",
        )])
        .unwrap();
        let names: Vec<_> = schema
            .arrow()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names.last().unwrap(), "token_count");
        assert_eq!(names.len(), BASE_COLUMNS.len() + 1);
    }
}
