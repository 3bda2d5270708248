//! Opening a GGUF file: header, metadata, tensor table and the checks that turn a wrong or
//! truncated file into a clear error instead of a panic deep inside a matrix product.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use candle_core::Device;
use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::{GgmlDType, QTensor};

use crate::error::{LocalError, Result};

const GGUF_MAGIC: &[u8; 4] = b"GGUF";

/// An opened GGUF file whose tensor table fits inside the file.
pub struct GgufFile {
    path: PathBuf,
    reader: BufReader<File>,
    content: Content,
}

impl GgufFile {
    /// Opens `path`, reads the header and checks that every tensor lies within the file.
    pub fn open(path: &Path) -> Result<Self> {
        let io = |source| LocalError::Io {
            path: path.to_path_buf(),
            source,
        };
        let not_gguf = |reason: String| LocalError::NotGguf {
            path: path.to_path_buf(),
            reason,
        };

        let file = File::open(path).map_err(io)?;
        let file_len = file.metadata().map_err(io)?.len();
        let mut reader = BufReader::new(file);

        let mut magic = [0u8; 4];
        if reader.read_exact(&mut magic).is_err() || &magic != GGUF_MAGIC {
            return Err(not_gguf(
                "the file does not start with the GGUF magic bytes".into(),
            ));
        }
        reader.seek(SeekFrom::Start(0)).map_err(io)?;

        let content = Content::read(&mut reader).map_err(|e| {
            not_gguf(format!(
                "the header cannot be read ({e}); the file may be truncated"
            ))
        })?;

        for (name, info) in &content.tensor_infos {
            let elements = info.shape.elem_count();
            let dtype = info.ggml_dtype;
            let bytes = (elements / dtype.block_size()) as u64 * dtype.type_size() as u64;
            let end = content.tensor_data_offset + info.offset + bytes;
            if end > file_len {
                return Err(not_gguf(format!(
                    "tensor `{name}` ends at byte {end} but the file has {file_len} bytes; the file is truncated, download it again"
                )));
            }
        }

        Ok(Self {
            path: path.to_path_buf(),
            reader,
            content,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn metadata(&self, key: &str) -> Option<&Value> {
        self.content.metadata.get(key)
    }

    fn missing(&self, key: &str) -> LocalError {
        LocalError::Metadata {
            path: self.path.clone(),
            key: key.to_string(),
        }
    }

    pub fn string(&self, key: &str) -> Result<&str> {
        self.metadata(key)
            .and_then(|v| v.to_string().ok())
            .map(String::as_str)
            .ok_or_else(|| self.missing(key))
    }

    /// Reads an integer of any width.
    pub fn integer(&self, key: &str) -> Result<u64> {
        let value = self.metadata(key).ok_or_else(|| self.missing(key))?;
        let number = match value {
            Value::U8(v) => u64::from(*v),
            Value::U16(v) => u64::from(*v),
            Value::U32(v) => u64::from(*v),
            Value::U64(v) => *v,
            Value::I8(v) => u64::try_from(*v).map_err(|_| self.missing(key))?,
            Value::I16(v) => u64::try_from(*v).map_err(|_| self.missing(key))?,
            Value::I32(v) => u64::try_from(*v).map_err(|_| self.missing(key))?,
            Value::I64(v) => u64::try_from(*v).map_err(|_| self.missing(key))?,
            _ => return Err(self.missing(key)),
        };
        Ok(number)
    }

    pub fn float(&self, key: &str) -> Result<f64> {
        match self.metadata(key) {
            Some(Value::F32(v)) => Ok(f64::from(*v)),
            Some(Value::F64(v)) => Ok(*v),
            _ => Err(self.missing(key)),
        }
    }

    /// Reads an array of strings, such as the tokenizer's vocabulary.
    pub fn strings(&self, key: &str) -> Result<Vec<&str>> {
        let values = self
            .metadata(key)
            .and_then(|v| v.to_vec().ok())
            .ok_or_else(|| self.missing(key))?;
        values
            .iter()
            .map(|v| {
                v.to_string()
                    .map(String::as_str)
                    .map_err(|_| self.missing(key))
            })
            .collect()
    }

    /// Reads an array of integers, such as the tokenizer's token types.
    pub fn integers(&self, key: &str) -> Result<Vec<i64>> {
        let values = self
            .metadata(key)
            .and_then(|v| v.to_vec().ok())
            .ok_or_else(|| self.missing(key))?;
        values
            .iter()
            .map(|v| match v {
                Value::I32(n) => Ok(i64::from(*n)),
                Value::U32(n) => Ok(i64::from(*n)),
                Value::I64(n) => Ok(*n),
                Value::U8(n) => Ok(i64::from(*n)),
                Value::I8(n) => Ok(i64::from(*n)),
                _ => Err(self.missing(key)),
            })
            .collect()
    }

    /// Returns every metadata entry, sorted by key.
    pub fn metadata_entries(&self) -> Vec<(&str, &Value)> {
        let mut entries: Vec<(&str, &Value)> = self
            .content
            .metadata
            .iter()
            .map(|(k, v)| (k.as_str(), v))
            .collect();
        entries.sort_by_key(|(k, _)| *k);
        entries
    }

    /// Returns every tensor name, sorted.
    pub fn tensor_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.content.tensor_infos.keys().cloned().collect();
        names.sort();
        names
    }

    pub fn has_tensor(&self, name: &str) -> bool {
        self.content.tensor_infos.contains_key(name)
    }

    pub fn tensor_dtype(&self, name: &str) -> Option<GgmlDType> {
        self.content.tensor_infos.get(name).map(|t| t.ggml_dtype)
    }

    /// Reads one tensor as stored.
    pub fn tensor(&mut self, name: &str, device: &Device) -> Result<QTensor> {
        if !self.has_tensor(name) {
            return Err(LocalError::MissingTensor {
                path: self.path.clone(),
                tensor: name.to_string(),
            });
        }
        self.content
            .tensor(&mut self.reader, name, device)
            .map_err(|e| LocalError::NotGguf {
                path: self.path.clone(),
                reason: format!("tensor `{name}` cannot be read: {e}"),
            })
    }
}
