//! A whole decoder block as one operation with a hand-written backward pass, for training on
//! the CPU in `f32`.
//!
//! Candle's backward pass gives every node of the graph a zeroed gradient buffer and adds each
//! contribution into it. A block built from single operations therefore costs a dozen
//! allocations, fills and additions over its activations on top of the arithmetic. Here the block is one
//! node: its forward pass keeps the activations its backward pass needs, and the backward pass
//! computes the input gradient for candle and hands the weight gradients to a [`GradSink`].

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::linear::{View, multiply, product};
use super::rms_norm::{add_weight_grad_row, input_grad_row, inverse_rms, normalize_row};
use super::rotary::rotate;
use super::softmax::{softmax_grad_in_place, softmax_in_place};
use super::swiglu::sigmoid;
use super::{ROWS_PER_TASK, values};

/// Query or key rows per tile of the attention products: the tiles on the diagonal and left
/// of it are computed, those right of it (masked) are skipped.
const TILE: usize = 32;

/// Weight gradients from the backward passes of blocks, by weight name, until collected.
pub type GradSink = Arc<Mutex<Vec<(String, Tensor)>>>;

/// Sizes of a decoder block.
#[derive(Clone, Copy, Debug)]
pub struct BlockShape {
    pub hidden: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub ffn: usize,
    pub eps: f32,
}

/// The nine weights of a block in the order attention norm, query, key, value, attention
/// output, feed-forward norm, gate, up, down, each with its name.
pub struct BlockWeights<'a> {
    pub tensors: [&'a Tensor; 9],
    pub names: [String; 9],
}

/// Runs the block on `x` of shape (batch, time, hidden), the positions starting at zero, with
/// rotary tables `cos` and `sin` of shape (at least time, head_dim / 2).
pub fn decoder_block(
    x: &Tensor,
    weights: BlockWeights,
    shape: BlockShape,
    cos: &Tensor,
    sin: &Tensor,
    sink: GradSink,
) -> candle_core::Result<Tensor> {
    let time = x.dim(1)?;
    let flat = |t: &Tensor| -> candle_core::Result<Vec<f32>> { t.flatten_all()?.to_vec1::<f32>() };
    let [attn_norm, q, k, v, output, ffn_norm, gate, up, down] = weights.tensors;
    let op = Block {
        shape,
        attn_norm: flat(attn_norm)?,
        qkv: [flat(q)?, flat(k)?, flat(v)?].concat(),
        output: flat(output)?,
        ffn_norm: flat(ffn_norm)?,
        gate_up: [flat(gate)?, flat(up)?].concat(),
        down: flat(down)?,
        cos: flat(&cos.narrow(0, 0, time)?)?,
        sin: flat(&sin.narrow(0, 0, time)?)?,
        names: weights.names,
        saved: Mutex::new(None),
        sink,
    };
    let expected = [
        shape.hidden,
        shape.hidden * shape.hidden,
        shape.hidden * (shape.hidden + 2 * shape.kv_heads * shape.head_dim),
    ];
    if op.attn_norm.len() != expected[0]
        || op.output.len() != expected[1]
        || op.qkv.len() != expected[2]
    {
        candle_core::bail!("decoder-block weights do not match the block shape {shape:?}")
    }
    x.contiguous()?.apply_op1(op)
}

/// Activations that the forward pass keeps for the backward pass.
struct Saved {
    batch: usize,
    time: usize,
    x: Vec<f32>,
    attn_r: Vec<f32>,
    h1: Vec<f32>,
    /// Queries, keys and values per row, queries and keys rotated.
    qkv: Vec<f32>,
    /// Attention probabilities, (batch, heads, time, time).
    probs: Vec<f32>,
    attended: Vec<f32>,
    x2: Vec<f32>,
    ffn_r: Vec<f32>,
    h2: Vec<f32>,
    /// Gate then up values per row.
    gate_up: Vec<f32>,
    activated: Vec<f32>,
}

struct Block {
    shape: BlockShape,
    attn_norm: Vec<f32>,
    /// Query, key and value rows stacked, (hidden + 2 kv width) x hidden.
    qkv: Vec<f32>,
    output: Vec<f32>,
    ffn_norm: Vec<f32>,
    /// Gate rows then up rows, (2 ffn) x hidden.
    gate_up: Vec<f32>,
    down: Vec<f32>,
    cos: Vec<f32>,
    sin: Vec<f32>,
    names: [String; 9],
    saved: Mutex<Option<Saved>>,
    sink: GradSink,
}

/// Normalizes each row of `x` (width `n`) by `weight` into a new buffer; returns it and the
/// rows' inverse RMS.
fn norm_rows(x: &[f32], weight: &[f32], n: usize, eps: f32) -> (Vec<f32>, Vec<f32>) {
    let mut out = vec![0f32; x.len()];
    let mut inverse = vec![0f32; x.len() / n];
    out.par_chunks_mut(n * ROWS_PER_TASK)
        .zip(x.par_chunks(n * ROWS_PER_TASK))
        .zip(inverse.par_chunks_mut(ROWS_PER_TASK))
        .for_each(|((out, x), inverse)| {
            let rows = out.chunks_exact_mut(n).zip(x.chunks_exact(n));
            for ((out, x), r) in rows.zip(inverse.iter_mut()) {
                *r = inverse_rms(x, eps);
                normalize_row(x, weight, *r, out);
            }
        });
    (out, inverse)
}

/// Returns the input gradient of a norm over rows of `x` for output gradient `grad`, plus
/// `residual` when given, and the weight gradient.
fn norm_backward(
    x: &[f32],
    weight: &[f32],
    grad: &[f32],
    inverse: &[f32],
    residual: &[f32],
    n: usize,
) -> (Vec<f32>, Vec<f32>) {
    let mut out = vec![0f32; x.len()];
    let chunk = n * ROWS_PER_TASK;
    // Weight-gradient partials of fixed row ranges, added in order: the same result every run.
    let partials: Vec<Vec<f32>> = out
        .par_chunks_mut(chunk)
        .zip(x.par_chunks(chunk))
        .zip(grad.par_chunks(chunk))
        .zip(
            inverse
                .par_chunks(ROWS_PER_TASK)
                .zip(residual.par_chunks(chunk)),
        )
        .map(|(((out, x), grad), (inverse, residual))| {
            let mut scratch = vec![0f32; n];
            let mut partial = vec![0f32; n];
            let rows = out
                .chunks_exact_mut(n)
                .zip(x.chunks_exact(n))
                .zip(grad.chunks_exact(n));
            for ((((out, x), g), &r), res) in rows.zip(inverse).zip(residual.chunks_exact(n)) {
                input_grad_row(x, weight, g, r, out, &mut scratch);
                out.iter_mut().zip(res).for_each(|(o, r)| *o += r);
                add_weight_grad_row(x, g, r, &mut partial);
            }
            partial
        })
        .collect();
    let mut weight_grad = vec![0f32; n];
    for partial in &partials {
        weight_grad
            .iter_mut()
            .zip(partial)
            .for_each(|(w, p)| *w += p);
    }
    (out, weight_grad)
}

impl Block {
    fn qkv_width(&self) -> usize {
        self.shape.hidden + 2 * self.shape.kv_heads * self.shape.head_dim
    }

    /// Returns the rotary cosines and sines of position `t`.
    fn tables(&self, t: usize) -> (&[f32], &[f32]) {
        let half = self.shape.head_dim / 2;
        (
            &self.cos[t * half..(t + 1) * half],
            &self.sin[t * half..(t + 1) * half],
        )
    }

    /// Returns the offsets in a row of `qkv` of head `h`'s query, key and value.
    fn head_offsets(&self, h: usize) -> (usize, usize, usize) {
        let s = self.shape;
        let kv_head = h / (s.heads / s.kv_heads);
        let kv_width = s.kv_heads * s.head_dim;
        (
            h * s.head_dim,
            s.hidden + kv_head * s.head_dim,
            s.hidden + kv_width + kv_head * s.head_dim,
        )
    }

    fn forward(&self, x: &[f32], batch: usize, time: usize) -> (Vec<f32>, Saved) {
        let s = self.shape;
        let (c, d, rows) = (s.hidden, s.head_dim, batch * time);
        let width = self.qkv_width();
        let scale = 1.0 / (d as f32).sqrt();

        let (h1, attn_r) = norm_rows(x, &self.attn_norm, c, s.eps);
        let mut qkv = product(
            (rows, width, c),
            View::rows(&h1, c),
            View::transposed(&self.qkv, c),
            true,
        );
        let rotated = c + s.kv_heads * d;
        qkv.par_chunks_mut(width)
            .enumerate()
            .for_each(|(row, values)| {
                let (cos, sin) = self.tables(row % time);
                rotate(&mut values[..rotated], cos, sin, false);
            });

        let mut probs = vec![0f32; batch * s.heads * time * time];
        let heads_out: Vec<Vec<f32>> = probs
            .par_chunks_mut(time * time)
            .enumerate()
            .map(|(bh, p)| {
                let (b, h) = (bh / s.heads, bh % s.heads);
                let (qo, ko, vo) = self.head_offsets(h);
                let base = b * time * width;
                // Query rows `start..end` see keys `0..end` at most, so later keys are skipped.
                let mut out = vec![0f32; time * d];
                for start in (0..time).step_by(TILE) {
                    let end = (start + TILE).min(time);
                    let q = View::rows(&qkv[base + start * width + qo..], width);
                    let k = View::transposed(&qkv[base + ko..], width);
                    multiply(
                        &mut p[start * time..],
                        time,
                        false,
                        (end - start, end, d),
                        q,
                        k,
                        false,
                    );
                    for (i, row) in p[start * time..end * time]
                        .chunks_exact_mut(time)
                        .enumerate()
                    {
                        softmax_in_place(row, scale, start + i + 1);
                    }
                    let probs = View::rows(&p[start * time..], time);
                    let v = View::rows(&qkv[base + vo..], width);
                    multiply(
                        &mut out[start * d..],
                        d,
                        false,
                        (end - start, d, end),
                        probs,
                        v,
                        false,
                    );
                }
                out
            })
            .collect();
        let mut attended = vec![0f32; rows * c];
        for (bh, out) in heads_out.iter().enumerate() {
            let (b, h) = (bh / s.heads, bh % s.heads);
            for (t, head_row) in out.chunks_exact(d).enumerate() {
                let start = (b * time + t) * c + h * d;
                attended[start..start + d].copy_from_slice(head_row);
            }
        }

        let mut x2 = x.to_vec();
        multiply(
            &mut x2,
            c,
            true,
            (rows, c, c),
            View::rows(&attended, c),
            View::transposed(&self.output, c),
            true,
        );
        let (h2, ffn_r) = norm_rows(&x2, &self.ffn_norm, c, s.eps);
        let gate_up = product(
            (rows, 2 * s.ffn, c),
            View::rows(&h2, c),
            View::transposed(&self.gate_up, c),
            true,
        );
        let mut activated = vec![0f32; rows * s.ffn];
        activated
            .par_chunks_mut(s.ffn)
            .zip(gate_up.par_chunks(2 * s.ffn))
            .for_each(|(a, gu)| {
                let (gate, up) = gu.split_at(s.ffn);
                for ((a, &g), &u) in a.iter_mut().zip(gate).zip(up) {
                    *a = g * sigmoid(g) * u;
                }
            });
        let mut out = x2.clone();
        multiply(
            &mut out,
            c,
            true,
            (rows, c, s.ffn),
            View::rows(&activated, s.ffn),
            View::transposed(&self.down, s.ffn),
            true,
        );

        let saved = Saved {
            batch,
            time,
            x: x.to_vec(),
            attn_r,
            h1,
            qkv,
            probs,
            attended,
            x2,
            ffn_r,
            h2,
            gate_up,
            activated,
        };
        (out, saved)
    }

    /// Returns the input gradient and the nine weight gradients in the order of `names`.
    fn backward(&self, saved: &Saved, grad: &[f32]) -> (Vec<f32>, [Vec<f32>; 9]) {
        let s = self.shape;
        let (batch, time) = (saved.batch, saved.time);
        let (c, d, f, rows) = (s.hidden, s.head_dim, s.ffn, batch * time);
        let width = self.qkv_width();
        let scale = 1.0 / (d as f32).sqrt();

        // Feed-forward: out = x2 + down(silu(gate) * up) of norm(x2).
        let d_act = product(
            (rows, f, c),
            View::rows(grad, c),
            View::rows(&self.down, f),
            true,
        );
        let d_down = product(
            (c, f, rows),
            View::transposed(grad, c),
            View::rows(&saved.activated, f),
            true,
        );
        let mut d_gate_up = vec![0f32; rows * 2 * f];
        d_gate_up
            .par_chunks_mut(2 * f)
            .zip(saved.gate_up.par_chunks(2 * f))
            .zip(d_act.par_chunks(f))
            .for_each(|((dgu, gu), da)| {
                let (d_gate, d_up) = dgu.split_at_mut(f);
                let (gate, up) = gu.split_at(f);
                for i in 0..f {
                    let sg = sigmoid(gate[i]);
                    d_gate[i] = da[i] * up[i] * sg * (1.0 + gate[i] * (1.0 - sg));
                    d_up[i] = da[i] * gate[i] * sg;
                }
            });
        let dh2 = product(
            (rows, c, 2 * f),
            View::rows(&d_gate_up, 2 * f),
            View::rows(&self.gate_up, c),
            true,
        );
        let d_gate_up_w = product(
            (2 * f, c, rows),
            View::transposed(&d_gate_up, 2 * f),
            View::rows(&saved.h2, c),
            true,
        );
        let (dx2, d_ffn_norm) =
            norm_backward(&saved.x2, &self.ffn_norm, &dh2, &saved.ffn_r, grad, c);

        // Attention: x2 = x + output(attention(rotated q, k, v of norm(x))).
        let d_att = product(
            (rows, c, c),
            View::rows(&dx2, c),
            View::rows(&self.output, c),
            true,
        );
        let d_output = product(
            (c, c, rows),
            View::transposed(&dx2, c),
            View::rows(&saved.attended, c),
            true,
        );
        let heads_grad: Vec<[Vec<f32>; 3]> = (0..batch * s.heads)
            .into_par_iter()
            .map(|bh| {
                let (b, h) = (bh / s.heads, bh % s.heads);
                let (qo, ko, vo) = self.head_offsets(h);
                let base = b * time * width;
                let p = &saved.probs[bh * time * time..(bh + 1) * time * time];
                let q_rows =
                    |from: usize| View::rows(&saved.qkv[base + from * width + qo..], width);
                let d_out = |from: usize| View::rows(&d_att[(b * time + from) * c + h * d..], c);

                // Query rows `start..end`: gradients of their probabilities, scores and queries,
                // over keys `0..end` only.
                let mut dp = vec![0f32; time * time];
                let mut dq = vec![0f32; time * d];
                for start in (0..time).step_by(TILE) {
                    let end = (start + TILE).min(time);
                    let v = View::transposed(&saved.qkv[base + vo..], width);
                    multiply(
                        &mut dp[start * time..],
                        time,
                        false,
                        (end - start, end, d),
                        d_out(start),
                        v,
                        false,
                    );
                    let rows = dp[start * time..end * time].chunks_exact_mut(time);
                    for (i, (g, y)) in rows
                        .zip(p[start * time..end * time].chunks_exact(time))
                        .enumerate()
                    {
                        softmax_grad_in_place(y, g, scale, start + i + 1);
                    }
                    let scores = View::rows(&dp[start * time..], time);
                    let k = View::rows(&saved.qkv[base + ko..], width);
                    multiply(
                        &mut dq[start * d..],
                        d,
                        false,
                        (end - start, d, end),
                        scores,
                        k,
                        false,
                    );
                }

                // Key rows `start..end`: gradients of keys and values, from queries
                // `start..time` only.
                let mut dk = vec![0f32; time * d];
                let mut dv = vec![0f32; time * d];
                for start in (0..time).step_by(TILE) {
                    let (end, queries) = ((start + TILE).min(time), time - start);
                    let probs = View::transposed(&p[start * time + start..], time);
                    multiply(
                        &mut dv[start * d..],
                        d,
                        false,
                        (end - start, d, queries),
                        probs,
                        d_out(start),
                        false,
                    );
                    let scores = View::transposed(&dp[start * time + start..], time);
                    multiply(
                        &mut dk[start * d..],
                        d,
                        false,
                        (end - start, d, queries),
                        scores,
                        q_rows(start),
                        false,
                    );
                }
                for t in 0..time {
                    let (cos, sin) = self.tables(t);
                    rotate(&mut dq[t * d..(t + 1) * d], cos, sin, true);
                    rotate(&mut dk[t * d..(t + 1) * d], cos, sin, true);
                }
                [dq, dk, dv]
            })
            .collect();
        let mut d_qkv = vec![0f32; rows * width];
        for (bh, [dq, dk, dv]) in heads_grad.iter().enumerate() {
            let (b, h) = (bh / s.heads, bh % s.heads);
            let (qo, ko, vo) = self.head_offsets(h);
            for t in 0..time {
                let row = &mut d_qkv[(b * time + t) * width..(b * time + t + 1) * width];
                let span = t * d..(t + 1) * d;
                row[qo..qo + d].copy_from_slice(&dq[span.clone()]);
                row[ko..ko + d]
                    .iter_mut()
                    .zip(&dk[span.clone()])
                    .for_each(|(r, g)| *r += g);
                row[vo..vo + d]
                    .iter_mut()
                    .zip(&dv[span])
                    .for_each(|(r, g)| *r += g);
            }
        }
        let dh1 = product(
            (rows, c, width),
            View::rows(&d_qkv, width),
            View::rows(&self.qkv, c),
            true,
        );
        let d_qkv_w = product(
            (width, c, rows),
            View::transposed(&d_qkv, width),
            View::rows(&saved.h1, c),
            true,
        );
        let (dx, d_attn_norm) =
            norm_backward(&saved.x, &self.attn_norm, &dh1, &saved.attn_r, &dx2, c);

        let kv = s.kv_heads * d * c;
        let mut qkv_parts = d_qkv_w;
        let v_part = qkv_parts.split_off(c * c + kv);
        let k_part = qkv_parts.split_off(c * c);
        let mut gate_part = d_gate_up_w;
        let up_part = gate_part.split_off(f * c);
        (
            dx,
            [
                d_attn_norm,
                qkv_parts,
                k_part,
                v_part,
                d_output,
                d_ffn_norm,
                gate_part,
                up_part,
                d_down,
            ],
        )
    }
}

impl CustomOp1 for Block {
    fn name(&self) -> &'static str {
        "decoder-block"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = values(storage, layout, self.name())?;
        let (batch, time, hidden) = layout.shape().dims3()?;
        if hidden != self.shape.hidden || self.cos.len() != time * self.shape.head_dim / 2 {
            candle_core::bail!(
                "decoder-block input {:?} does not match the block",
                layout.dims()
            )
        }
        let (out, saved) = self.forward(x, batch, time);
        *self.saved.lock().unwrap_or_else(|e| e.into_inner()) = Some(saved);
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let Some(saved) = self.saved.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            candle_core::bail!("decoder-block backward ran twice for one forward pass")
        };
        let grad = grad.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let (dx, weight_grads) = self.backward(&saved, &grad);
        let s = self.shape;
        let kv = s.kv_heads * s.head_dim;
        let shapes: [(usize, usize); 9] = [
            (1, s.hidden),
            (s.hidden, s.hidden),
            (kv, s.hidden),
            (kv, s.hidden),
            (s.hidden, s.hidden),
            (1, s.hidden),
            (s.ffn, s.hidden),
            (s.ffn, s.hidden),
            (s.hidden, s.ffn),
        ];
        let mut sink = self.sink.lock().unwrap_or_else(|e| e.into_inner());
        for ((name, values), (rows, cols)) in self.names.iter().zip(weight_grads).zip(shapes) {
            let tensor = if rows == 1 {
                Tensor::from_vec(values, cols, x.device())?
            } else {
                Tensor::from_vec(values, (rows, cols), x.device())?
            };
            sink.push((name.clone(), tensor));
        }
        Ok(Some(Tensor::from_vec(dx, x.shape(), x.device())?))
    }
}
