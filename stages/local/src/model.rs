//! A llama-family decoder over GGUF weights, with one key/value cache per sequence so that
//! sequences of different lengths share each decoding step.
//!
//! Every row of a step goes through the projections together (that is where batching saves
//! time: the weights are read once per step instead of once per sequence), while attention runs
//! per sequence over its own cache. A row's result does not depend on the other rows in the
//! step, so a request gives the same text whatever it is batched with.

use candle_core::quantized::{QMatMul, QTensor};
use candle_core::{DType, Device, Module, Tensor};

use crate::config::LlamaConfig;
use crate::error::{LocalError, Result};
use crate::gguf::GgufFile;
use crate::q8::{BLOCK, Q8Matrix};
use crate::step::{self, Q8Layer, Q8Weights, Rotary};

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

/// Weights run through candle: prompts in the mixed format, every step in the native and
/// f32 formats.
struct DenseLayer {
    attn_norm: Tensor,
    q: QMatMul,
    k: QMatMul,
    v: QMatMul,
    o: QMatMul,
    ffn_norm: Tensor,
    gate: QMatMul,
    up: QMatMul,
    down: QMatMul,
}

struct DenseWeights {
    layers: Vec<DenseLayer>,
    norm: Tensor,
    output: QMatMul,
}

/// The cache of one sequence: keys and values per layer, laid out as `[kv head][position]
/// [head dim]`, and the number of positions filled. Both the candle path and the 8-bit path
/// read and write it, so a prompt run by one can be continued by the other.
pub struct SequenceCache {
    pub(crate) keys: Vec<Vec<f32>>,
    pub(crate) values: Vec<Vec<f32>>,
    pub(crate) capacity: usize,
    pub(crate) position: usize,
}

impl SequenceCache {
    pub fn position(&self) -> usize {
        self.position
    }

    /// Writes the key and value rows of `len` new positions of one layer, given as
    /// `[kv head][new position][head dim]`.
    pub(crate) fn store(
        &mut self,
        layer: usize,
        keys: &[f32],
        values: &[f32],
        len: usize,
        head_dim: usize,
    ) {
        let heads = keys.len() / (len * head_dim);
        for head in 0..heads {
            let from = head * len * head_dim..(head + 1) * len * head_dim;
            let at = (head * self.capacity + self.position) * head_dim;
            self.keys[layer][at..at + len * head_dim].copy_from_slice(&keys[from.clone()]);
            self.values[layer][at..at + len * head_dim].copy_from_slice(&values[from]);
        }
    }

    /// Returns the first `total` positions of one layer as `[kv head][position][head dim]`.
    fn gather(
        &self,
        layer: usize,
        heads: usize,
        total: usize,
        head_dim: usize,
    ) -> (Vec<f32>, Vec<f32>) {
        let mut keys = Vec::with_capacity(heads * total * head_dim);
        let mut values = Vec::with_capacity(heads * total * head_dim);
        for head in 0..heads {
            let at = head * self.capacity * head_dim;
            keys.extend_from_slice(&self.keys[layer][at..at + total * head_dim]);
            values.extend_from_slice(&self.values[layer][at..at + total * head_dim]);
        }
        (keys, values)
    }
}

/// The model's weights and rotary tables.
pub struct Llama {
    pub config: LlamaConfig,
    embeddings: Tensor,
    dense: Option<DenseWeights>,
    eight_bit: Option<Q8Weights>,
    cos: Tensor,
    sin: Tensor,
    rotary: Rotary,
    device: Device,
}

impl Llama {
    pub fn load(file: &mut GgufFile, format: WeightFormat, device: &Device) -> Result<Self> {
        let config = LlamaConfig::from_gguf(file)?;
        let format = usable_format(file, &config, format, device)?;
        let wants_dense = format != WeightFormat::Q8_0;
        let wants_eight_bit = matches!(format, WeightFormat::Q8_0 | WeightFormat::Mixed);

        let embeddings = file.tensor("token_embd.weight", device)?;
        let embeddings = dequantize(file, "token_embd.weight", &embeddings, device)?;
        // Tied embeddings: the output layer reuses the token embeddings.
        let output_name = if file.has_tensor("output.weight") {
            "output.weight"
        } else {
            "token_embd.weight"
        };
        let norm = file
            .tensor("output_norm.weight", device)?
            .dequantize(device)?;

        let mut dense_layers = Vec::new();
        let mut eight_bit_layers = Vec::new();
        for i in 0..config.layers {
            let name = |part: &str| format!("blk.{i}.{part}.weight");
            let attn_norm = file
                .tensor(&name("attn_norm"), device)?
                .dequantize(device)?;
            let ffn_norm = file.tensor(&name("ffn_norm"), device)?.dequantize(device)?;
            let parts = [
                "attn_q",
                "attn_k",
                "attn_v",
                "attn_output",
                "ffn_gate",
                "ffn_up",
                "ffn_down",
            ];

            if wants_dense {
                let mut m = Vec::with_capacity(parts.len());
                for part in parts {
                    m.push(dense_matrix(file, &name(part), format, device)?);
                }
                let mut m = m.into_iter();
                let mut next = || m.next().expect("seven projections");
                dense_layers.push(DenseLayer {
                    attn_norm: attn_norm.clone(),
                    q: next(),
                    k: next(),
                    v: next(),
                    o: next(),
                    ffn_norm: ffn_norm.clone(),
                    gate: next(),
                    up: next(),
                    down: next(),
                });
            }
            if wants_eight_bit {
                let mut m = Vec::with_capacity(parts.len());
                for part in parts {
                    m.push(eight_bit_matrix(file, &name(part), device)?);
                }
                eight_bit_layers.push(Q8Layer::new(m, vector(&attn_norm)?, vector(&ffn_norm)?));
            }
        }

        let dense = match wants_dense {
            true => Some(DenseWeights {
                layers: dense_layers,
                norm: norm.clone(),
                output: dense_matrix(file, output_name, format, device)?,
            }),
            false => None,
        };
        let eight_bit = match wants_eight_bit {
            true => Some(Q8Weights {
                layers: eight_bit_layers,
                norm: vector(&norm)?,
                output: eight_bit_matrix(file, output_name, device)?,
            }),
            false => None,
        };

        let rotary = Rotary::new(&config);
        let (cos, sin) = rotary.tensors(device)?;
        Ok(Self {
            config,
            embeddings,
            dense,
            eight_bit,
            cos,
            sin,
            rotary,
            device: device.clone(),
        })
    }

    /// Returns an empty cache with room for `capacity` positions.
    pub fn new_cache(&self, capacity: usize) -> SequenceCache {
        let capacity = capacity.max(1);
        let size = self.config.kv_heads * capacity * self.config.head_dim;
        SequenceCache {
            keys: (0..self.config.layers).map(|_| vec![0f32; size]).collect(),
            values: (0..self.config.layers).map(|_| vec![0f32; size]).collect(),
            capacity,
            position: 0,
        }
    }

    /// Runs the new tokens of several sequences through the model and returns the logits of
    /// each sequence's last new token, one row per sequence, as `f32` vectors. Decoding steps
    /// (one new token per sequence) use the 8-bit weights where the format has them; prompt
    /// steps use the dense weights where the format has them.
    pub fn forward(&self, batch: &mut [(&[u32], &mut SequenceCache)]) -> Result<Vec<Vec<f32>>> {
        let config = &self.config;
        if batch.iter().any(|(tokens, _)| tokens.is_empty()) {
            return Err(LocalError::Setting("a sequence has no new tokens".into()));
        }
        for (tokens, cache) in batch.iter() {
            let end = cache.position + tokens.len();
            if end > config.context_length || end > cache.capacity {
                return Err(LocalError::PromptTooLong {
                    prompt: end,
                    max_tokens: 0,
                    context: config.context_length.min(cache.capacity),
                });
            }
        }

        let ids: Vec<u32> = batch.iter().flat_map(|(t, _)| t.iter().copied()).collect();
        let ids = Tensor::new(ids.as_slice(), &self.device)?;
        let x = self.embeddings.index_select(&ids, 0)?;
        let decoding = batch.iter().all(|(tokens, _)| tokens.len() == 1);

        let logits = match (&self.eight_bit, &self.dense) {
            (Some(weights), None) => {
                step::forward(weights, &self.rotary, config, vector(&x)?, batch)
            }
            (Some(weights), Some(_)) if decoding => {
                step::forward(weights, &self.rotary, config, vector(&x)?, batch)
            }
            (_, Some(weights)) => self.forward_dense(weights, x, batch)?,
            (None, None) => unreachable!("a model always has one set of weights"),
        };
        for (tokens, cache) in batch.iter_mut() {
            cache.position += tokens.len();
        }
        Ok(logits)
    }

    /// Runs every row of the step through candle's matrix products, with attention per sequence
    /// over its cache.
    fn forward_dense(
        &self,
        weights: &DenseWeights,
        mut x: Tensor,
        batch: &mut [(&[u32], &mut SequenceCache)],
    ) -> Result<Vec<Vec<f32>>> {
        let eps = self.config.rms_norm_eps as f32;
        let lengths: Vec<usize> = batch.iter().map(|(tokens, _)| tokens.len()).collect();

        for (index, layer) in weights.layers.iter().enumerate() {
            let h = candle_nn::ops::rms_norm(&x, &layer.attn_norm, eps)?;
            let q = layer.q.forward(&h)?;
            let k = layer.k.forward(&h)?;
            let v = layer.v.forward(&h)?;

            let mut outputs = Vec::with_capacity(batch.len());
            let mut row = 0;
            for ((_, cache), &len) in batch.iter_mut().zip(&lengths) {
                let out = self.attention(
                    &q.narrow(0, row, len)?,
                    &k.narrow(0, row, len)?,
                    &v.narrow(0, row, len)?,
                    cache,
                    index,
                )?;
                outputs.push(out);
                row += len;
            }
            let attended = Tensor::cat(&outputs, 0)?;
            x = (x + layer.o.forward(&attended)?)?;

            let h = candle_nn::ops::rms_norm(&x, &layer.ffn_norm, eps)?;
            let gate = candle_nn::ops::silu(&layer.gate.forward(&h)?)?;
            let up = layer.up.forward(&h)?;
            x = (x + layer.down.forward(&(gate * up)?)?)?;
        }

        let mut last = Vec::with_capacity(batch.len());
        let mut end = 0;
        for &len in &lengths {
            end += len;
            last.push((end - 1) as u32);
        }
        let last = Tensor::new(last.as_slice(), &self.device)?;
        let x = x.index_select(&last, 0)?;
        let x = candle_nn::ops::rms_norm(&x, &weights.norm, eps)?;
        let logits = weights.output.forward(&x)?.to_dtype(DType::F32)?;
        Ok(logits.to_vec2::<f32>()?)
    }

    /// Attention of one sequence's new rows over its cache, in layer `layer`.
    fn attention(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        cache: &mut SequenceCache,
        layer: usize,
    ) -> Result<Tensor> {
        let config = &self.config;
        let (len, _) = q.dims2()?;
        let head_dim = config.head_dim;
        let group = config.heads / config.kv_heads;
        let position = cache.position;

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
        cache.store(layer, &vector(&k)?, &vector(&v)?, len, head_dim);

        let total = position + len;
        let (keys, values) = cache.gather(layer, config.kv_heads, total, head_dim);
        let shape = (1, config.kv_heads, total, head_dim);
        let keys = Tensor::from_vec(keys, shape, &self.device)?;
        let values = Tensor::from_vec(values, shape, &self.device)?;

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
        let out = weights.matmul(&values)?;
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

/// Copies a tensor's values into one flat `f32` vector.
fn vector(tensor: &Tensor) -> Result<Vec<f32>> {
    Ok(tensor
        .flatten_all()?
        .to_dtype(DType::F32)?
        .to_vec1::<f32>()?)
}

/// Returns the format the weights can take. The 8-bit path runs on the CPU and needs rows of
/// whole 32-value blocks, so anything else runs with 32-bit floats.
fn usable_format(
    file: &GgufFile,
    config: &LlamaConfig,
    format: WeightFormat,
    device: &Device,
) -> Result<WeightFormat> {
    if !matches!(format, WeightFormat::Q8_0 | WeightFormat::Mixed) {
        return Ok(format);
    }
    let whole_blocks = [
        config.hidden_size,
        config.intermediate_size,
        config.heads * config.head_dim,
    ]
    .iter()
    .all(|width| width % BLOCK == 0);
    if device.is_cpu() && whole_blocks {
        return Ok(format);
    }
    tracing::warn!(
        path = %file.path().display(),
        requested = format.name(),
        "8-bit weights need the CPU and rows of whole 32-value blocks; using f32 weights"
    );
    Ok(WeightFormat::F32)
}

/// Loads one projection for the candle path, in the chosen format.
fn dense_matrix(
    file: &mut GgufFile,
    name: &str,
    format: WeightFormat,
    device: &Device,
) -> Result<QMatMul> {
    let tensor = file.tensor(name, device)?;
    Ok(match format {
        WeightFormat::Native => QMatMul::from_qtensor(tensor)?,
        _ => QMatMul::Tensor(dequantize(file, name, &tensor, device)?),
    })
}

/// Loads one projection and re-quantizes it to 8-bit blocks.
fn eight_bit_matrix(file: &mut GgufFile, name: &str, device: &Device) -> Result<Q8Matrix> {
    let tensor = file.tensor(name, device)?;
    let dense = dequantize(file, name, &tensor, device)?;
    let (rows, cols) = dense.dims2()?;
    Ok(Q8Matrix::quantize(&vector(&dense)?, rows, cols))
}
