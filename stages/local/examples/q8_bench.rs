//! Speed of the 8-bit matrix product alone, for the shapes of SmolLM2-135M, by number of
//! input rows: `cargo run --release -p kenning-local --example q8_bench`. Prints one JSON
//! object per row count with nanoseconds per product and the rate relative to one row.

use std::time::Instant;

#[path = "common/cpu.rs"]
mod cpu;

use cpu::cpu_seconds;

use kenning_local::q8::Q8Matrix;

fn main() {
    // (rows, cols) of the fused q/k/v, output, fused gate/up, down and vocabulary projections.
    let shapes = [
        (960, 576),
        (576, 576),
        (3072, 576),
        (576, 1536),
        (49152, 576),
    ];
    let matrices: Vec<Q8Matrix> = shapes
        .iter()
        .map(|&(rows, cols)| {
            let values: Vec<f32> = (0..rows * cols)
                .map(|i| ((i * 7919) % 255) as f32 / 127.0 - 1.0)
                .collect();
            Q8Matrix::quantize(&values, rows, cols)
        })
        .collect();
    let mut single = 0.0;
    for m in [1usize, 2, 4, 8, 16] {
        let inputs: Vec<Vec<f32>> = matrices
            .iter()
            .map(|w| {
                (0..m * w.cols())
                    .map(|i| ((i * 31) % 97) as f32 / 50.0 - 1.0)
                    .collect()
            })
            .collect();
        let repeats = 40;
        let started = Instant::now();
        let cpu = cpu_seconds();
        for _ in 0..repeats {
            for (w, x) in matrices.iter().zip(&inputs) {
                std::hint::black_box(w.matmul(x, m));
            }
        }
        let wall = started.elapsed().as_secs_f64() / repeats as f64;
        // CPU time per pass where the process's CPU time is readable: other load on the
        // machine changes it far less than wall time.
        let per_pass = match (cpu_seconds() - cpu) / repeats as f64 {
            cpu if cpu > 0.0 => cpu,
            _ => wall,
        };
        if m == 1 {
            single = per_pass;
        }
        println!(
            "{{\"rows\": {m}, \"cpu_ms_per_pass\": {:.3}, \"wall_ms_per_pass\": {:.3}, \"rows_per_second_vs_one\": {:.2}}}",
            per_pass * 1e3,
            wall * 1e3,
            m as f64 * single / per_pass
        );
    }
}
