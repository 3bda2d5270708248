//! 8-bit block weights (32 values and one scale per block, the GGML Q8_0 layout) and a matrix
//! product that reads each weight row once for all the rows of a step.
//!
//! With candle 0.11's quantized product, decoding eight sequences per step gained at most 1.2x
//! over one on 2 cores (measured). Here one task owns a range of weight rows and computes each
//! against every input row while the weight row is in the L1 cache. Each output value is the
//! same sequence of operations whatever the number of input rows, so a sequence's result does
//! not depend on what it is batched with.
//!
//! Three kernels compute the dot products: AVX-512 with VNNI (`vpdpbusd`, two blocks per
//! instruction), AVX2, and portable code. The CPU decides at run time.

use rayon::prelude::*;

/// Values per block.
pub const BLOCK: usize = 32;

/// Weight rows per parallel task.
const ROWS_PER_TASK: usize = 16;

/// Input rows computed together against one weight row.
const GROUP: usize = 8;

/// Calls `$group::<N>($weights, $rows, $out)` with `N` the number of rows in `$out`, from 1 to
/// [`GROUP`], so that each group size gets its own unrolled kernel.
macro_rules! dispatch_group {
    ($group:ident, $weights:expr, $rows:expr, $out:expr) => {
        match $out.len() {
            1 => $group::<1>($weights, $rows, $out),
            2 => $group::<2>($weights, $rows, $out),
            3 => $group::<3>($weights, $rows, $out),
            4 => $group::<4>($weights, $rows, $out),
            5 => $group::<5>($weights, $rows, $out),
            6 => $group::<6>($weights, $rows, $out),
            7 => $group::<7>($weights, $rows, $out),
            GROUP => $group::<GROUP>($weights, $rows, $out),
            rows => panic!("{rows} input rows; a group has 1 to {GROUP}"),
        }
    };
}

/// Lanes of 32-bit values in half of a 512-bit register: the VNNI kernel holds one block per
/// half.
const HALF_LANES: usize = 8;

/// The input rows of a product, quantized, with the extra layout the detected kernel reads.
struct Input {
    matrix: Q8Matrix,
    /// For the AVX2 kernel: block scales as `[group][block][row in group]`, with groups of
    /// [`GROUP`] rows and zero past the last row, so that a kernel loads a block's scales for a
    /// whole group at once.
    lanes: Vec<f32>,
    /// For the VNNI kernel: each value plus 128, as unsigned bytes, row-major.
    shifted: Vec<u8>,
    /// For the VNNI kernel: per row and pair of blocks, the first block's scale in eight lanes
    /// and the second's in eight more (zero past the last block).
    pair_scales: Vec<f32>,
}

impl Input {
    fn new(matrix: Q8Matrix, kernel: Kernel) -> Self {
        let mut input = Self {
            matrix,
            lanes: Vec::new(),
            shifted: Vec::new(),
            pair_scales: Vec::new(),
        };
        match kernel {
            Kernel::Portable => {}
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => input.lanes = group_scales(&input.matrix),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512Vnni => {
                input.shifted = input
                    .matrix
                    .quants
                    .iter()
                    .map(|&q| (i16::from(q) + 128) as u8)
                    .collect();
                input.pair_scales = pair_scales(&input.matrix);
            }
        }
        input
    }
}

/// Returns the block scales of the input rows as `[group][block][row in group]` (see
/// [`Input::lanes`]).
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

/// Returns the block scales of the input rows as `[row][pair of blocks][16 lanes]` (see
/// [`Input::pair_scales`]).
fn pair_scales(input: &Q8Matrix) -> Vec<f32> {
    let blocks = input.cols / BLOCK;
    let pairs = blocks.div_ceil(2);
    let mut lanes = vec![0f32; input.rows * pairs * 2 * HALF_LANES];
    for row in 0..input.rows {
        let row_lanes =
            &mut lanes[row * pairs * 2 * HALF_LANES..(row + 1) * pairs * 2 * HALF_LANES];
        for (block_lanes, &scale) in row_lanes
            .chunks_exact_mut(HALF_LANES)
            .zip(input.block_scales(row))
        {
            block_lanes.fill(scale);
        }
    }
    lanes
}

/// One group of input rows, from row `start`.
struct Rows<'a> {
    input: &'a Input,
    start: usize,
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
    /// Per block, -128 times the sum of its values: what a product with inputs shifted up by
    /// 128 (as the VNNI kernel reads them) has to take off again.
    offsets: Vec<i32>,
}

impl Q8Matrix {
    /// Quantizes a row-major `rows` x `cols` matrix; `cols` must be a multiple of [`BLOCK`].
    pub fn quantize(values: &[f32], rows: usize, cols: usize) -> Self {
        assert_eq!(values.len(), rows * cols, "matrix size");
        assert_eq!(cols % BLOCK, 0, "columns must be whole blocks");
        let mut scales = vec![0f32; rows * cols / BLOCK];
        let mut quants = vec![0i8; rows * cols];
        quantize_blocks(values, &mut scales, &mut quants);
        let offsets = quants
            .chunks_exact(BLOCK)
            .map(|block| -128 * block.iter().map(|&q| i32::from(q)).sum::<i32>())
            .collect();
        Self {
            rows,
            cols,
            scales,
            quants,
            offsets,
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
            offsets: parts
                .iter()
                .flat_map(|p| p.offsets.iter().copied())
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
        let kernel = Kernel::detect();
        let input = Input::new(Self::quantize(x, m, self.cols), kernel);

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
                let weights = self.weight_row(row);
                for start in (0..m).step_by(GROUP) {
                    let group = (m - start).min(GROUP);
                    let rows = Rows {
                        input: &input,
                        start,
                    };
                    kernel.row_dots(&weights, &rows, &mut dots[..group]);
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

    fn weight_row(&self, row: usize) -> WeightRow<'_> {
        let blocks = self.cols / BLOCK;
        WeightRow {
            scales: &self.scales[row * blocks..(row + 1) * blocks],
            quants: &self.quants[row * self.cols..(row + 1) * self.cols],
            offsets: &self.offsets[row * blocks..(row + 1) * blocks],
        }
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

/// One row of a [`Q8Matrix`]: its block scales, values and offsets.
struct WeightRow<'a> {
    scales: &'a [f32],
    quants: &'a [i8],
    offsets: &'a [i32],
}

/// Symmetric 8-bit quantization per block: the scale maps the block's largest magnitude to 127.
fn quantize_blocks(values: &[f32], scales: &mut [f32], quants: &mut [i8]) {
    match Kernel::detect() {
        Kernel::Portable => quantize_blocks_with(values, scales, quants),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `detect` returned Avx2 or Avx512Vnni only after checking the CPU has AVX2
        // and FMA.
        Kernel::Avx2 | Kernel::Avx512Vnni => unsafe {
            avx2::quantize_blocks(values, scales, quants)
        },
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
    /// 512-bit registers and the byte dot product instruction (`vpdpbusd`), two blocks at once.
    #[cfg(target_arch = "x86_64")]
    Avx512Vnni,
}

impl Kernel {
    /// AVX-512 with VNNI where the CPU has them, else AVX2 with FMA, else portable code.
    /// `KENNING_Q8_KERNEL=avx2` or `portable` picks a slower one, for comparisons.
    pub fn detect() -> Self {
        use std::sync::OnceLock;
        static DETECTED: OnceLock<Kernel> = OnceLock::new();
        *DETECTED.get_or_init(|| {
            let best = Self::best();
            match std::env::var("KENNING_Q8_KERNEL").as_deref() {
                Ok("portable") => Self::Portable,
                #[cfg(target_arch = "x86_64")]
                Ok("avx2") if best != Self::Portable => Self::Avx2,
                _ => best,
            }
        })
    }

    fn best() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            let avx2 = has!("avx2") && has!("fma");
            if avx2 && has!("avx512f") && has!("avx512bw") && has!("avx512vnni") {
                return Self::Avx512Vnni;
            }
            if avx2 {
                return Self::Avx2;
            }
        }
        Self::Portable
    }

    /// Computes the dot products of one weight row with the first `out.len()` rows of `rows`,
    /// at most [`GROUP`] of them.
    fn row_dots(self, weights: &WeightRow, rows: &Rows, out: &mut [f32]) {
        match self {
            Self::Portable => portable_row_dots(weights, rows, out),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `detect` returned Avx2 only after checking the CPU has AVX2 and FMA.
            Self::Avx2 => unsafe { avx2::row_dots(weights, rows, out) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `detect` returned Avx512Vnni only after checking the CPU has AVX-512
            // (F, BW) and VNNI.
            Self::Avx512Vnni => unsafe { avx512::row_dots(weights, rows, out) },
        }
    }
}

fn portable_row_dots(weights: &WeightRow, rows: &Rows, out: &mut [f32]) {
    let (scales, quants) = (weights.scales, weights.quants);
    for (i, out) in out.iter_mut().enumerate() {
        let x_scales = rows.input.matrix.block_scales(rows.start + i);
        let x_quants = rows.input.matrix.block_quants(rows.start + i);
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

    use super::{BLOCK, GROUP, Rows, WeightRow, quantize_blocks_with};

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn quantize_blocks(values: &[f32], scales: &mut [f32], quants: &mut [i8]) {
        quantize_blocks_with(values, scales, quants);
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn row_dots(weights: &WeightRow, rows: &Rows, out: &mut [f32]) {
        // SAFETY: same CPU features as this function.
        unsafe { dispatch_group!(group, weights, rows, out) }
    }

    /// Input rows `start..start + N` against one weight row, each with its own accumulator, so
    /// that a row's sum is built the same way whichever group it falls in.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn group<const N: usize>(weights: &WeightRow, rows: &Rows, out: &mut [f32]) {
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_ps(); N];
        let (scales, quants) = (weights.scales, weights.quants);
        let blocks = scales.len();
        let (input, start) = (&rows.input.matrix, rows.start);
        assert_eq!(quants.len(), blocks * BLOCK, "weight row size");
        assert!(start + N <= input.rows, "input rows");
        let lanes = &rows.input.lanes[start * blocks..];
        assert!(lanes.len() >= blocks * GROUP, "group scales");
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
                let x_scales = _mm256_loadu_ps(lanes.as_ptr().add(b * GROUP));
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

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{BLOCK, GROUP, HALF_LANES, Rows, WeightRow};

    /// # Safety
    /// The CPU must support AVX-512 (F, BW) and VNNI.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn row_dots(weights: &WeightRow, rows: &Rows, out: &mut [f32]) {
        // SAFETY: same CPU features as this function.
        unsafe { dispatch_group!(group, weights, rows, out) }
    }

    /// Input rows `start..start + N` against one weight row, two blocks per step, each row
    /// with its own accumulator, so that a row's sum is built the same way whichever group it
    /// falls in.
    ///
    /// `vpdpbusd` multiplies unsigned bytes by signed bytes, so the inputs are read shifted up
    /// by 128 and each block's sum starts from the weight row's offset, which takes 128 times
    /// the block's weight sum off again.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn group<const N: usize>(weights: &WeightRow, rows: &Rows, out: &mut [f32]) {
        let (scales, quants, offsets) = (weights.scales, weights.quants, weights.offsets);
        let blocks = scales.len();
        let pairs = blocks.div_ceil(2);
        let cols = blocks * BLOCK;
        let input = rows.input;
        let start = rows.start;
        assert_eq!(quants.len(), cols, "weight row size");
        assert_eq!(offsets.len(), blocks, "weight row offsets");
        assert!(start + N <= input.matrix.rows, "input rows");
        assert!(input.shifted.len() >= (start + N) * cols, "shifted input");
        let row_lanes = pairs * 2 * HALF_LANES;
        assert!(
            input.pair_scales.len() >= (start + N) * row_lanes,
            "input pair scales"
        );
        // Raw pointers keep bounds checks out of the inner loop; the asserts above bound every
        // access.
        let x_quants: [*const u8; N] =
            std::array::from_fn(|r| input.shifted[(start + r) * cols..].as_ptr());
        let x_scales: [*const f32; N] =
            std::array::from_fn(|r| input.pair_scales[(start + r) * row_lanes..].as_ptr());
        let mut acc = [_mm512_setzero_ps(); N];

        for pair in 0..pairs {
            let b = 2 * pair;
            let whole = b + 1 < blocks;
            // The second half of a last, single block reads nothing and adds zero.
            let bytes: __mmask64 = if whole { !0 } else { 0xFFFF_FFFF };
            let high: __mmask16 = 0xFF00;
            // SAFETY: the masked loads read block `b` and, when `whole`, block `b + 1`. Both lie
            // inside every row. The scale and offset reads are at indices below `blocks`.
            unsafe {
                let w = _mm512_maskz_loadu_epi8(bytes, quants.as_ptr().add(b * BLOCK) as *const i8);
                let (mut w_scale, mut offset) = (
                    _mm512_set1_ps(*scales.get_unchecked(b)),
                    _mm512_maskz_set1_epi32(0x0001, *offsets.get_unchecked(b)),
                );
                if whole {
                    w_scale = _mm512_mask_mov_ps(
                        w_scale,
                        high,
                        _mm512_set1_ps(*scales.get_unchecked(b + 1)),
                    );
                    offset = _mm512_mask_set1_epi32(offset, 0x0100, *offsets.get_unchecked(b + 1));
                }
                for r in 0..N {
                    let x = _mm512_maskz_loadu_epi8(bytes, x_quants[r].add(b * BLOCK) as *const i8);
                    let sums = _mm512_dpbusd_epi32(offset, x, w);
                    let scale = _mm512_mul_ps(
                        w_scale,
                        _mm512_loadu_ps(x_scales[r].add(pair * 2 * HALF_LANES)),
                    );
                    acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), scale, acc[r]);
                }
            }
        }

        for r in 0..N {
            out[r] = _mm512_reduce_add_ps(acc[r]);
        }
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

    /// Returns every kernel this CPU can run, the portable one first.
    fn kernels() -> Vec<Kernel> {
        let mut kernels = vec![Kernel::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            let best = Kernel::best();
            if best != Kernel::Portable {
                kernels.push(Kernel::Avx2);
            }
            if best == Kernel::Avx512Vnni {
                kernels.push(Kernel::Avx512Vnni);
            }
        }
        kernels
    }

    #[test]
    fn vector_kernels_match_portable_code() {
        // Three blocks per row: the two-block kernel then also meets a single last block. Nine
        // input rows: a group of eight is then followed by a group of one.
        let (m, n, k) = (9, 20, 96);
        let matrix = Q8Matrix::quantize(&values(n * k, 5), n, k);
        let quantized = Q8Matrix::quantize(&values(m * k, 6), m, k);
        let kernels = kernels();
        let results: Vec<Vec<f32>> = kernels
            .iter()
            .map(|&kernel| {
                let input = Input::new(quantized.clone(), kernel);
                let mut got = vec![0f32; m * n];
                for row in 0..n {
                    for start in (0..m).step_by(GROUP) {
                        let group = (m - start).min(GROUP);
                        let rows = Rows {
                            input: &input,
                            start,
                        };
                        let mut dots = [0f32; GROUP];
                        kernel.row_dots(&matrix.weight_row(row), &rows, &mut dots[..group]);
                        for (i, &dot) in dots[..group].iter().enumerate() {
                            got[(start + i) * n + row] = dot;
                        }
                    }
                }
                got
            })
            .collect();
        for (kernel, got) in kernels.iter().zip(&results).skip(1) {
            for (a, b) in results[0].iter().zip(got) {
                assert!(
                    (a - b).abs() <= 1e-4 * a.abs().max(1.0),
                    "{kernel:?}: {b} vs portable {a}"
                );
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
