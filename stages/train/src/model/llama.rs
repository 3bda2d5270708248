//! The llama-style decoder. Weight names follow the GGUF llama naming (`token_embd`,
//! `blk.N.attn_q`, ..., `output_norm`, `output`), so a dequantized llama-family GGUF loads into
//! it by name.
//!
//! On the CPU in `f32`, RMSNorm, rotary embeddings, the attention softmax, SwiGLU and the loss
//! run as the fused operations of [`crate::model::ops`], which have their own backward passes.
//! Elsewhere they use candle's composed forms (`softmax` over the last dimension,
//! `rms_norm_slow`, `rope_i_slow`): in candle-nn 0.11.1 the fused fast paths of these
//! operations have no backward pass and silently cut the gradient graph.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{D, DType, Device, Tensor, Var};
use candle_nn::ops::{rms_norm_slow, softmax};
use candle_nn::rotary_emb::rope_i_slow;
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::error::{Result, TrainError};
use crate::model::config::ModelConfig;
use crate::model::init::normal_tensor;
use crate::model::ops;

/// Keys and values of the positions a model has seen, one entry per block, each of shape
/// (batch, kv heads, positions, head dim).
#[derive(Clone)]
pub struct KvCache {
    blocks: Vec<Option<(Tensor, Tensor)>>,
    len: usize,
}

impl KvCache {
    /// Returns the number of cached positions.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Weights of one decoder block.
struct Block {
    attn_norm: Var,
    attn_q: Var,
    attn_k: Var,
    attn_v: Var,
    attn_output: Var,
    ffn_norm: Var,
    ffn_gate: Var,
    ffn_up: Var,
    ffn_down: Var,
}

impl Block {
    /// Returns the weights with their GGUF part names, in the order of a block's computation.
    fn parts(&self) -> [(&'static str, &Var); 9] {
        [
            ("attn_norm", &self.attn_norm),
            ("attn_q", &self.attn_q),
            ("attn_k", &self.attn_k),
            ("attn_v", &self.attn_v),
            ("attn_output", &self.attn_output),
            ("ffn_norm", &self.ffn_norm),
            ("ffn_gate", &self.ffn_gate),
            ("ffn_up", &self.ffn_up),
            ("ffn_down", &self.ffn_down),
        ]
    }
}

/// A llama-style decoder whose weights are candle variables, so it can be trained.
pub struct Llama {
    config: ModelConfig,
    device: Device,
    dtype: DType,
    token_embd: Var,
    blocks: Vec<Block>,
    output_norm: Var,
    output: Option<Var>,
    cos: Tensor,
    sin: Tensor,
    /// Whether the fused operations run (CPU and `f32` only).
    fused: bool,
    /// Weight gradients of the blocks that ran as one fused operation, until
    /// [`Llama::gradients`] collects them.
    grad_sink: ops::GradSink,
}

impl Llama {
    /// Builds a model with weights drawn from N(0, init_std²), output projections of every
    /// block scaled down by sqrt(2 * layers), and norms set to one. The same seed gives the
    /// same weights.
    pub fn new(config: &ModelConfig, seed: u64, dtype: DType, device: &Device) -> Result<Self> {
        config.validate()?;
        let mut rng = StdRng::seed_from_u64(seed);
        let mut tensors = HashMap::new();
        for (name, shape) in weight_shapes(config) {
            let tensor = if shape.len() == 1 {
                Tensor::ones(shape[0], dtype, device)?
            } else {
                let mut std = config.init_std;
                if name.ends_with("attn_output.weight") || name.ends_with("ffn_down.weight") {
                    std /= (2.0 * config.num_layers as f64).sqrt();
                }
                normal_tensor(&mut rng, &shape, std, dtype, device)?
            };
            tensors.insert(name, tensor);
        }
        Self::from_tensors(config, tensors, device)
    }

    /// Builds a model from a map of tensors named after GGUF llama weights, such as the output
    /// of `candle_core::safetensors::load` or of a dequantized GGUF file. Tensors are converted
    /// to the dtype of `token_embd.weight` and moved to `device`.
    pub fn from_tensors(
        config: &ModelConfig,
        mut tensors: HashMap<String, Tensor>,
        device: &Device,
    ) -> Result<Self> {
        config.validate()?;
        let dtype = tensors
            .get("token_embd.weight")
            .map(|t| t.dtype())
            .ok_or_else(|| TrainError::Weight {
                name: "token_embd.weight".into(),
                message: "missing from the tensor map".into(),
            })?;
        let mut take = |name: String, shape: &[usize]| -> Result<Var> {
            let tensor = tensors.remove(&name).ok_or_else(|| TrainError::Weight {
                name: name.clone(),
                message: "missing from the tensor map".into(),
            })?;
            if tensor.dims() != shape {
                return Err(TrainError::Weight {
                    name,
                    message: format!(
                        "has shape {:?}, but the model config needs {shape:?}",
                        tensor.dims()
                    ),
                });
            }
            let tensor = tensor.to_dtype(dtype)?.to_device(device)?;
            Ok(Var::from_tensor(&tensor)?)
        };

        let shapes: HashMap<String, Vec<usize>> = weight_shapes(config).into_iter().collect();
        let mut take_named = |name: &str| take(name.to_string(), &shapes[name]);
        let token_embd = take_named("token_embd.weight")?;
        let mut blocks = Vec::with_capacity(config.num_layers);
        for layer in 0..config.num_layers {
            let mut weight = |part: &str| take_named(&format!("blk.{layer}.{part}.weight"));
            blocks.push(Block {
                attn_norm: weight("attn_norm")?,
                attn_q: weight("attn_q")?,
                attn_k: weight("attn_k")?,
                attn_v: weight("attn_v")?,
                attn_output: weight("attn_output")?,
                ffn_norm: weight("ffn_norm")?,
                ffn_gate: weight("ffn_gate")?,
                ffn_up: weight("ffn_up")?,
                ffn_down: weight("ffn_down")?,
            });
        }
        let output_norm = take_named("output_norm.weight")?;
        let output = if config.tie_embeddings {
            None
        } else {
            Some(take_named("output.weight")?)
        };
        // Tied checkpoints may still carry a copy of the output layer; it is ignored.
        tensors.remove("output.weight");
        if let Some(name) = tensors.keys().next() {
            return Err(TrainError::Weight {
                name: name.clone(),
                message: format!(
                    "is not a weight of this model ({} unexpected tensors); check num_layers and tie_embeddings",
                    tensors.len()
                ),
            });
        }

        let (cos, sin) = rotary_tables(config, dtype, device)?;
        Ok(Self {
            config: config.clone(),
            device: device.clone(),
            dtype,
            token_embd,
            blocks,
            output_norm,
            output,
            fused: ops::fused(&cos),
            grad_sink: ops::GradSink::default(),
            cos,
            sin,
        })
    }

    /// Turns the fused operations on (the default where they apply: CPU and `f32`) or off, so
    /// that every operation takes candle's composed form.
    pub fn set_fused_ops(&mut self, enabled: bool) {
        self.fused = enabled && ops::fused(&self.cos);
    }

    /// Returns whether the fused operations run.
    pub fn fused_ops(&self) -> bool {
        self.fused
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Returns every weight with its GGUF name, in a fixed order.
    pub fn named_vars(&self) -> Vec<(String, &Var)> {
        let mut vars = vec![("token_embd.weight".to_string(), &self.token_embd)];
        for (layer, block) in self.blocks.iter().enumerate() {
            for (part, var) in block.parts() {
                vars.push((format!("blk.{layer}.{part}.weight"), var));
            }
        }
        vars.push(("output_norm.weight".to_string(), &self.output_norm));
        if let Some(output) = &self.output {
            vars.push(("output.weight".to_string(), output));
        }
        vars
    }

    /// Returns a copy of every weight by GGUF name, as saved in checkpoints.
    pub fn tensors(&self) -> HashMap<String, Tensor> {
        self.named_vars()
            .into_iter()
            .map(|(name, var)| {
                let copy = var
                    .as_tensor()
                    .copy()
                    .expect("copying a tensor on its device succeeds");
                (name, copy)
            })
            .collect()
    }

    /// Overwrites the weights with tensors of the same names and shapes.
    pub fn load_tensors(&self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        for (name, var) in self.named_vars() {
            let tensor = tensors.get(&name).ok_or_else(|| TrainError::Weight {
                name: name.clone(),
                message: "missing from the loaded tensors".into(),
            })?;
            if tensor.dims() != var.dims() {
                return Err(TrainError::Weight {
                    name,
                    message: format!(
                        "has shape {:?}, but the model has {:?}",
                        tensor.dims(),
                        var.dims()
                    ),
                });
            }
            var.set(&tensor.to_dtype(self.dtype)?.to_device(&self.device)?)?;
        }
        Ok(())
    }

    /// Returns the logits, shape (batch, time, vocab), for token ids of shape (batch, time).
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        self.run(ids, None)
    }

    /// Returns an empty key/value cache for [`Llama::forward_cached`].
    pub fn new_cache(&self) -> KvCache {
        KvCache {
            blocks: vec![None; self.blocks.len()],
            len: 0,
        }
    }

    /// Returns the logits of `ids` (batch, time) that follow the positions already in `cache`,
    /// and appends their keys and values to it, so that decoding one token costs one position
    /// instead of the whole context. The cached tensors carry no gradient graph.
    pub fn forward_cached(&self, ids: &Tensor, cache: &mut KvCache) -> Result<Tensor> {
        self.run(ids, Some(cache))
    }

    fn run(&self, ids: &Tensor, cache: Option<&mut KvCache>) -> Result<Tensor> {
        let x = self.hidden_states(ids, cache)?;
        let output = self.output.as_ref().unwrap_or(&self.token_embd);
        self.linear(&x, output)
    }

    /// Returns the normalized hidden states of `ids`, shape (batch, time, hidden), that the
    /// output layer turns into logits.
    fn hidden_states(&self, ids: &Tensor, mut cache: Option<&mut KvCache>) -> Result<Tensor> {
        let (batch, time) = ids.dims2()?;
        let offset = cache.as_ref().map_or(0, |c| c.len);
        if offset + time > self.config.max_seq_len {
            return Err(TrainError::Config(format!(
                "input of {} tokens is longer than model.max_seq_len {}",
                offset + time,
                self.config.max_seq_len
            )));
        }
        let hidden = self.config.hidden_size;

        let mut x = self
            .token_embd
            .as_tensor()
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((batch, time, hidden))?;
        // A single new token attends to every earlier position, so it needs no mask. The fused
        // softmax applies the mask itself.
        let mask = if time > 1 && !self.fused {
            Some(causal_mask(time, offset, self.dtype, &self.device)?)
        } else {
            None
        };
        for (index, block) in self.blocks.iter().enumerate() {
            if self.fused && cache.is_none() {
                x = self.fused_block(index, block, &x)?;
                continue;
            }
            let slot = cache.as_mut().map(|c| &mut c.blocks[index]);
            x = self.block_forward(block, &x, mask.as_ref(), offset, slot)?;
        }
        if let Some(cache) = cache {
            cache.len += time;
        }

        self.rms_norm(&x, &self.output_norm)
    }

    /// Returns the gradient of every weight that has one, by GGUF name, from the store of a
    /// backward pass and from the blocks that ran as one fused operation. Call it once after
    /// each backward pass.
    pub fn gradients(&self, store: &GradStore) -> HashMap<String, Tensor> {
        let mut grads: HashMap<String, Tensor> = self
            .named_vars()
            .into_iter()
            .filter_map(|(name, var)| store.get(var.as_tensor()).map(|g| (name, g.clone())))
            .collect();
        let fused = std::mem::take(&mut *self.grad_sink.lock().unwrap_or_else(|e| e.into_inner()));
        for (name, grad) in fused {
            let summed = match grads.remove(&name) {
                Some(previous) => (previous + grad).expect("gradients of one weight share a shape"),
                None => grad,
            };
            grads.insert(name, summed);
        }
        grads
    }

    /// Returns the mean next-token cross-entropy of sequences of shape (batch, time + 1).
    pub fn loss(&self, sequences: &Tensor) -> Result<Tensor> {
        let (_, length) = sequences.dims2()?;
        let inputs = sequences.narrow(1, 0, length - 1)?;
        let targets = sequences.narrow(1, 1, length - 1)?;
        let vocab = self.config.vocab_size;
        let targets = targets.flatten_all()?;
        if self.fused && targets.dtype() == DType::U32 {
            // The output layer and the loss as one operation: the logits stay out of the graph.
            let x = self.hidden_states(&inputs, None)?;
            let x = x.reshape(((), self.config.hidden_size))?;
            let output = self.output.as_ref().unwrap_or(&self.token_embd);
            return Ok(ops::linear_cross_entropy(&x, output.as_tensor(), &targets)?);
        }
        let logits = self.forward(&inputs)?.reshape(((), vocab))?;
        Ok(candle_nn::loss::cross_entropy(&logits, &targets)?)
    }

    fn eps(&self) -> f32 {
        self.config.rms_norm_eps as f32
    }

    fn rms_norm(&self, x: &Tensor, weight: &Var) -> Result<Tensor> {
        if self.fused {
            return Ok(ops::rms_norm(x, weight.as_tensor(), self.eps())?);
        }
        Ok(rms_norm_slow(x, weight.as_tensor(), self.eps())?)
    }

    /// Multiplies `x` of shape (..., in) by the transpose of `weight`, stored (out, in).
    fn linear(&self, x: &Tensor, weight: &Var) -> Result<Tensor> {
        if self.fused {
            return Ok(ops::linear(x, weight.as_tensor())?);
        }
        let (inputs, mut dims) = (x.dim(D::Minus1)?, x.dims().to_vec());
        let rows = x.reshape(((), inputs))?;
        let out = rows.matmul(&weight.as_tensor().t()?)?;
        *dims.last_mut().expect("x has a last dimension") = out.dim(1)?;
        Ok(out.reshape(dims)?)
    }

    /// Returns `x` of shape (batch, time, heads × dim) as (batch, heads, time, dim).
    fn split_heads(&self, x: &Tensor, heads: usize) -> Result<Tensor> {
        if self.fused {
            return Ok(ops::split_heads(x, heads)?);
        }
        let (batch, time, width) = x.dims3()?;
        Ok(x.reshape((batch, time, heads, width / heads))?
            .transpose(1, 2)?
            .contiguous()?)
    }

    /// Returns `x` of shape (batch, heads, time, dim) as (batch, time, heads × dim).
    fn merge_heads(&self, x: &Tensor) -> Result<Tensor> {
        if self.fused {
            return Ok(ops::merge_heads(x)?);
        }
        let (batch, heads, time, dim) = x.dims4()?;
        Ok(x.transpose(1, 2)?.reshape((batch, time, heads * dim))?)
    }

    fn rope(&self, x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        if self.fused {
            return Ok(ops::rope_interleaved(x, cos, sin)?);
        }
        Ok(rope_i_slow(x, cos, sin)?)
    }

    /// Runs block `index` over `x` as one fused operation, from position zero and without a
    /// cache.
    fn fused_block(&self, index: usize, block: &Block, x: &Tensor) -> Result<Tensor> {
        let parts = block.parts();
        let weights = ops::BlockWeights {
            tensors: parts.map(|(_, var)| var.as_tensor()),
            names: parts.map(|(part, _)| format!("blk.{index}.{part}.weight")),
        };
        let shape = ops::BlockShape {
            hidden: self.config.hidden_size,
            heads: self.config.num_heads,
            kv_heads: self.config.num_kv_heads,
            head_dim: self.config.head_dim(),
            ffn: self.config.intermediate_size,
            eps: self.eps(),
        };
        let sink = self.grad_sink.clone();
        Ok(ops::decoder_block(
            x, weights, shape, &self.cos, &self.sin, sink,
        )?)
    }

    /// Runs one block over `x`, whose first position is `offset`. With a cache `slot`, the
    /// keys and values of earlier positions come from it and those of `x` are appended.
    fn block_forward(
        &self,
        block: &Block,
        x: &Tensor,
        mask: Option<&Tensor>,
        offset: usize,
        slot: Option<&mut Option<(Tensor, Tensor)>>,
    ) -> Result<Tensor> {
        let time = x.dim(1)?;
        let heads = self.config.num_heads;
        let kv_heads = self.config.num_kv_heads;
        let head_dim = self.config.head_dim();

        let h = self.rms_norm(x, &block.attn_norm)?;
        let q = self.split_heads(&self.linear(&h, &block.attn_q)?, heads)?;
        let k = self.split_heads(&self.linear(&h, &block.attn_k)?, kv_heads)?;
        let v = self.split_heads(&self.linear(&h, &block.attn_v)?, kv_heads)?;
        let cos = self.cos.narrow(0, offset, time)?;
        let sin = self.sin.narrow(0, offset, time)?;
        let q = self.rope(&q, &cos, &sin)?;
        let k = self.rope(&k, &cos, &sin)?;
        let (k, v) = match slot {
            Some(slot) => {
                let (k, v) = match slot.take() {
                    Some((past_k, past_v)) => (
                        Tensor::cat(&[&past_k, &k.detach()], 2)?,
                        Tensor::cat(&[&past_v, &v.detach()], 2)?,
                    ),
                    None => (k.detach(), v.detach()),
                };
                *slot = Some((k.clone(), v.clone()));
                (k, v)
            }
            None => (k, v),
        };
        let k = repeat_kv(k, heads / kv_heads)?;
        let v = repeat_kv(v, heads / kv_heads)?;

        let scale = 1.0 / (head_dim as f64).sqrt();
        let weights = if self.fused {
            ops::causal_softmax(&q.matmul(&k.t()?)?, scale as f32, offset)?
        } else {
            let scores = (q.matmul(&k.t()?)? * scale)?;
            let scores = match mask {
                Some(mask) => scores.broadcast_add(mask)?,
                None => scores,
            };
            softmax(&scores, D::Minus1)?
        };
        let attended = self.merge_heads(&weights.matmul(&v)?)?;
        let x = (x + self.linear(&attended, &block.attn_output)?)?;

        let h = self.rms_norm(&x, &block.ffn_norm)?;
        let gate = self.linear(&h, &block.ffn_gate)?;
        let up = self.linear(&h, &block.ffn_up)?;
        let activated = if self.fused {
            ops::swiglu(&gate, &up)?
        } else {
            (gate.silu()? * up)?
        };
        let down = self.linear(&activated, &block.ffn_down)?;
        Ok((x + down)?)
    }
}

/// Returns the GGUF name and shape of every weight of a model with this config.
pub fn weight_shapes(config: &ModelConfig) -> Vec<(String, Vec<usize>)> {
    let h = config.hidden_size;
    let kv = config.num_kv_heads * config.head_dim();
    let ffn = config.intermediate_size;
    let mut shapes = vec![("token_embd.weight".to_string(), vec![config.vocab_size, h])];
    for layer in 0..config.num_layers {
        let parts: [(&str, Vec<usize>); 9] = [
            ("attn_norm", vec![h]),
            ("attn_q", vec![h, h]),
            ("attn_k", vec![kv, h]),
            ("attn_v", vec![kv, h]),
            ("attn_output", vec![h, h]),
            ("ffn_norm", vec![h]),
            ("ffn_gate", vec![ffn, h]),
            ("ffn_up", vec![ffn, h]),
            ("ffn_down", vec![h, ffn]),
        ];
        for (part, shape) in parts {
            shapes.push((format!("blk.{layer}.{part}.weight"), shape));
        }
    }
    shapes.push(("output_norm.weight".to_string(), vec![h]));
    if !config.tie_embeddings {
        shapes.push(("output.weight".to_string(), vec![config.vocab_size, h]));
    }
    shapes
}

/// Repeats each key/value head `times` times along the head axis for grouped-query attention.
fn repeat_kv(x: Tensor, times: usize) -> Result<Tensor> {
    if times == 1 {
        return Ok(x);
    }
    let (batch, heads, time, dim) = x.dims4()?;
    Ok(x.unsqueeze(2)?
        .expand((batch, heads, times, time, dim))?
        .reshape((batch, heads * times, time, dim))?)
}

/// Returns a (time, offset + time) mask for `time` new positions after `offset` earlier ones:
/// zero where a position may attend and a large negative number over later positions. A finite
/// value keeps the softmax backward pass free of NaN.
fn causal_mask(time: usize, offset: usize, dtype: DType, device: &Device) -> Result<Tensor> {
    let width = offset + time;
    let values: Vec<f32> = (0..time)
        .flat_map(|i| (0..width).map(move |j| if j > offset + i { -1e9 } else { 0.0 }))
        .collect();
    Ok(Tensor::from_vec(values, (time, width), device)?.to_dtype(dtype)?)
}

/// Returns the cosine and sine tables, shape (max_seq_len, head_dim / 2), of the interleaved
/// rotary embeddings: pair i of a head rotates by position * theta^(-2i / head_dim).
fn rotary_tables(config: &ModelConfig, dtype: DType, device: &Device) -> Result<(Tensor, Tensor)> {
    let half = config.head_dim() / 2;
    let positions = config.max_seq_len;
    let mut cos = Vec::with_capacity(positions * half);
    let mut sin = Vec::with_capacity(positions * half);
    for position in 0..positions {
        for i in 0..half {
            let frequency = config
                .rope_theta
                .powf(-2.0 * i as f64 / config.head_dim() as f64);
            let angle = position as f64 * frequency;
            cos.push(angle.cos());
            sin.push(angle.sin());
        }
    }
    let cos = Tensor::from_vec(cos, (positions, half), device)?.to_dtype(dtype)?;
    let sin = Tensor::from_vec(sin, (positions, half), device)?.to_dtype(dtype)?;
    Ok((cos, sin))
}
