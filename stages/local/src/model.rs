//! A llama-family decoder over GGUF weights, with one key/value cache per sequence so that
//! sequences of different lengths share each decoding step.
//!
//! Every row of a step goes through the projections together (that is where batching saves
//! time: the weights are read once per step instead of once per sequence), while attention runs
//! per sequence over its own cache. A row's result does not depend on the other rows in the
//! step, so a request gives the same text whatever it is batched with.

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::kv_cache::KvCache;

use crate::config::LlamaConfig;
use crate::error::{LocalError, Result};
use crate::gguf::GgufFile;

/// Storage format of the projection weights in memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightFormat {
    /// 32-bit floats for prompts and 8-bit blocks for decoding steps: the fastest prefill and
    /// decoding whose rows do not depend on what else is in the batch. Holds both copies.
    #[default]
    Mixed,
    /// As stored in the file.
    Native,
    /// Re-quantized to 8-bit blocks at load.
    Q8_0,
    /// Dequantized to 32-bit floats for every step. Batched decoding gains the most here, but
    /// float matrix products round differently with the number of rows, so a request's text
    /// may change with what it is batched with.
    F32,
}

impl WeightFormat {
    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "mixed" => Ok(Self::Mixed),
            "native" => Ok(Self::Native),
            "q8_0" => Ok(Self::Q8_0),
            "f32" => Ok(Self::F32),
            other => Err(LocalError::Setting(format!(
                "weight format `{other}` is unknown; use mixed, native, q8_0 or f32"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Mixed => "mixed",
            Self::Native => "native",
            Self::Q8_0 => "q8_0",
            Self::F32 => "f32",
        }
    }
}

/// One projection matrix, with a second copy for prompts in the mixed format.
struct Projection {
    decode: QMatMul,
    prefill: Option<QMatMul>,
}

impl Projection {
    fn forward(&self, x: &Tensor, prefill: bool) -> candle_core::Result<Tensor> {
        match (&self.prefill, prefill) {
            (Some(weights), true) => weights.forward(x),
            _ => self.decode.forward(x),
        }
    }
}

struct Layer {
    attn_norm: Tensor,
    q: Projection,
    k: Projection,
    v: Projection,
    o: Projection,
    ffn_norm: Tensor,
    gate: Projection,
    up: Projection,
    down: Projection,
}

/// The cache of one sequence: keys and values per layer, and the number of positions filled.
pub struct SequenceCache {
    layers: Vec<KvCache>,
    position: usize,
}

impl SequenceCache {
    pub fn position(&self) -> usize {
        self.position
    }
}

/// The model's weights and rotary tables.
pub struct Llama {
    pub config: LlamaConfig,
    embeddings: Tensor,
    layers: Vec<Layer>,
    norm: Tensor,
    output: Projection,
    cos: Tensor,
    sin: Tensor,
    device: Device,
}

impl Llama {
    pub fn load(file: &mut GgufFile, format: WeightFormat, device: &Device) -> Result<Self> {
        let config = LlamaConfig::from_gguf(file)?;

        let embeddings = file.tensor("token_embd.weight", device)?;
        let output = if file.has_tensor("output.weight") {
            file.tensor("output.weight", device)?
        } else {
            // Tied embeddings: the output layer reuses the token embeddings.
            file.tensor("token_embd.weight", device)?
        };
        let embeddings = dequantize(file, "token_embd.weight", &embeddings, device)?;
        let output = projection(file, "output.weight", output, format, device)?;
        let norm = file
            .tensor("output_norm.weight", device)?
            .dequantize(device)?;

        let mut layers = Vec::with_capacity(config.layers);
        for i in 0..config.layers {
            let mut weight = |name: &str| -> Result<Projection> {
                let full = format!("blk.{i}.{name}.weight");
                let tensor = file.tensor(&full, device)?;
                projection(file, &full, tensor, format, device)
            };
            let q = weight("attn_q")?;
            let k = weight("attn_k")?;
            let v = weight("attn_v")?;
            let o = weight("attn_output")?;
            let gate = weight("ffn_gate")?;
            let up = weight("ffn_up")?;
            let down = weight("ffn_down")?;
            let attn_norm = file
                .tensor(&format!("blk.{i}.attn_norm.weight"), device)?
                .dequantize(device)?;
            let ffn_norm = file
                .tensor(&format!("blk.{i}.ffn_norm.weight"), device)?
                .dequantize(device)?;
            layers.push(Layer {
                attn_norm,
                q,
                k,
                v,
                o,
                ffn_norm,
                gate,
                up,
                down,
            });
        }

        let (cos, sin) = rotary_tables(&config, device)?;
        Ok(Self {
            config,
            embeddings,
            layers,
            norm,
            output,
            cos,
            sin,
            device: device.clone(),
        })
    }

    /// Returns an empty cache with room for `capacity` positions.
    pub fn new_cache(&self, capacity: usize) -> SequenceCache {
        SequenceCache {
            layers: (0..self.config.layers)
                .map(|_| KvCache::new(2, capacity.max(1)))
                .collect(),
            position: 0,
        }
    }

    /// Runs the new tokens of several sequences through the model and returns the logits of
    /// each sequence's last new token, one row per sequence, as `f32` vectors. A step with more
    /// than one new token for a sequence is a prompt step and uses the prompt weights.
    pub fn forward(&self, batch: &mut [(&[u32], &mut SequenceCache)]) -> Result<Vec<Vec<f32>>> {
        let config = &self.config;
        let lengths: Vec<usize> = batch.iter().map(|(tokens, _)| tokens.len()).collect();
        let prefill = lengths.iter().any(|&len| len > 1);
        if lengths.contains(&0) {
            return Err(LocalError::Setting("a sequence has no new tokens".into()));
        }
        for (tokens, cache) in batch.iter() {
            if cache.position + tokens.len() > config.context_length {
                return Err(LocalError::PromptTooLong {
                    prompt: cache.position + tokens.len(),
                    max_tokens: 0,
                    context: config.context_length,
                });
            }
        }

        let ids: Vec<u32> = batch.iter().flat_map(|(t, _)| t.iter().copied()).collect();
        let ids = Tensor::new(ids.as_slice(), &self.device)?;
        let mut x = self.embeddings.index_select(&ids, 0)?;
        let eps = config.rms_norm_eps as f32;

        for (index, layer) in self.layers.iter().enumerate() {
            let h = candle_nn::ops::rms_norm(&x, &layer.attn_norm, eps)?;
            let q = layer.q.forward(&h, prefill)?;
            let k = layer.k.forward(&h, prefill)?;
            let v = layer.v.forward(&h, prefill)?;

            let mut outputs = Vec::with_capacity(batch.len());
            let mut row = 0;
            for ((_, cache), &len) in batch.iter_mut().zip(&lengths) {
                let out = self.attention(
                    &q.narrow(0, row, len)?,
                    &k.narrow(0, row, len)?,
                    &v.narrow(0, row, len)?,
                    &mut cache.layers[index],
                    cache.position,
                )?;
                outputs.push(out);
                row += len;
            }
            let attended = Tensor::cat(&outputs, 0)?;
            x = (x + layer.o.forward(&attended, prefill)?)?;

            let h = candle_nn::ops::rms_norm(&x, &layer.ffn_norm, eps)?;
            let gate = candle_nn::ops::silu(&layer.gate.forward(&h, prefill)?)?;
            let up = layer.up.forward(&h, prefill)?;
            x = (x + layer.down.forward(&(gate * up)?, prefill)?)?;
        }

        let mut last = Vec::with_capacity(batch.len());
        let mut end = 0;
        for ((_, cache), &len) in batch.iter_mut().zip(&lengths) {
            cache.position += len;
            end += len;
            last.push((end - 1) as u32);
        }
        let last = Tensor::new(last.as_slice(), &self.device)?;
        let x = x.index_select(&last, 0)?;
        let x = candle_nn::ops::rms_norm(&x, &self.norm, eps)?;
        let logits = self.output.forward(&x, prefill)?.to_dtype(DType::F32)?;
        Ok(logits.to_vec2::<f32>()?)
    }

    /// Attention of one sequence's new rows over its cache.
    fn attention(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        cache: &mut KvCache,
        position: usize,
    ) -> Result<Tensor> {
        let config = &self.config;
        let (len, _) = q.dims2()?;
        let head_dim = config.head_dim;
        let group = config.heads / config.kv_heads;

        let split = |t: &Tensor, heads: usize| -> candle_core::Result<Tensor> {
            t.reshape((1, len, heads, head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let cos = self.cos.narrow(0, position, len)?;
        let sin = self.sin.narrow(0, position, len)?;
        let q = candle_nn::rotary_emb::rope_i(&split(q, config.heads)?, &cos, &sin)?;
        let k = candle_nn::rotary_emb::rope_i(&split(k, config.kv_heads)?, &cos, &sin)?;
        let v = split(v, config.kv_heads)?;
        let (keys, values) = cache.append(&k, &v)?;
        let total = keys.dim(2)?;

        // Query heads that share a key/value head are stacked as extra rows, so the cache is
        // never copied per head.
        let q = q.reshape((1, config.kv_heads, group * len, head_dim))?;
        let scale = 1.0 / (head_dim as f64).sqrt();
        let mut scores = (q.matmul(&keys.t()?)? * scale)?;
        if len > 1 {
            let mask = causal_mask(len, total, group, &self.device)?;
            scores = scores.broadcast_add(&mask)?;
        }
        let weights = candle_nn::ops::softmax_last_dim(&scores)?;
        let out = weights.matmul(&values.contiguous()?)?;
        let out = out
            .reshape((1, config.heads, len, head_dim))?
            .transpose(1, 2)?
            .reshape((len, config.heads * head_dim))?;
        Ok(out)
    }

    pub fn device(&self) -> &Device {
        &self.device
    }
}

/// Builds the causal mask for `len` new rows at the end of `total` positions, repeated for
/// `group` stacked heads. Row `r` (position `total - len + r % len`) attends to keys up to its
/// own position.
fn causal_mask(len: usize, total: usize, group: usize, device: &Device) -> Result<Tensor> {
    let start = total - len;
    let mut mask = Vec::with_capacity(group * len * total);
    for _ in 0..group {
        for r in 0..len {
            for key in 0..total {
                mask.push(if key <= start + r {
                    0f32
                } else {
                    f32::NEG_INFINITY
                });
            }
        }
    }
    Ok(Tensor::from_vec(mask, (group * len, total), device)?)
}

/// Interleaved rotary tables for every position of the context window.
fn rotary_tables(config: &LlamaConfig, device: &Device) -> Result<(Tensor, Tensor)> {
    let half = config.head_dim / 2;
    let inverse: Vec<f32> = (0..half)
        .map(|i| {
            1.0 / config
                .rope_theta
                .powf(2.0 * i as f32 / config.head_dim as f32)
        })
        .collect();
    let inverse = Tensor::from_vec(inverse, (1, half), device)?;
    let positions = Tensor::arange(0u32, config.context_length as u32, device)?
        .to_dtype(DType::F32)?
        .reshape((config.context_length, 1))?;
    let angles = positions.broadcast_mul(&inverse)?;
    Ok((angles.cos()?, angles.sin()?))
}

/// Dequantizes a tensor, refusing types candle cannot read.
fn dequantize(file: &GgufFile, name: &str, tensor: &QTensor, device: &Device) -> Result<Tensor> {
    tensor
        .dequantize(device)
        .map_err(|_| LocalError::Quantization {
            path: file.path().to_path_buf(),
            tensor: name.to_string(),
            dtype: tensor.dtype(),
        })
}

/// Prepares one projection matrix in the chosen format.
fn projection(
    file: &GgufFile,
    name: &str,
    tensor: QTensor,
    format: WeightFormat,
    device: &Device,
) -> Result<Projection> {
    let projection = match format {
        WeightFormat::Native => Projection {
            decode: QMatMul::from_qtensor(tensor)?,
            prefill: None,
        },
        WeightFormat::F32 => Projection {
            decode: QMatMul::Tensor(dequantize(file, name, &tensor, device)?),
            prefill: None,
        },
        WeightFormat::Q8_0 => Projection {
            decode: eight_bit(file, name, tensor, device)?,
            prefill: None,
        },
        WeightFormat::Mixed => {
            let dense = dequantize(file, name, &tensor, device)?;
            Projection {
                decode: eight_bit(file, name, tensor, device)?,
                prefill: Some(QMatMul::Tensor(dense)),
            }
        }
    };
    Ok(projection)
}

/// Re-quantizes to 8-bit blocks; rows that are not whole blocks stay as stored.
fn eight_bit(file: &GgufFile, name: &str, tensor: QTensor, device: &Device) -> Result<QMatMul> {
    let columns = tensor.shape().dims().last().copied().unwrap_or(0);
    if tensor.dtype() == GgmlDType::Q8_0 || columns % GgmlDType::Q8_0.block_size() != 0 {
        return Ok(QMatMul::from_qtensor(tensor)?);
    }
    let dense = dequantize(file, name, &tensor, device)?;
    Ok(QMatMul::from_qtensor(QTensor::quantize(
        &dense,
        GgmlDType::Q8_0,
    )?)?)
}
