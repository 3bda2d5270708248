//! Moves attention heads between the layout of the projections, (batch, time, heads × dim),
//! and the layout of attention, (batch, heads, time, dim), in one copy each way. Candle's form
//! is a reshape, a transpose and a copy, three gradient nodes.

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::values;

/// Returns `x` of shape (batch, time, heads × dim) as (batch, heads, time, dim).
pub fn split_heads(x: &Tensor, heads: usize) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op1(Heads { heads, split: true })
}

/// Returns `x` of shape (batch, heads, time, dim) as (batch, time, heads × dim).
pub fn merge_heads(x: &Tensor) -> candle_core::Result<Tensor> {
    let heads = x.dim(1)?;
    x.contiguous()?.apply_op1(Heads {
        heads,
        split: false,
    })
}

/// The copy in one direction; its backward pass is the copy in the other.
struct Heads {
    heads: usize,
    split: bool,
}

impl CustomOp1 for Heads {
    fn name(&self) -> &'static str {
        if self.split {
            "split-heads"
        } else {
            "merge-heads"
        }
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = values(storage, layout, self.name())?;
        let heads = self.heads;
        let (time, dim, out_shape) = if self.split {
            let (batch, time, width) = layout.shape().dims3()?;
            if heads == 0 || width % heads != 0 {
                candle_core::bail!("split-heads: width {width} is not a multiple of {heads} heads")
            }
            let dim = width / heads;
            (time, dim, Shape::from((batch, heads, time, dim)))
        } else {
            let (batch, heads_in, time, dim) = layout.shape().dims4()?;
            if heads_in != heads {
                candle_core::bail!("merge-heads: {heads_in} heads where {heads} were expected")
            }
            (time, dim, Shape::from((batch, time, heads * dim)))
        };
        let mut out = vec![0f32; x.len()];
        // One task per batch row; inside it, row `t` of head `h` moves between
        // [t][h][..] (projection layout) and [h][t][..] (attention layout).
        out.par_chunks_mut(time * heads * dim)
            .zip(x.par_chunks(time * heads * dim))
            .for_each(|(out, x)| {
                for h in 0..heads {
                    for t in 0..time {
                        let projection = (t * heads + h) * dim;
                        let attention = (h * time + t) * dim;
                        let (to, from) = if self.split {
                            (attention, projection)
                        } else {
                            (projection, attention)
                        };
                        out[to..to + dim].copy_from_slice(&x[from..from + dim]);
                    }
                }
            });
        Ok((CpuStorage::F32(out), out_shape))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let back = Heads {
            heads: self.heads,
            split: !self.split,
        };
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(&back)?))
    }
}
