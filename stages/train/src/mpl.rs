//! The multi-power law of loss against learning-rate schedule (Luo et al., "A Multi-Power Law
//! for Loss Curve Prediction Across Learning Rate Schedules", ICLR 2025), its fit to logged
//! loss curves, and the search for the decay that it predicts to be best.
//!
//! With rates η₁..η_t after warmup, S₁(t) = Σ_{τ≤t} η_τ and S_k(t) = Σ_{k≤τ≤t} η_τ:
//!
//! ```text
//! L(t) = L0 + A · S₁(t)^(−α) − LD(t)
//! LD(t) = B · Σ_{k=2..t} (η_{k−1} − η_k) · G(η_k^(−γ) · S_k(t)),   G(x) = 1 − (C·x + 1)^(−β)
//! ```
//!
//! The first term is the power law of a constant schedule in the summed rate; LD is the bonus
//! that each drop of the rate adds as training continues at the lower rate. Warmup steps count
//! in S₁ but not in LD.

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::schedule::Schedule;

/// Parameters of the multi-power law.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultiPowerLaw {
    pub l0: f64,
    pub a: f64,
    pub alpha: f64,
    pub b: f64,
    pub c: f64,
    pub beta: f64,
    pub gamma: f64,
}

/// A logged loss curve: the learning rate of every step and the loss at some steps.
#[derive(Clone, Debug, PartialEq)]
pub struct LossCurve {
    /// Learning rate of steps 0, 1, ...
    pub rates: Vec<f64>,
    pub warmup_steps: usize,
    /// Step (0-based) and the loss logged after it.
    pub points: Vec<(usize, f64)>,
}

impl MultiPowerLaw {
    /// Returns the predicted loss after each of `steps` (0-based) of a run with `rates`.
    pub fn predict(&self, rates: &[f64], warmup_steps: usize, steps: &[usize]) -> Vec<f64> {
        let mut prefix = Vec::with_capacity(rates.len() + 1);
        prefix.push(0.0);
        for rate in rates {
            prefix.push(prefix.last().copied().unwrap_or(0.0) + rate);
        }
        steps
            .iter()
            .map(|&step| {
                let step = step.min(rates.len().saturating_sub(1));
                let summed = prefix[step + 1].max(f64::MIN_POSITIVE);
                let mut bonus = 0.0;
                for k in (warmup_steps + 1)..=step {
                    let drop = rates[k - 1] - rates[k];
                    if drop == 0.0 {
                        continue;
                    }
                    let since = prefix[step + 1] - prefix[k];
                    let x = rates[k].max(f64::MIN_POSITIVE).powf(-self.gamma) * since;
                    bonus += drop * (1.0 - (self.c * x + 1.0).powf(-self.beta));
                }
                self.l0 + self.a * summed.powf(-self.alpha) - self.b * bonus
            })
            .collect()
    }

    /// Returns the predicted loss after the last step of `schedule`.
    pub fn predict_final(&self, schedule: &Schedule, total: u64, peak: f64) -> f64 {
        let rates = schedule.rates(total, peak);
        let last = rates.len().saturating_sub(1);
        self.predict(&rates, schedule.warmup_steps() as usize, &[last])[0]
    }

    fn to_vector(self) -> [f64; 7] {
        [
            self.l0,
            self.a.ln(),
            self.alpha.ln(),
            self.b.ln(),
            self.c.ln(),
            self.beta.ln(),
            self.gamma.ln(),
        ]
    }

    fn from_vector(v: &[f64]) -> Self {
        Self {
            l0: v[0],
            a: v[1].exp(),
            alpha: v[2].exp(),
            b: v[3].exp(),
            c: v[4].exp(),
            beta: v[5].exp(),
            gamma: v[6].exp(),
        }
    }
}

/// Result of a fit: the parameters and the root-mean-square error over all points.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Fit {
    pub law: MultiPowerLaw,
    pub rmse: f64,
}

/// Fits the law to one or more loss curves by least squares (Levenberg-Marquardt on the
/// logarithms of the positive parameters, from several starting points). Curves of schedules
/// with different decays, such as constant plus cosine, pin down the decay term far better
/// than one curve.
pub fn fit(curves: &[LossCurve]) -> Result<Fit> {
    let points: usize = curves.iter().map(|c| c.points.len()).sum();
    if points < 8 {
        return Err(TrainError::Fit(format!(
            "{points} logged points are too few to fit 7 parameters; log at least 8"
        )));
    }
    for curve in curves {
        if let Some(&(step, _)) = curve.points.iter().find(|(s, _)| *s >= curve.rates.len()) {
            return Err(TrainError::Fit(format!(
                "a point at step {step} lies past the curve's {} rates",
                curve.rates.len()
            )));
        }
        if curve.rates.iter().any(|r| !(*r >= 0.0 && r.is_finite())) {
            return Err(TrainError::Fit(
                "every learning rate of a curve must be finite and at least 0".into(),
            ));
        }
    }

    let residuals = |v: &[f64]| -> Vec<f64> {
        let law = MultiPowerLaw::from_vector(v);
        let mut out = Vec::with_capacity(points);
        for curve in curves {
            let steps: Vec<usize> = curve.points.iter().map(|(s, _)| *s).collect();
            let predicted = law.predict(&curve.rates, curve.warmup_steps, &steps);
            for (p, (_, loss)) in predicted.iter().zip(&curve.points) {
                out.push(p - loss);
            }
        }
        out
    };

    let lowest = curves
        .iter()
        .flat_map(|c| c.points.iter().map(|(_, l)| *l))
        .fold(f64::INFINITY, f64::min);
    let mut best: Option<([f64; 7], f64)> = None;
    for (alpha, b, c) in [(0.5, 300.0, 1.0), (0.3, 100.0, 0.3), (0.8, 1000.0, 3.0)] {
        let start = MultiPowerLaw {
            l0: lowest * 0.8,
            a: lowest * 0.5,
            alpha,
            b,
            c,
            beta: 0.5,
            gamma: 0.5,
        };
        let (v, cost) = levenberg_marquardt(&residuals, start.to_vector(), 400);
        if cost.is_finite() && best.is_none_or(|(_, b)| cost < b) {
            best = Some((v, cost));
        }
    }
    let (v, cost) = best.ok_or_else(|| {
        TrainError::Fit("every start diverged; check that the losses are finite".into())
    })?;
    Ok(Fit {
        law: MultiPowerLaw::from_vector(&v),
        rmse: (cost / points as f64).sqrt(),
    })
}

/// Returns the multi-power-law schedule, searched over decay fractions 0.05 to 0.5 and
/// exponents 0.5 to 3, whose final loss `law` predicts to be lowest.
pub fn optimize_decay(
    law: &MultiPowerLaw,
    total: u64,
    peak: f64,
    warmup_steps: u64,
    min_lr_ratio: f64,
) -> (Schedule, f64) {
    let mut best: Option<(Schedule, f64)> = None;
    for fraction_step in 1..=10 {
        for exponent in [0.5, 0.75, 1.0, 1.5, 2.0, 3.0] {
            let schedule = Schedule::MultiPowerLaw {
                warmup_steps,
                decay_fraction: fraction_step as f64 * 0.05,
                decay_exponent: exponent,
                min_lr_ratio,
            };
            let loss = law.predict_final(&schedule, total, peak);
            if best.as_ref().is_none_or(|(_, b)| loss < *b) {
                best = Some((schedule, loss));
            }
        }
    }
    best.expect("the grid is not empty")
}

/// Minimises the sum of squared residuals from `start`, with a forward-difference Jacobian.
/// Returns the parameters and the final sum of squares.
fn levenberg_marquardt<const N: usize>(
    residuals: &dyn Fn(&[f64]) -> Vec<f64>,
    start: [f64; N],
    iterations: usize,
) -> ([f64; N], f64) {
    let cost_of = |r: &[f64]| -> f64 {
        let cost: f64 = r.iter().map(|x| x * x).sum();
        if cost.is_finite() {
            cost
        } else {
            f64::INFINITY
        }
    };
    let mut x = start;
    let mut r = residuals(&x);
    let mut cost = cost_of(&r);
    let mut damping = 1e-3;

    for _ in 0..iterations {
        let mut jacobian = vec![[0.0; N]; r.len()];
        for j in 0..N {
            let h = 1e-6 * x[j].abs().max(1.0);
            let mut shifted = x;
            shifted[j] += h;
            let rs = residuals(&shifted);
            for (row, (a, b)) in jacobian.iter_mut().zip(rs.iter().zip(&r)) {
                row[j] = (a - b) / h;
            }
        }
        let mut normal = [[0.0; N]; N];
        let mut gradient = [0.0; N];
        for (row, residual) in jacobian.iter().zip(&r) {
            for i in 0..N {
                gradient[i] += row[i] * residual;
                for j in 0..N {
                    normal[i][j] += row[i] * row[j];
                }
            }
        }

        let mut improved = false;
        while damping < 1e12 {
            let mut system = normal;
            for (i, row) in system.iter_mut().enumerate() {
                row[i] += damping * (normal[i][i] + 1e-12);
            }
            let negative: [f64; N] = std::array::from_fn(|i| -gradient[i]);
            if let Some(delta) = solve(system, negative) {
                let candidate: [f64; N] = std::array::from_fn(|i| x[i] + delta[i]);
                let candidate_r = residuals(&candidate);
                let candidate_cost = cost_of(&candidate_r);
                if candidate_cost < cost {
                    let relative = (cost - candidate_cost) / cost.max(f64::MIN_POSITIVE);
                    x = candidate;
                    r = candidate_r;
                    cost = candidate_cost;
                    damping = (damping / 3.0).max(1e-12);
                    improved = relative > 1e-15;
                    break;
                }
            }
            damping *= 4.0;
        }
        if !improved {
            break;
        }
    }
    (x, cost)
}

/// Solves `a x = b` by Gaussian elimination with partial pivoting; `None` if `a` is singular.
fn solve<const N: usize>(mut a: [[f64; N]; N], mut b: [f64; N]) -> Option<[f64; N]> {
    for col in 0..N {
        let pivot = (col..N).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() < 1e-300 {
            return None;
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        for row in col + 1..N {
            let factor = a[row][col] / a[col][col];
            let pivot_row = a[col];
            for (value, pivot_value) in a[row].iter_mut().zip(pivot_row).skip(col) {
                *value -= factor * pivot_value;
            }
            b[row] -= factor * b[col];
        }
    }
    let mut x = [0.0; N];
    for row in (0..N).rev() {
        let tail: f64 = (row + 1..N).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - tail) / a[row][row];
    }
    x.iter().all(|v| v.is_finite()).then_some(x)
}
