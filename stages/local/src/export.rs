//! Moving weights between a GGUF file and dense tensors: reading a model for training, and
//! writing trained weights back as a GGUF file that the local provider runs.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
use candle_core::{DType, Device, Tensor};

use crate::config::LlamaConfig;
use crate::error::{LocalError, Result};
use crate::gguf::GgufFile;

/// Reads every tensor of a llama-family GGUF file as `f32`, keyed by its GGUF name.
pub fn read_dense(path: &Path, device: &Device) -> Result<(LlamaConfig, HashMap<String, Tensor>)> {
    let mut file = GgufFile::open(path)?;
    let config = LlamaConfig::from_gguf(&file)?;
    let mut tensors = HashMap::new();
    for name in file.tensor_names() {
        let quantized = file.tensor(&name, device)?;
        let dense = quantized
            .dequantize(device)
            .map_err(|_| LocalError::Quantization {
                path: path.to_path_buf(),
                tensor: name.clone(),
                dtype: quantized.dtype(),
            })?;
        tensors.insert(name, dense);
    }
    Ok((config, tensors))
}

/// Writes `tensors` as an `f32` GGUF file at `out`, with the metadata (architecture, tokenizer,
/// chat template) of the file at `template`. Tensor names must be the template's.
pub fn write_dense(template: &Path, tensors: &HashMap<String, Tensor>, out: &Path) -> Result<()> {
    let source = GgufFile::open(template)?;
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();

    let mut quantized = Vec::with_capacity(names.len());
    for name in &names {
        let tensor = tensors[*name]
            .to_dtype(DType::F32)?
            .to_device(&Device::Cpu)?;
        quantized.push(QTensor::quantize(&tensor, GgmlDType::F32)?);
    }
    let tensor_refs: Vec<(&str, &QTensor)> = names
        .iter()
        .map(|n| n.as_str())
        .zip(quantized.iter())
        .collect();
    let metadata: Vec<(&str, &gguf_file::Value)> = source
        .metadata_entries()
        .into_iter()
        .filter(|(key, _)| *key != "general.file_type")
        .collect();

    let io = |source| LocalError::Io {
        path: out.to_path_buf(),
        source,
    };
    let partial = out.with_extension("gguf.partial");
    let mut writer = BufWriter::new(File::create(&partial).map_err(io)?);
    gguf_file::write(&mut writer, &metadata, &tensor_refs)?;
    let file = writer.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&partial, out).map_err(io)?;
    Ok(())
}
