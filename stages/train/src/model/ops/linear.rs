//! The linear layer `x · weightᵀ` as one operation, forward and backward, on the `gemm` crate
//! that candle's own product uses. Candle's form of it adds a transpose and two reshapes to
//! the graph, and its backward pass allocates, zeroes and adds a gradient for each of them.

use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor};
use gemm::Parallelism;

use super::{row_len, values};

/// Returns `x · weightᵀ` for `x` of shape (..., in) and `weight` of shape (out, in), with
/// shape (..., out).
pub fn linear(x: &Tensor, weight: &Tensor) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op2(&weight.contiguous()?, Linear)
}

/// A row-major or transposed view of a matrix: element (row, col) is at
/// `row * row_stride + col * col_stride`.
#[derive(Clone, Copy)]
pub(super) struct View<'a> {
    pub values: &'a [f32],
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> View<'a> {
    /// Returns a row-major view with rows `row_stride` apart.
    pub fn rows(values: &'a [f32], row_stride: usize) -> Self {
        Self {
            values,
            row_stride,
            col_stride: 1,
        }
    }

    /// Returns the transpose of the row-major matrix with rows `row_stride` apart.
    pub fn transposed(values: &'a [f32], row_stride: usize) -> Self {
        Self {
            values,
            row_stride: 1,
            col_stride: row_stride,
        }
    }
}

/// Writes the m x n product of `lhs` (m x k) and `rhs` (k x n) into `out`, row-major with rows
/// `out_stride` apart, or adds it to what `out` holds when `accumulate`. `parallel` spreads
/// the product over rayon's threads.
pub(super) fn multiply(
    out: &mut [f32],
    out_stride: usize,
    accumulate: bool,
    dims: (usize, usize, usize),
    lhs: View,
    rhs: View,
    parallel: bool,
) {
    let (m, n, k) = dims;
    if m == 0 || n == 0 {
        return;
    }
    assert!((m - 1) * out_stride + n <= out.len(), "output in bounds");
    if k == 0 {
        if !accumulate {
            for row in 0..m {
                out[row * out_stride..row * out_stride + n].fill(0.0);
            }
        }
        return;
    }
    // SAFETY: the output fits `out` (asserted above), which is initialized.
    unsafe {
        gemm_raw(
            out.as_mut_ptr(),
            out_stride,
            accumulate,
            dims,
            lhs,
            rhs,
            parallel,
        )
    }
}

/// Returns the m x n row-major product of `lhs` (m x k) and `rhs` (k x n) in a new buffer.
pub(super) fn product(
    dims: (usize, usize, usize),
    lhs: View,
    rhs: View,
    parallel: bool,
) -> Vec<f32> {
    let (m, n, k) = dims;
    let len = m * n;
    if len == 0 || k == 0 {
        return vec![0f32; len];
    }
    let mut out: Vec<f32> = Vec::with_capacity(len);
    // SAFETY: the buffer has room for m x n values. Without `accumulate`, gemm writes every
    // one of them and reads none, so the length can then cover them.
    unsafe {
        gemm_raw(out.as_mut_ptr(), n, false, dims, lhs, rhs, parallel);
        out.set_len(len);
    }
    out
}

/// Runs gemm on a product with positive sizes.
///
/// # Safety
/// `out` must be valid for writes of `(m - 1) * out_stride + n` values, and for reads of them
/// too when `accumulate`.
unsafe fn gemm_raw(
    out: *mut f32,
    out_stride: usize,
    accumulate: bool,
    (m, n, k): (usize, usize, usize),
    lhs: View,
    rhs: View,
    parallel: bool,
) {
    assert!(m > 0, "product with no rows");
    assert!(n > 0, "product with no columns");
    assert!(k > 0, "product over an empty inner dimension");
    assert!(
        (m - 1) * lhs.row_stride + (k - 1) * lhs.col_stride < lhs.values.len()
            && (k - 1) * rhs.row_stride + (n - 1) * rhs.col_stride < rhs.values.len(),
        "matrix views in bounds"
    );
    let parallelism = if parallel {
        Parallelism::Rayon(rayon::current_num_threads())
    } else {
        Parallelism::None
    };
    // SAFETY: the assert above keeps every read inside `lhs` and `rhs`, and the caller
    // vouches for `out`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out,
            1,
            out_stride as isize,
            accumulate,
            lhs.values.as_ptr(),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.values.as_ptr(),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Returns the matrix sizes of a product of `x` (rows x inputs) by a weight (outputs x inputs).
fn sizes(
    x: &[f32],
    l1: &Layout,
    weight: &[f32],
    op: &'static str,
) -> candle_core::Result<(usize, usize, usize)> {
    let inputs = row_len(l1, op)?;
    let outputs = weight.len() / inputs;
    if outputs * inputs != weight.len() || outputs == 0 {
        candle_core::bail!(
            "{op}: a weight of {} values does not have rows of {inputs}",
            weight.len()
        )
    }
    Ok((x.len() / inputs, outputs, inputs))
}

struct Linear;

impl CustomOp2 for Linear {
    fn name(&self) -> &'static str {
        "linear"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = values(s1, l1, self.name())?;
        let weight = values(s2, l2, self.name())?;
        let (rows, outputs, inputs) = sizes(x, l1, weight, self.name())?;
        if l2.dims().len() != 2 {
            candle_core::bail!(
                "linear takes a weight of shape (out, in), got {:?}",
                l2.dims()
            )
        }
        let lhs = View {
            values: x,
            row_stride: inputs,
            col_stride: 1,
        };
        // weightᵀ: element (input, output) is weight[output * inputs + input].
        let rhs = View {
            values: weight,
            row_stride: 1,
            col_stride: inputs,
        };
        let out = product((rows, outputs, inputs), lhs, rhs, true);
        let mut dims = l1.dims().to_vec();
        *dims.last_mut().expect("x has a last dimension") = outputs;
        Ok((CpuStorage::F32(out), Shape::from(dims)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let grad_x = grad.apply_op2_no_bwd(weight, &InputGrad)?;
        let grad_weight = grad.apply_op2_no_bwd(x, &WeightGrad)?;
        Ok((Some(grad_x), Some(grad_weight)))
    }
}

/// Gradient of the input: `grad · weight`, shape (..., in).
struct InputGrad;

impl CustomOp2 for InputGrad {
    fn name(&self) -> &'static str {
        "linear-input-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let grad = values(s1, l1, self.name())?;
        let weight = values(s2, l2, self.name())?;
        let (outputs, inputs) = l2.shape().dims2()?;
        if row_len(l1, self.name())? != outputs {
            candle_core::bail!("linear-input-grad: gradient rows do not match {outputs} outputs")
        }
        let rows = grad.len() / outputs;
        let lhs = View {
            values: grad,
            row_stride: outputs,
            col_stride: 1,
        };
        let rhs = View {
            values: weight,
            row_stride: inputs,
            col_stride: 1,
        };
        let out = product((rows, inputs, outputs), lhs, rhs, true);
        let mut dims = l1.dims().to_vec();
        *dims.last_mut().expect("the gradient has a last dimension") = inputs;
        Ok((CpuStorage::F32(out), Shape::from(dims)))
    }
}

/// Gradient of the weight: `gradᵀ · x` over all rows, shape (out, in).
struct WeightGrad;

impl CustomOp2 for WeightGrad {
    fn name(&self) -> &'static str {
        "linear-weight-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let grad = values(s1, l1, self.name())?;
        let x = values(s2, l2, self.name())?;
        let outputs = row_len(l1, self.name())?;
        let inputs = row_len(l2, self.name())?;
        let rows = grad.len() / outputs;
        if x.len() != rows * inputs {
            candle_core::bail!(
                "linear-weight-grad: {rows} gradient rows but {} input values",
                x.len()
            )
        }
        // gradᵀ: element (output, row) is grad[row * outputs + output].
        let lhs = View {
            values: grad,
            row_stride: 1,
            col_stride: outputs,
        };
        let rhs = View {
            values: x,
            row_stride: inputs,
            col_stride: 1,
        };
        let out = product((outputs, inputs, rows), lhs, rhs, true);
        Ok((CpuStorage::F32(out), Shape::from((outputs, inputs))))
    }
}
