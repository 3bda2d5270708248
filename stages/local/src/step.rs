//! The 8-bit path: a model step computed on plain `f32` slices with the [`Q8Matrix`] product,
//! without building candle tensors per sequence and per layer.
//!
//! A decoding step of eight sequences through candle runs a few thousand small tensor
//! operations for attention alone; here attention is one loop per (sequence, head) pair, run
//! in parallel. Every value of a sequence is computed the same way whatever else is in the
//! step, so batching never changes a request's text.

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use crate::config::LlamaConfig;
use crate::error::Result;
use crate::exp::exp;
use crate::model::SequenceCache;
use crate::q8::Q8Matrix;

/// One decoder layer in 8-bit blocks, with the projections that read the same input fused.
pub struct Q8Layer {
    attn_norm: Vec<f32>,
    /// Query, key and value rows, in that order.
    qkv: Q8Matrix,
    output: Q8Matrix,
    ffn_norm: Vec<f32>,
    /// Gate rows then up rows.
    gate_up: Q8Matrix,
    down: Q8Matrix,
}

impl Q8Layer {
    /// Builds a layer from its seven projections in the order q, k, v, output, gate, up, down.
    pub fn new(projections: Vec<Q8Matrix>, attn_norm: Vec<f32>, ffn_norm: Vec<f32>) -> Self {
        let [q, k, v, output, gate, up, down]: [Q8Matrix; 7] = projections
            .try_into()
            .unwrap_or_else(|_| panic!("a layer has seven projections"));
        Self {
            attn_norm,
            qkv: Q8Matrix::stack(&[q, k, v]),
            output,
            ffn_norm,
            gate_up: Q8Matrix::stack(&[gate, up]),
            down,
        }
    }
}

/// Every layer plus the final norm and the output projection.
pub struct Q8Weights {
    pub layers: Vec<Q8Layer>,
    pub norm: Vec<f32>,
    pub output: Q8Matrix,
}

/// Interleaved rotary tables, `[position][pair]`.
pub struct Rotary {
    cos: Vec<f32>,
    sin: Vec<f32>,
    pairs: usize,
}

impl Rotary {
    pub fn new(config: &LlamaConfig) -> Self {
        let pairs = config.head_dim / 2;
        let inverse: Vec<f32> = (0..pairs)
            .map(|i| {
                1.0 / config
                    .rope_theta
                    .powf(2.0 * i as f32 / config.head_dim as f32)
            })
            .collect();
        let mut cos = Vec::with_capacity(config.context_length * pairs);
        let mut sin = Vec::with_capacity(config.context_length * pairs);
        for position in 0..config.context_length {
            for &frequency in &inverse {
                let angle = position as f32 * frequency;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        Self { cos, sin, pairs }
    }

    /// Returns the same tables as `[position, pair]` tensors for candle's rotary embedding.
    pub fn tensors(&self, device: &Device) -> Result<(Tensor, Tensor)> {
        let positions = self.cos.len() / self.pairs;
        Ok((
            Tensor::from_slice(&self.cos, (positions, self.pairs), device)?,
            Tensor::from_slice(&self.sin, (positions, self.pairs), device)?,
        ))
    }

    /// Rotates the adjacent pairs of each head of `row` for `position`.
    fn apply(&self, row: &mut [f32], position: usize) {
        let cos = &self.cos[position * self.pairs..(position + 1) * self.pairs];
        let sin = &self.sin[position * self.pairs..(position + 1) * self.pairs];
        for head in row.chunks_exact_mut(2 * self.pairs) {
            for ((pair, &c), &s) in head.chunks_exact_mut(2).zip(cos).zip(sin) {
                let (a, b) = (pair[0], pair[1]);
                pair[0] = a * c - b * s;
                pair[1] = a * s + b * c;
            }
        }
    }
}

/// Runs the new tokens of `batch` (embedded as the rows of `x`) through every layer, writes
/// their keys and values into the caches (without moving the caches' positions) and returns
/// the logits of each sequence's last new token.
pub fn forward(
    weights: &Q8Weights,
    rotary: &Rotary,
    config: &LlamaConfig,
    mut x: Vec<f32>,
    batch: &mut [(&[u32], &mut SequenceCache)],
) -> Vec<Vec<f32>> {
    let hidden = config.hidden_size;
    let head_dim = config.head_dim;
    let q_width = config.heads * head_dim;
    let kv_width = config.kv_heads * head_dim;
    let eps = config.rms_norm_eps as f32;
    let rows = x.len() / hidden;
    let spans = spans(batch);

    for (layer_index, layer) in weights.layers.iter().enumerate() {
        let h = rms_norm(&x, &layer.attn_norm, eps);
        let mut qkv = layer.qkv.matmul(&h, rows);
        let width = q_width + 2 * kv_width;

        // Rotate the queries and keys, then store the keys and values.
        for (span, (_, cache)) in spans.iter().zip(batch.iter_mut()) {
            let mut keys = vec![0f32; span.len * kv_width];
            let mut values = vec![0f32; span.len * kv_width];
            for r in 0..span.len {
                let row = &mut qkv[(span.start + r) * width..(span.start + r + 1) * width];
                let (q, kv) = row.split_at_mut(q_width);
                let (k, v) = kv.split_at_mut(kv_width);
                rotary.apply(q, span.position + r);
                rotary.apply(k, span.position + r);
                // The cache wants `[kv head][new position][head dim]`.
                for head in 0..config.kv_heads {
                    let to = (head * span.len + r) * head_dim;
                    let from = head * head_dim..(head + 1) * head_dim;
                    keys[to..to + head_dim].copy_from_slice(&k[from.clone()]);
                    values[to..to + head_dim].copy_from_slice(&v[from]);
                }
            }
            cache.store(layer_index, &keys, &values, span.len, head_dim);
        }

        let attended = attention(config, &qkv, &spans, batch, layer_index);
        add_into(&mut x, &layer.output.matmul(&attended, rows));

        let h = rms_norm(&x, &layer.ffn_norm, eps);
        let gate_up = layer.gate_up.matmul(&h, rows);
        let inner = config.intermediate_size;
        let mut activated = vec![0f32; rows * inner];
        for (out, row) in activated
            .chunks_exact_mut(inner)
            .zip(gate_up.chunks_exact(2 * inner))
        {
            let (gate, up) = row.split_at(inner);
            for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
                *o = g / (1.0 + exp(-g)) * u;
            }
        }
        add_into(&mut x, &layer.down.matmul(&activated, rows));
    }

    let mut last = Vec::with_capacity(spans.len() * hidden);
    for span in &spans {
        let row = span.start + span.len - 1;
        last.extend_from_slice(&x[row * hidden..(row + 1) * hidden]);
    }
    let last = rms_norm(&last, &weights.norm, eps);
    let logits = weights.output.matmul(&last, spans.len());
    logits
        .chunks_exact(weights.output.rows())
        .map(<[f32]>::to_vec)
        .collect()
}

/// The place of a sequence's new rows in the step.
struct Span {
    start: usize,
    len: usize,
    position: usize,
}

fn spans(batch: &[(&[u32], &mut SequenceCache)]) -> Vec<Span> {
    let mut start = 0;
    batch
        .iter()
        .map(|(tokens, cache)| {
            let span = Span {
                start,
                len: tokens.len(),
                position: cache.position,
            };
            start += tokens.len();
            span
        })
        .collect()
}

/// Attention of every new row over its sequence's cache, one task per (sequence, query head).
fn attention(
    config: &LlamaConfig,
    qkv: &[f32],
    spans: &[Span],
    batch: &[(&[u32], &mut SequenceCache)],
    layer: usize,
) -> Vec<f32> {
    let head_dim = config.head_dim;
    let q_width = config.heads * head_dim;
    let width = q_width + 2 * config.kv_heads * head_dim;
    let group = config.heads / config.kv_heads;
    let scale = 1.0 / (head_dim as f32).sqrt();

    let tasks: Vec<(usize, usize)> = (0..spans.len())
        .flat_map(|s| (0..config.heads).map(move |h| (s, h)))
        .collect();
    let vector = vector_instructions();
    let results: Vec<Vec<f32>> = tasks
        .par_iter()
        .map(|&(s, head)| {
            let span = &spans[s];
            let cache = &*batch[s].1;
            let kv_head = head / group;
            let base = kv_head * cache.capacity * head_dim;
            let head = Head {
                qkv,
                width,
                column: head * head_dim,
                head_dim,
                keys: &cache.keys[layer][base..],
                values: &cache.values[layer][base..],
                scale,
            };
            if vector {
                // SAFETY: `vector_instructions` checked that the CPU has AVX2 and FMA.
                #[cfg(target_arch = "x86_64")]
                return unsafe { attend_avx2(&head, span) };
            }
            attend(&head, span)
        })
        .collect();

    let rows: usize = spans.iter().map(|s| s.len).sum();
    let mut attended = vec![0f32; rows * q_width];
    for (&(s, head), out) in tasks.iter().zip(&results) {
        let span = &spans[s];
        for r in 0..span.len {
            let at = (span.start + r) * q_width + head * head_dim;
            attended[at..at + head_dim].copy_from_slice(&out[r * head_dim..(r + 1) * head_dim]);
        }
    }
    attended
}

/// One query head's view of a step: the rows of `qkv` and the cached keys and values of its
/// key/value head.
struct Head<'a> {
    qkv: &'a [f32],
    width: usize,
    /// Offset of the head's query in a row of `qkv`.
    column: usize,
    head_dim: usize,
    keys: &'a [f32],
    values: &'a [f32],
    scale: f32,
}

/// Returns the attention output of `head` for each new row of `span`, one after the other.
#[inline(always)]
fn attend(head: &Head, span: &Span) -> Vec<f32> {
    let head_dim = head.head_dim;
    let mut out = vec![0f32; span.len * head_dim];
    let mut scores = Vec::with_capacity(span.position + span.len);
    for r in 0..span.len {
        let row = (span.start + r) * head.width + head.column;
        let q = &head.qkv[row..row + head_dim];
        let visible = span.position + r + 1;

        scores.clear();
        scores.extend(
            head.keys
                .chunks_exact(head_dim)
                .take(visible)
                .map(|k| dot(q, k) * head.scale),
        );
        softmax(&mut scores);

        let out = &mut out[r * head_dim..(r + 1) * head_dim];
        for (&weight, v) in scores.iter().zip(head.values.chunks_exact(head_dim)) {
            for (o, &value) in out.iter_mut().zip(v) {
                *o += weight * value;
            }
        }
    }
    out
}

/// [`attend`] compiled for AVX2, so that its loops use 8-wide vectors.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn attend_avx2(head: &Head, span: &Span) -> Vec<f32> {
    attend(head, span)
}

/// Returns whether the AVX2 build of the attention loops can run here.
fn vector_instructions() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// RMS normalization of each row of `x`, scaled by `weight`.
fn rms_norm(x: &[f32], weight: &[f32], eps: f32) -> Vec<f32> {
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks_exact(weight.len()) {
        let mean = row.iter().map(|v| v * v).sum::<f32>() / row.len() as f32;
        let inverse = 1.0 / (mean + eps).sqrt();
        out.extend(row.iter().zip(weight).map(|(v, w)| v * inverse * w));
    }
    out
}

#[inline(always)]
fn softmax(values: &mut [f32]) {
    let largest = values.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    // Two loops, so that the first one vectorizes; the sum keeps its order.
    for v in values.iter_mut() {
        *v = exp(*v - largest);
    }
    let total: f32 = values.iter().sum();
    for v in values.iter_mut() {
        *v /= total;
    }
}

/// Dot product with eight partial sums, which the compiler turns into vector instructions.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (a_blocks, b_blocks) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a_blocks
        .remainder()
        .iter()
        .zip(b_blocks.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a_blocks.zip(b_blocks) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

fn add_into(x: &mut [f32], delta: &[f32]) {
    for (a, b) in x.iter_mut().zip(delta) {
        *a += b;
    }
}
