//! Seeded weight initialisation, independent of candle's global random state.

use candle_core::{DType, Device, Tensor};
use rand::Rng;
use rand::rngs::StdRng;

use crate::error::Result;

/// Returns a tensor of normal samples with mean 0 and standard deviation `std`, drawn from `rng`
/// by the Box-Muller transform.
pub fn normal_tensor(
    rng: &mut StdRng,
    shape: &[usize],
    std: f64,
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    let count: usize = shape.iter().product();
    let mut values = Vec::with_capacity(count);
    while values.len() < count {
        let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
        let u2: f64 = rng.random();
        let radius = (-2.0 * u1.ln()).sqrt();
        let angle = std::f64::consts::TAU * u2;
        values.push(radius * angle.cos() * std);
        values.push(radius * angle.sin() * std);
    }
    values.truncate(count);
    Ok(Tensor::from_vec(values, shape, device)?.to_dtype(dtype)?)
}
