//! AdamW with decoupled weight decay, global-norm gradient clipping and optimizer state that
//! checkpoints save and load by weight name.

mod fused;

use std::collections::HashMap;

use candle_core::{DType, Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// Optimizer and batch settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimConfig {
    /// Peak learning rate; the schedule scales it.
    pub lr: f64,
    /// Decoupled weight decay, applied to matrices only (not to norm weights).
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Maximum global gradient norm; zero turns clipping off.
    pub grad_clip: f64,
    /// Sequences per micro-batch.
    pub batch_size: usize,
    /// Micro-batches whose gradients are summed into one optimizer step.
    pub grad_accum: usize,
}

impl Default for OptimConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            weight_decay: 0.1,
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            grad_clip: 1.0,
            batch_size: 16,
            grad_accum: 1,
        }
    }
}

impl OptimConfig {
    /// Checks the ranges of every setting.
    pub fn validate(&self) -> Result<()> {
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(TrainError::Config(format!(
                "optim.lr {} must be positive",
                self.lr
            )));
        }
        for (name, value) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&value) {
                return Err(TrainError::Config(format!(
                    "optim.{name} {value} must be at least 0 and below 1"
                )));
            }
        }
        if self.weight_decay < 0.0 || self.grad_clip < 0.0 || self.eps <= 0.0 {
            return Err(TrainError::Config(
                "optim.weight_decay and optim.grad_clip must be at least 0, optim.eps above 0"
                    .into(),
            ));
        }
        if self.batch_size == 0 || self.grad_accum == 0 {
            return Err(TrainError::Config(
                "optim.batch_size and optim.grad_accum must be greater than 0".into(),
            ));
        }
        Ok(())
    }
}

/// First and second moment estimates of one weight.
struct Moments {
    m: Tensor,
    v: Tensor,
}

/// AdamW over named weights.
pub struct AdamW {
    config: OptimConfig,
    moments: HashMap<String, Moments>,
    /// Optimizer steps taken, which sets the bias correction.
    steps: u64,
}

impl AdamW {
    pub fn new(config: &OptimConfig) -> Self {
        Self {
            config: config.clone(),
            moments: HashMap::new(),
            steps: 0,
        }
    }

    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Applies one update with learning rate `lr` to every weight that has a gradient in
    /// `grads`. Gradients must already be averaged and clipped.
    pub fn step(
        &mut self,
        vars: &[(String, &Var)],
        grads: &HashMap<String, Tensor>,
        lr: f64,
    ) -> Result<()> {
        self.step_scaled(vars, grads, lr, 1.0)
    }

    /// Applies one update like [`AdamW::step`] with every gradient multiplied by `grad_scale`
    /// first, such as the factor of [`clip_scale`].
    pub fn step_scaled(
        &mut self,
        vars: &[(String, &Var)],
        grads: &HashMap<String, Tensor>,
        lr: f64,
        grad_scale: f64,
    ) -> Result<()> {
        self.steps += 1;
        let c = &self.config;
        let correction1 = 1.0 - c.beta1.powi(self.steps as i32);
        let correction2 = 1.0 - c.beta2.powi(self.steps as i32);
        for (name, var) in vars {
            let Some(grad) = grads.get(name) else {
                continue;
            };
            let state = match self.moments.get_mut(name) {
                Some(state) => state,
                None => self.moments.entry(name.clone()).or_insert(Moments {
                    m: grad.zeros_like()?,
                    v: grad.zeros_like()?,
                }),
            };
            let theta = var.as_tensor();
            let decays = c.weight_decay > 0.0 && theta.rank() >= 2;
            let grad = grad.contiguous()?;

            // One pass per tensor, in place, where every tensor is contiguous f32 on the CPU.
            if fused::applies(&[theta, &grad, &state.m, &state.v]) {
                for (moment, decay, square) in
                    [(&state.m, c.beta1, false), (&state.v, c.beta2, true)]
                {
                    let update = fused::MomentUpdate {
                        decay: decay as f32,
                        grad_scale: grad_scale as f32,
                        square,
                    };
                    moment.inplace_op2(&grad, &update)?;
                }
                let update = fused::WeightUpdate {
                    lr: lr as f32,
                    shrink: if decays {
                        (1.0 - lr * c.weight_decay) as f32
                    } else {
                        1.0
                    },
                    correction1: correction1 as f32,
                    correction2: correction2 as f32,
                    eps: c.eps as f32,
                };
                theta.inplace_op3(&state.m, &state.v, &update)?;
                continue;
            }

            let grad = if grad_scale == 1.0 {
                grad
            } else {
                (grad * grad_scale)?
            };
            state.m = ((&state.m * c.beta1)? + (&grad * (1.0 - c.beta1))?)?;
            state.v = ((&state.v * c.beta2)? + (grad.sqr()? * (1.0 - c.beta2))?)?;
            let m_hat = (&state.m / correction1)?;
            let v_hat = (&state.v / correction2)?;
            let update = (m_hat / (v_hat.sqrt()? + c.eps)?)?;
            let decayed = if decays {
                (theta * (1.0 - lr * c.weight_decay))?
            } else {
                theta.clone()
            };
            var.set(&(decayed - (update * lr)?)?)?;
        }
        Ok(())
    }

    /// Returns the moments as tensors named `m.NAME` and `v.NAME`, for a checkpoint.
    pub fn state_tensors(&self) -> HashMap<String, Tensor> {
        let mut tensors = HashMap::new();
        for (name, state) in &self.moments {
            // Copies: the moments change in place at the next step.
            let copy = |t: &Tensor| t.copy().expect("copying a tensor on its device succeeds");
            tensors.insert(format!("m.{name}"), copy(&state.m));
            tensors.insert(format!("v.{name}"), copy(&state.v));
        }
        tensors
    }

    /// Restores moments saved by `state_tensors` and the step count.
    pub fn load_state(&mut self, tensors: &HashMap<String, Tensor>, steps: u64) -> Result<()> {
        self.moments.clear();
        for (key, m) in tensors {
            let Some(name) = key.strip_prefix("m.") else {
                continue;
            };
            let v = tensors
                .get(&format!("v.{name}"))
                .ok_or_else(|| TrainError::Weight {
                    name: format!("v.{name}"),
                    message: "second moment missing from the optimizer state".into(),
                })?;
            self.moments.insert(
                name.to_string(),
                Moments {
                    m: m.copy()?,
                    v: v.copy()?,
                },
            );
        }
        self.steps = steps;
        Ok(())
    }
}

/// Scales gradients so their global L2 norm is at most `max_norm` (when it is positive) and
/// returns the norm before clipping.
pub fn clip_grad_norm(grads: &mut HashMap<String, Tensor>, max_norm: f64) -> Result<f64> {
    let norm = grad_norm(grads)?;
    let scale = clip_scale(norm, max_norm);
    if scale != 1.0 {
        for grad in grads.values_mut() {
            *grad = (&*grad * scale)?;
        }
    }
    Ok(norm)
}

/// Returns the global L2 norm of the gradients.
pub fn grad_norm(grads: &HashMap<String, Tensor>) -> Result<f64> {
    let mut total = 0.0;
    for grad in grads.values() {
        total += if fused::applies(&[grad]) {
            fused::sum_of_squares(grad)?
        } else {
            grad.to_dtype(DType::F64)?
                .sqr()?
                .sum_all()?
                .to_scalar::<f64>()?
        };
    }
    Ok(total.sqrt())
}

/// Returns the factor that brings a gradient norm down to `max_norm` (when it is positive and
/// the norm is larger), else 1.
pub fn clip_scale(norm: f64, max_norm: f64) -> f64 {
    if max_norm > 0.0 && norm > max_norm {
        max_norm / (norm + 1e-12)
    } else {
        1.0
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Tensor, Var};

    use super::*;

    fn values(len: usize, seed: usize) -> Vec<f64> {
        (0..len)
            .map(|i| (((i * 7 + seed * 13) % 17) as f64 - 8.0) * 0.05)
            .collect()
    }

    /// Runs three AdamW steps on a matrix and a vector in `dtype` and returns the final weights.
    fn run(dtype: DType) -> Vec<Vec<f64>> {
        let device = Device::Cpu;
        let tensor = |v: Vec<f64>, shape: &[usize]| {
            Tensor::from_vec(v, shape, &device)
                .unwrap()
                .to_dtype(dtype)
                .unwrap()
        };
        let vars = [
            (
                "matrix".to_string(),
                Var::from_tensor(&tensor(values(12, 1), &[3, 4])).unwrap(),
            ),
            (
                "norm".to_string(),
                Var::from_tensor(&tensor(values(4, 2), &[4])).unwrap(),
            ),
        ];
        let named: Vec<(String, &Var)> = vars.iter().map(|(n, v)| (n.clone(), v)).collect();
        let config = OptimConfig {
            weight_decay: 0.1,
            ..OptimConfig::default()
        };
        let mut optimizer = AdamW::new(&config);
        for step in 0..3 {
            let grads: HashMap<String, Tensor> = vars
                .iter()
                .map(|(name, var)| {
                    (
                        name.clone(),
                        tensor(values(var.elem_count(), step + 3), var.dims()),
                    )
                })
                .collect();
            optimizer.step_scaled(&named, &grads, 0.01, 0.5).unwrap();
        }
        vars.iter()
            .map(|(_, var)| {
                let flat = var.as_tensor().flatten_all().unwrap();
                flat.to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap()
            })
            .collect()
    }

    #[test]
    fn in_place_steps_match_composed_steps() {
        // f32 on the CPU takes the in-place path, f64 the composed one.
        let in_place = run(DType::F32);
        let composed = run(DType::F64);
        for (a, b) in in_place.iter().flatten().zip(composed.iter().flatten()) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }

    #[test]
    fn state_tensors_do_not_change_with_later_steps() {
        let var = Var::from_tensor(&Tensor::ones(4, DType::F32, &Device::Cpu).unwrap()).unwrap();
        let named = vec![("w".to_string(), &var)];
        let grads = HashMap::from([(
            "w".to_string(),
            Tensor::ones(4, DType::F32, &Device::Cpu).unwrap(),
        )]);
        let mut optimizer = AdamW::new(&OptimConfig::default());
        optimizer.step(&named, &grads, 0.1).unwrap();
        let saved = optimizer.state_tensors()["m.w"].to_vec1::<f32>().unwrap();
        optimizer.step(&named, &grads, 0.1).unwrap();
        let later = optimizer.state_tensors()["m.w"].to_vec1::<f32>().unwrap();
        assert_ne!(saved, later, "the moment moves with each step");
        let first = optimizer.state_tensors();
        optimizer.step(&named, &grads, 0.1).unwrap();
        assert_eq!(
            first["m.w"].to_vec1::<f32>().unwrap(),
            later,
            "a saved moment stays as saved"
        );
    }
}
