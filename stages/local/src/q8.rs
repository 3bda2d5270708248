//! 8-bit block weights (32 values and one scale per block, the GGML Q8_0 layout) and a matrix
//! product that reads each weight row once for all the rows of a step.
//!
//! With candle 0.11's quantized product, decoding eight sequences per step gained at most 1.2x
//! over one on 2 cores (measured). Here one task owns a range of weight rows and computes each
//! against every input row while the weight row is in the L1 cache. Each output value is the
//! same sequence of operations whatever the number of input rows, so a sequence's result does
//! not depend on what it is batched with.

use rayon::prelude::*;

/// Values per block.
pub const BLOCK: usize = 32;

/// Weight rows per parallel task.
const ROWS_PER_TASK: usize = 16;

/// Input rows computed together against one weight row.
const GROUP: usize = 8;

/// Returns the block scales of the input rows as `[group][block][row in group]`, with groups
/// of [`GROUP`] rows and zero past the last row. A kernel then loads a block's scales for a
/// whole group at once.
fn group_scales(input: &Q8Matrix) -> Vec<f32> {
    let blocks = input.cols / BLOCK;
    let groups = input.rows.div_ceil(GROUP);
    let mut lanes = vec![0f32; groups * blocks * GROUP];
    for row in 0..input.rows {
        let (group, lane) = (row / GROUP, row % GROUP);
        for (b, &scale) in input.block_scales(row).iter().enumerate() {
            lanes[(group * blocks + b) * GROUP + lane] = scale;
        }
    }
    lanes
}

/// One group of input rows: `input` from row `start`, with the group's block scales in `lanes`
/// as [`group_scales`] lays them out.
struct Rows<'a> {
    input: &'a Q8Matrix,
    start: usize,
    lanes: &'a [f32],
}

/// The output of a product, written by the tasks in parallel: each task owns whole weight rows,
/// so each element has one writer.
struct OutputRows {
    start: *mut f32,
    len: usize,
}

// SAFETY: tasks write disjoint elements (see `write`), and the vector outlives the tasks.
unsafe impl Sync for OutputRows {}

impl OutputRows {
    /// # Safety
    /// No other thread may write or read element `index` while the tasks run.
    unsafe fn write(&self, index: usize, value: f32) {
        assert!(index < self.len, "output index");
        // SAFETY: in bounds (checked above); exclusive by the caller's contract.
        unsafe { *self.start.add(index) = value };
    }
}

/// A matrix of `rows` x `cols` 8-bit values, one `f32` scale per block of a row.
#[derive(Clone, Debug)]
pub struct Q8Matrix {
    rows: usize,
    cols: usize,
    scales: Vec<f32>,
    quants: Vec<i8>,
}

impl Q8Matrix {
    /// Quantizes a row-major `rows` x `cols` matrix; `cols` must be a multiple of [`BLOCK`].
    pub fn quantize(values: &[f32], rows: usize, cols: usize) -> Self {
        assert_eq!(values.len(), rows * cols, "matrix size");
        assert_eq!(cols % BLOCK, 0, "columns must be whole blocks");
        let mut scales = vec![0f32; rows * cols / BLOCK];
        let mut quants = vec![0i8; rows * cols];
        quantize_blocks(values, &mut scales, &mut quants);
        Self {
            rows,
            cols,
            scales,
            quants,
        }
    }

    /// Stacks matrices with the same column count into one, rows in order. A fused matrix
    /// gives the same values as its parts, in one parallel pass.
    pub fn stack(parts: &[Self]) -> Self {
        let cols = parts[0].cols;
        assert!(
            parts.iter().all(|p| p.cols == cols),
            "stacked matrices share columns"
        );
        Self {
            rows: parts.iter().map(|p| p.rows).sum(),
            cols,
            scales: parts
                .iter()
                .flat_map(|p| p.scales.iter().copied())
                .collect(),
            quants: parts
                .iter()
                .flat_map(|p| p.quants.iter().copied())
                .collect(),
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Computes `x · selfᵀ` for `x` of `m` rows of `cols` values; returns `m` rows of `rows`
    /// values, row-major.
    pub fn matmul(&self, x: &[f32], m: usize) -> Vec<f32> {
        assert_eq!(x.len(), m * self.cols, "input size");
        // The input rows take the same block layout, so that products are of 8-bit integers.
        let input = Self::quantize(x, m, self.cols);
        let blocks = self.cols / BLOCK;
        let kernel = Kernel::detect();

        let lanes = group_scales(&input);
        let mut out = vec![0f32; m * self.rows];
        let target = OutputRows {
            start: out.as_mut_ptr(),
            len: out.len(),
        };
        let tasks = self.rows.div_ceil(ROWS_PER_TASK);
        (0..tasks).into_par_iter().for_each(|task| {
            let first = task * ROWS_PER_TASK;
            let last = (first + ROWS_PER_TASK).min(self.rows);
            let mut dots = [0f32; GROUP];
            for row in first..last {
                let scales = &self.scales[row * blocks..(row + 1) * blocks];
                let quants = &self.quants[row * self.cols..(row + 1) * self.cols];
                for start in (0..m).step_by(GROUP) {
                    let group = (m - start).min(GROUP);
                    let rows = Rows {
                        input: &input,
                        start,
                        lanes: &lanes[start * blocks..(start + GROUP) * blocks],
                    };
                    kernel.row_dots(scales, quants, &rows, &mut dots[..group]);
                    for (i, &value) in dots[..group].iter().enumerate() {
                        // SAFETY: `(start + i) * self.rows + row` is below `m * self.rows`, the
                        // length of `out`, and only the task that owns `row` writes it.
                        unsafe { target.write((start + i) * self.rows + row, value) };
                    }
                }
            }
        });
        out
    }

    fn block_scales(&self, row: usize) -> &[f32] {
        let blocks = self.cols / BLOCK;
        &self.scales[row * blocks..(row + 1) * blocks]
    }

    fn block_quants(&self, row: usize) -> &[i8] {
        &self.quants[row * self.cols..(row + 1) * self.cols]
    }

    /// Dequantizes one row, for checks.
    pub fn row(&self, row: usize) -> Vec<f32> {
        let blocks = self.cols / BLOCK;
        (0..self.cols)
            .map(|c| {
                self.scales[row * blocks + c / BLOCK] * f32::from(self.quants[row * self.cols + c])
            })
            .collect()
    }
}

/// Symmetric 8-bit quantization per block: the scale maps the block's largest magnitude to 127.
fn quantize_blocks(values: &[f32], scales: &mut [f32], quants: &mut [i8]) {
    match Kernel::detect() {
        Kernel::Portable => quantize_blocks_with(values, scales, quants),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `detect` returned Avx2 only after checking the CPU has AVX2 and FMA.
        Kernel::Avx2 => unsafe { avx2::quantize_blocks(values, scales, quants) },
    }
}

/// Quantizes like [`quantize_blocks`], inlined into each caller so that the compiler uses the
/// caller's vector instructions. With SSE4.1, rounding is one instruction instead of a call.
#[inline(always)]
fn quantize_blocks_with(values: &[f32], scales: &mut [f32], quants: &mut [i8]) {
    for ((block, scale), q) in values
        .chunks_exact(BLOCK)
        .zip(scales.iter_mut())
        .zip(quants.chunks_exact_mut(BLOCK))
    {
        let largest = block.iter().fold(0f32, |m, v| m.max(v.abs()));
        *scale = largest / 127.0;
        let inverse = if largest > 0.0 { 127.0 / largest } else { 0.0 };
        for (q, v) in q.iter_mut().zip(block) {
            *q = (v * inverse).round() as i8;
        }
    }
}

/// The dot product code chosen for this CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl Kernel {
    /// AVX2 with FMA where the CPU has them, else portable code.
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            use std::sync::OnceLock;
            static HAS_AVX2: OnceLock<bool> = OnceLock::new();
            let avx2 = *HAS_AVX2.get_or_init(|| {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            });
            if avx2 {
                return Self::Avx2;
            }
        }
        Self::Portable
    }

    /// Computes the dot products of one weight row with the first `out.len()` rows of `rows`,
    /// at most [`GROUP`] of them.
    fn row_dots(self, scales: &[f32], quants: &[i8], rows: &Rows, out: &mut [f32]) {
        match self {
            Self::Portable => portable_row_dots(scales, quants, rows, out),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `detect` returned Avx2 only after checking the CPU has AVX2 and FMA.
            Self::Avx2 => unsafe { avx2::row_dots(scales, quants, rows, out) },
        }
    }
}

fn portable_row_dots(scales: &[f32], quants: &[i8], rows: &Rows, out: &mut [f32]) {
    for (i, out) in out.iter_mut().enumerate() {
        let x_scales = rows.input.block_scales(rows.start + i);
        let x_quants = rows.input.block_quants(rows.start + i);
        let mut total = 0f32;
        for b in 0..scales.len() {
            let w = &quants[b * BLOCK..(b + 1) * BLOCK];
            let x = &x_quants[b * BLOCK..(b + 1) * BLOCK];
            let sum: i32 = w
                .iter()
                .zip(x)
                .map(|(&a, &b)| i32::from(a) * i32::from(b))
                .sum();
            total += sum as f32 * (scales[b] * x_scales[b]);
        }
        *out = total;
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{BLOCK, GROUP, Rows, quantize_blocks_with};

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn quantize_blocks(values: &[f32], scales: &mut [f32], quants: &mut [i8]) {
        quantize_blocks_with(values, scales, quants);
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn row_dots(scales: &[f32], quants: &[i8], rows: &Rows, out: &mut [f32]) {
        // SAFETY: same CPU features as this function.
        unsafe {
            match out.len() {
                1 => group::<1>(scales, quants, rows, out),
                2 => group::<2>(scales, quants, rows, out),
                3 => group::<3>(scales, quants, rows, out),
                4 => group::<4>(scales, quants, rows, out),
                5 => group::<5>(scales, quants, rows, out),
                6 => group::<6>(scales, quants, rows, out),
                7 => group::<7>(scales, quants, rows, out),
                GROUP => group::<GROUP>(scales, quants, rows, out),
                rows => panic!("{rows} input rows; a group has 1 to {GROUP}"),
            }
        }
    }

    /// Input rows `start..start + N` against one weight row, each with its own accumulator, so
    /// that a row's sum is built the same way whichever group it falls in.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn group<const N: usize>(scales: &[f32], quants: &[i8], rows: &Rows, out: &mut [f32]) {
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_ps(); N];
        let blocks = scales.len();
        let (input, start) = (rows.input, rows.start);
        assert_eq!(quants.len(), blocks * BLOCK, "weight row size");
        assert!(start + N <= input.rows, "input rows");
        assert!(rows.lanes.len() >= blocks * GROUP, "group scales");
        // Raw pointers keep bounds checks out of the inner loop; the asserts above and the
        // layout of `Q8Matrix` bound every access.
        let x_quants: [*const i8; N] =
            std::array::from_fn(|r| input.block_quants(start + r).as_ptr());
        let lane_index: [__m256i; N] = std::array::from_fn(|r| _mm256_set1_epi32(r as i32));

        for b in 0..blocks {
            // SAFETY: `b < blocks`, and every row (weights and inputs) has `blocks` scales
            // and `blocks * BLOCK` values, and `lanes` has `GROUP` scales per block.
            unsafe {
                let w = _mm256_loadu_si256(quants.as_ptr().add(b * BLOCK) as *const __m256i);
                let w_abs = _mm256_sign_epi8(w, w);
                // The weight scale times every row's input scale, one row per lane: the same
                // products as one at a time, in a single multiplication.
                let x_scales = _mm256_loadu_ps(rows.lanes.as_ptr().add(b * GROUP));
                let combined = _mm256_mul_ps(_mm256_set1_ps(*scales.get_unchecked(b)), x_scales);
                for r in 0..N {
                    let x = _mm256_loadu_si256(x_quants[r].add(b * BLOCK) as *const __m256i);
                    // |w| * (x with w's sign) = w * x, as unsigned-by-signed byte products.
                    let pairs = _mm256_maddubs_epi16(w_abs, _mm256_sign_epi8(x, w));
                    let sums = _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, ones));
                    let scale = _mm256_permutevar8x32_ps(combined, lane_index[r]);
                    acc[r] = _mm256_fmadd_ps(sums, scale, acc[r]);
                }
            }
        }

        for r in 0..N {
            out[r] = horizontal_sum(acc[r]);
        }
    }

    #[target_feature(enable = "avx2,fma")]
    fn horizontal_sum(v: __m256) -> f32 {
        let quad = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let pair = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
        let single = _mm_add_ss(pair, _mm_shuffle_ps(pair, pair, 1));
        _mm_cvtss_f32(single)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(len: usize, seed: u32) -> Vec<f32> {
        let mut state = seed.wrapping_mul(2_654_435_761).max(1);
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state as f32 / u32::MAX as f32) * 2.0 - 1.0
            })
            .collect()
    }

    fn dense(x: &[f32], w: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
        let mut out = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|c| x[i * k + c] * w[j * k + c]).sum();
            }
        }
        out
    }

    #[test]
    fn product_is_close_to_the_float_product() {
        let (m, n, k) = (5, 37, 96);
        let w = values(n * k, 1);
        let x = values(m * k, 2);
        let expected = dense(&x, &w, m, n, k);
        let got = Q8Matrix::quantize(&w, n, k).matmul(&x, m);
        // Each 8-bit value is off by at most half a step (1/254 of the block's largest value),
        // so a sum of 96 products stays well within 0.1 of the float sum.
        for (g, e) in got.iter().zip(&expected) {
            assert!((g - e).abs() < 0.1, "{g} vs {e}");
        }
    }

    #[test]
    fn product_row_is_batch_invariant() {
        let (n, k) = (50, 128);
        let matrix = Q8Matrix::quantize(&values(n * k, 3), n, k);
        let x = values(9 * k, 4);
        let alone: Vec<Vec<f32>> = (0..9)
            .map(|i| matrix.matmul(&x[i * k..(i + 1) * k], 1))
            .collect();
        for m in 1..=9 {
            let batched = matrix.matmul(&x[..m * k], m);
            for i in 0..m {
                assert_eq!(
                    &batched[i * n..(i + 1) * n],
                    alone[i].as_slice(),
                    "m={m} row {i}"
                );
            }
        }
    }

    #[test]
    fn vector_kernel_matches_portable_code() {
        let (m, n, k) = (6, 20, 64);
        let matrix = Q8Matrix::quantize(&values(n * k, 5), n, k);
        let input = Q8Matrix::quantize(&values(m * k, 6), m, k);
        let blocks = k / BLOCK;
        for row in 0..n {
            let scales = &matrix.scales[row * blocks..(row + 1) * blocks];
            let quants = &matrix.quants[row * k..(row + 1) * k];
            let mut portable = vec![0f32; m];
            let mut detected = vec![0f32; m];
            let lanes = group_scales(&input);
            let rows = Rows {
                input: &input,
                start: 0,
                lanes: &lanes,
            };
            Kernel::Portable.row_dots(scales, quants, &rows, &mut portable);
            Kernel::detect().row_dots(scales, quants, &rows, &mut detected);
            for (a, b) in portable.iter().zip(&detected) {
                assert!((a - b).abs() <= 1e-4 * a.abs().max(1.0), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn vector_quantization_matches_portable_code() {
        // Halfway values, where rounding modes differ, and a spread of ordinary ones.
        let mut data: Vec<f32> = (0..BLOCK).map(|i| (i as f32 - 16.0) * 0.5 + 0.5).collect();
        data[0] = 31.75;
        data.extend(values(4 * BLOCK, 9));
        let blocks = data.len() / BLOCK;
        let (mut portable_scales, mut portable) = (vec![0f32; blocks], vec![0i8; data.len()]);
        quantize_blocks_with(&data, &mut portable_scales, &mut portable);
        let (mut scales, mut quants) = (vec![0f32; blocks], vec![0i8; data.len()]);
        quantize_blocks(&data, &mut scales, &mut quants);
        assert_eq!(portable_scales, scales);
        assert_eq!(portable, quants);
    }

    #[test]
    fn stacked_matrix_equals_its_parts() {
        let k = 64;
        let a = Q8Matrix::quantize(&values(10 * k, 7), 10, k);
        let b = Q8Matrix::quantize(&values(6 * k, 8), 6, k);
        let x = values(3 * k, 9);
        let fused = Q8Matrix::stack(&[a.clone(), b.clone()]).matmul(&x, 3);
        let (pa, pb) = (a.matmul(&x, 3), b.matmul(&x, 3));
        for i in 0..3 {
            assert_eq!(&fused[i * 16..i * 16 + 10], &pa[i * 10..(i + 1) * 10]);
            assert_eq!(&fused[i * 16 + 10..(i + 1) * 16], &pb[i * 6..(i + 1) * 6]);
        }
    }
}
