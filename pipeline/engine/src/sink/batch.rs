//! Column builders that turn records into Arrow record batches of the declared schema.

use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Float64Builder, Int64Builder, StringBuilder, UInt32Builder, UInt64Builder,
};
use arrow_array::{ArrayRef, RecordBatch};

use super::SinkError;
use crate::record::{Cell, Record};
use crate::schema::{ColumnType, RecordSchema};

enum ExtraBuilder {
    Utf8(StringBuilder),
    UInt32(UInt32Builder),
    UInt64(UInt64Builder),
    Int64(Int64Builder),
    Float64(Float64Builder),
    Boolean(BooleanBuilder),
}

impl ExtraBuilder {
    fn new(ty: ColumnType) -> Self {
        match ty {
            ColumnType::Utf8 => Self::Utf8(StringBuilder::new()),
            ColumnType::UInt32 => Self::UInt32(UInt32Builder::new()),
            ColumnType::UInt64 => Self::UInt64(UInt64Builder::new()),
            ColumnType::Int64 => Self::Int64(Int64Builder::new()),
            ColumnType::Float64 => Self::Float64(Float64Builder::new()),
            ColumnType::Boolean => Self::Boolean(BooleanBuilder::new()),
        }
    }

    /// Appends a cell whose type was already checked by [`cell_matches`].
    fn append(&mut self, cell: &Cell) {
        match (self, cell) {
            (Self::Utf8(b), Cell::Utf8(v)) => b.append_value(v),
            (Self::UInt32(b), Cell::UInt32(v)) => b.append_value(*v),
            (Self::UInt64(b), Cell::UInt64(v)) => b.append_value(*v),
            (Self::Int64(b), Cell::Int64(v)) => b.append_value(*v),
            (Self::Float64(b), Cell::Float64(v)) => b.append_value(*v),
            (Self::Boolean(b), Cell::Boolean(v)) => b.append_value(*v),
            (Self::Utf8(b), _) => b.append_null(),
            (Self::UInt32(b), _) => b.append_null(),
            (Self::UInt64(b), _) => b.append_null(),
            (Self::Int64(b), _) => b.append_null(),
            (Self::Float64(b), _) => b.append_null(),
            (Self::Boolean(b), _) => b.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Self::Utf8(b) => Arc::new(b.finish()),
            Self::UInt32(b) => Arc::new(b.finish()),
            Self::UInt64(b) => Arc::new(b.finish()),
            Self::Int64(b) => Arc::new(b.finish()),
            Self::Float64(b) => Arc::new(b.finish()),
            Self::Boolean(b) => Arc::new(b.finish()),
        }
    }
}

fn cell_matches(cell: &Cell, ty: ColumnType) -> bool {
    matches!(
        (cell, ty),
        (Cell::Utf8(_), ColumnType::Utf8)
            | (Cell::UInt32(_), ColumnType::UInt32)
            | (Cell::UInt64(_), ColumnType::UInt64)
            | (Cell::Int64(_), ColumnType::Int64)
            | (Cell::Float64(_), ColumnType::Float64)
            | (Cell::Boolean(_), ColumnType::Boolean)
    )
}

/// Rows that are buffered until the next record batch is cut.
pub struct BatchBuilder {
    schema: RecordSchema,
    key: StringBuilder,
    doc_id: StringBuilder,
    stage: StringBuilder,
    variant: StringBuilder,
    sample: UInt32Builder,
    title: StringBuilder,
    text: StringBuilder,
    source: StringBuilder,
    extra: Vec<ExtraBuilder>,
    rows: usize,
    text_bytes: usize,
}

impl BatchBuilder {
    pub fn new(schema: RecordSchema) -> Self {
        let extra = schema
            .extra()
            .iter()
            .map(|c| ExtraBuilder::new(c.ty))
            .collect();
        Self {
            schema,
            key: StringBuilder::new(),
            doc_id: StringBuilder::new(),
            stage: StringBuilder::new(),
            variant: StringBuilder::new(),
            sample: UInt32Builder::new(),
            title: StringBuilder::new(),
            text: StringBuilder::new(),
            source: StringBuilder::new(),
            extra,
            rows: 0,
            text_bytes: 0,
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Approximate bytes of string data buffered so far.
    pub fn buffered_bytes(&self) -> usize {
        self.text_bytes
    }

    /// Appends one record, or returns an error and appends nothing when the record's
    /// stage-specific fields do not match the declared columns.
    pub fn append(&mut self, record: &Record) -> Result<(), SinkError> {
        let key = record.key.to_string();
        let cells = self.resolve_fields(record, &key)?;

        self.key.append_value(&key);
        self.doc_id.append_value(&record.key.doc_id);
        self.stage.append_value(&record.key.stage);
        self.variant.append_value(&record.key.variant);
        self.sample.append_value(record.key.sample);
        self.title.append_option(record.title.as_deref());
        self.text.append_value(&record.text);
        self.source.append_value(&record.source);
        for (builder, cell) in self.extra.iter_mut().zip(cells) {
            builder.append(cell);
        }

        self.rows += 1;
        self.text_bytes += key.len()
            + record.text.len()
            + record.title.as_ref().map_or(0, String::len)
            + record.source.len()
            + record.key.doc_id.len();
        Ok(())
    }

    fn resolve_fields<'r>(
        &self,
        record: &'r Record,
        key: &str,
    ) -> Result<Vec<&'r Cell>, SinkError> {
        for (name, _) in &record.fields {
            if !self.schema.extra().iter().any(|c| &c.name == name) {
                return Err(SinkError::UndeclaredField {
                    key: key.to_string(),
                    field: name.clone(),
                });
            }
        }

        let mut cells = Vec::with_capacity(self.schema.extra().len());
        for column in self.schema.extra() {
            let cell = record.field(&column.name).unwrap_or(&Cell::Null);
            let valid = match cell {
                Cell::Null => column.nullable,
                other => cell_matches(other, column.ty),
            };
            if !valid {
                return Err(SinkError::FieldType {
                    key: key.to_string(),
                    field: column.name.clone(),
                    expected: column.ty,
                    nullable: column.nullable,
                    found: format!("{cell:?}"),
                });
            }
            cells.push(cell);
        }
        Ok(cells)
    }

    /// Cuts the buffered rows into a record batch and starts an empty buffer.
    pub fn finish(&mut self) -> Result<RecordBatch, SinkError> {
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(self.key.finish()),
            Arc::new(self.doc_id.finish()),
            Arc::new(self.stage.finish()),
            Arc::new(self.variant.finish()),
            Arc::new(self.sample.finish()),
            Arc::new(self.title.finish()),
            Arc::new(self.text.finish()),
            Arc::new(self.source.finish()),
        ];
        columns.extend(self.extra.iter_mut().map(ExtraBuilder::finish));
        self.rows = 0;
        self.text_bytes = 0;
        Ok(RecordBatch::try_new(self.schema.arrow().clone(), columns)?)
    }
}
