//! Parquet input: string columns named by the field settings.

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type, UInt32Type, UInt64Type};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};

use super::{Entry, EntryIter, FieldNames, InputError, Location, Origin, Problem, RawDocument};

/// Lists the `.parquet` files directly inside `folder`, sorted by name.
pub fn files_in(folder: &Path) -> Result<Vec<PathBuf>, InputError> {
    let entries = std::fs::read_dir(folder).map_err(|source| InputError::Io {
        path: folder.to_path_buf(),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    files.sort();
    Ok(files)
}

/// Reads every `.parquet` file of a folder in name order, as one input.
pub fn read_folder(folder: &Path, names: FieldNames) -> Result<EntryIter, InputError> {
    let files = files_in(folder)?;
    if files.is_empty() {
        return Err(InputError::Layout {
            path: folder.to_path_buf(),
            message:
                "the folder contains no .parquet files; give a Parquet file or a folder of them"
                    .into(),
        });
    }
    let mut readers = Vec::with_capacity(files.len());
    for file in &files {
        readers.push(read(file, names.clone())?);
    }
    Ok(Box::new(readers.into_iter().flatten()))
}

pub fn read(path: &Path, names: FieldNames) -> Result<EntryIter, InputError> {
    let parquet_error = |source| InputError::Parquet {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(|source| InputError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if file.metadata().map(|m| m.len()).unwrap_or(0) == 0 {
        return Err(InputError::Empty {
            path: path.to_path_buf(),
        });
    }
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(parquet_error)?;
    let schema = builder.schema().clone();

    let find = |name: &str,
                required: bool,
                allow_integer: bool|
     -> Result<Option<usize>, InputError> {
        let Ok(index) = schema.index_of(name) else {
            if !required {
                return Ok(None);
            }
            let available: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            return Err(InputError::Layout {
                path: path.to_path_buf(),
                message: format!(
                    "column `{name}` not found (columns: {}). Set --text-field (input.text_field) \
                     to the column that holds the text",
                    available.join(", ")
                ),
            });
        };
        let ty = schema.field(index).data_type();
        let string = matches!(
            ty,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        );
        let integer = matches!(
            ty,
            DataType::Int32 | DataType::Int64 | DataType::UInt32 | DataType::UInt64
        );
        if !(string || (allow_integer && integer)) {
            return Err(InputError::Layout {
                path: path.to_path_buf(),
                message: format!(
                    "column `{name}` has type {ty}, expected a string column{}",
                    if allow_integer {
                        " or an integer column"
                    } else {
                        ""
                    }
                ),
            });
        }
        Ok(Some(index))
    };
    let columns = Columns {
        text: find(&names.text, true, false)?.expect("a required column is found or an error"),
        id: find(&names.id, false, true)?,
        title: find(&names.title, false, false)?,
        text_name: names.text.clone(),
    };

    let reader = builder.build().map_err(parquet_error)?;
    Ok(Box::new(ParquetEntries {
        path: path.to_path_buf(),
        reader,
        columns,
        batch: None,
        position: 0,
        row: 0,
        failed: false,
    }))
}

struct Columns {
    text: usize,
    id: Option<usize>,
    title: Option<usize>,
    text_name: String,
}

struct ParquetEntries {
    path: PathBuf,
    reader: ParquetRecordBatchReader,
    columns: Columns,
    batch: Option<RecordBatch>,
    position: usize,
    row: u64,
    failed: bool,
}

/// Returns the value at `i` of a string or integer column as text, or `None` for null.
fn value_at(array: &dyn Array, i: usize) -> Option<String> {
    if array.is_null(i) {
        return None;
    }
    let value = match array.data_type() {
        DataType::Utf8 => array.as_string::<i32>().value(i).to_string(),
        DataType::LargeUtf8 => array.as_string::<i64>().value(i).to_string(),
        DataType::Utf8View => array.as_string_view().value(i).to_string(),
        DataType::Int32 => array.as_primitive::<Int32Type>().value(i).to_string(),
        DataType::Int64 => array.as_primitive::<Int64Type>().value(i).to_string(),
        DataType::UInt32 => array.as_primitive::<UInt32Type>().value(i).to_string(),
        DataType::UInt64 => array.as_primitive::<UInt64Type>().value(i).to_string(),
        _ => unreachable!("column types are checked when the file is opened"),
    };
    Some(value)
}

impl Iterator for ParquetEntries {
    type Item = Result<Entry, InputError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        while self
            .batch
            .as_ref()
            .is_none_or(|b| self.position >= b.num_rows())
        {
            match self.reader.next()? {
                Ok(batch) => {
                    self.batch = Some(batch);
                    self.position = 0;
                }
                Err(source) => {
                    self.failed = true;
                    return Some(Err(InputError::Parquet {
                        path: self.path.clone(),
                        source: source.into(),
                    }));
                }
            }
        }

        let batch = self.batch.as_ref().expect("a batch with rows is loaded");
        let i = self.position;
        self.position += 1;
        self.row += 1;
        let origin = Origin::new(&self.path, Location::Row(self.row));

        let id = self.columns.id.and_then(|c| value_at(batch.column(c), i));
        let title = self
            .columns
            .title
            .and_then(|c| value_at(batch.column(c), i));
        let Some(text) = value_at(batch.column(self.columns.text), i) else {
            return Some(Ok(Entry::Problem(Problem {
                origin,
                reason: format!(
                    "column `{}` is null in this row. Fill in the text or drop the row",
                    self.columns.text_name
                ),
                raw: Some(serde_json::json!({ "id": id, "title": title }).to_string()),
            })));
        };

        Some(Ok(Entry::Doc(RawDocument {
            raw: Some(serde_json::json!({ "id": id, "title": title, "text": text }).to_string()),
            id,
            title,
            text,
            origin,
        })))
    }
}
