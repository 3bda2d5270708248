//! Learning-rate schedules.
//!
//! Every schedule starts with `warmup_steps` of linear warmup, `peak * (step + 1) / warmup`, and
//! ends at `peak * min_lr_ratio` on the last step (except the constant one). Steps count from 0
//! to `total - 1`.

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// A learning-rate schedule, chosen in TOML by `kind`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Schedule {
    /// Warmup, then the peak rate.
    Constant {
        #[serde(default)]
        warmup_steps: u64,
    },
    /// Warmup, then half a cosine from the peak to `peak * min_lr_ratio`.
    Cosine {
        #[serde(default)]
        warmup_steps: u64,
        #[serde(default = "default_min_lr_ratio")]
        min_lr_ratio: f64,
    },
    /// Warmup, the peak rate, then a linear decay over the last `decay_fraction` of the steps.
    WarmupStableDecay {
        #[serde(default)]
        warmup_steps: u64,
        #[serde(default = "default_decay_fraction")]
        decay_fraction: f64,
        #[serde(default = "default_min_lr_ratio")]
        min_lr_ratio: f64,
    },
    /// Warmup, the peak rate, then a power-curve decay over the last `decay_fraction` of the
    /// steps: `min + (peak - min) * (1 - p)^decay_exponent` at decay progress p. This is the
    /// family that `mpl::optimize_decay` searches with a fitted multi-power law.
    MultiPowerLaw {
        #[serde(default)]
        warmup_steps: u64,
        #[serde(default = "default_decay_fraction")]
        decay_fraction: f64,
        #[serde(default = "default_decay_exponent")]
        decay_exponent: f64,
        #[serde(default = "default_min_lr_ratio")]
        min_lr_ratio: f64,
    },
}

fn default_min_lr_ratio() -> f64 {
    0.1
}

fn default_decay_fraction() -> f64 {
    0.2
}

fn default_decay_exponent() -> f64 {
    1.5
}

impl Default for Schedule {
    fn default() -> Self {
        Self::Cosine {
            warmup_steps: 20,
            min_lr_ratio: default_min_lr_ratio(),
        }
    }
}

impl Schedule {
    /// Checks ratios and fractions against their ranges.
    pub fn validate(&self) -> Result<()> {
        let (min_ratio, fraction, exponent) = match *self {
            Self::Constant { .. } => (0.0, 0.5, 1.0),
            Self::Cosine { min_lr_ratio, .. } => (min_lr_ratio, 0.5, 1.0),
            Self::WarmupStableDecay {
                min_lr_ratio,
                decay_fraction,
                ..
            } => (min_lr_ratio, decay_fraction, 1.0),
            Self::MultiPowerLaw {
                min_lr_ratio,
                decay_fraction,
                decay_exponent,
                ..
            } => (min_lr_ratio, decay_fraction, decay_exponent),
        };
        if !(0.0..=1.0).contains(&min_ratio) {
            return Err(TrainError::Config(format!(
                "schedule.min_lr_ratio {min_ratio} must be between 0 and 1"
            )));
        }
        if !(fraction > 0.0 && fraction <= 1.0) {
            return Err(TrainError::Config(format!(
                "schedule.decay_fraction {fraction} must be above 0 and at most 1"
            )));
        }
        if !(exponent > 0.0 && exponent.is_finite()) {
            return Err(TrainError::Config(format!(
                "schedule.decay_exponent {exponent} must be a positive number"
            )));
        }
        Ok(())
    }

    pub fn warmup_steps(&self) -> u64 {
        match *self {
            Self::Constant { warmup_steps }
            | Self::Cosine { warmup_steps, .. }
            | Self::WarmupStableDecay { warmup_steps, .. }
            | Self::MultiPowerLaw { warmup_steps, .. } => warmup_steps,
        }
    }

    /// Returns the learning rate of `step` in a run of `total` steps with peak rate `peak`.
    pub fn lr(&self, step: u64, total: u64, peak: f64) -> f64 {
        let warmup = self.warmup_steps();
        if step < warmup {
            return peak * (step + 1) as f64 / warmup as f64;
        }
        match *self {
            Self::Constant { .. } => peak,
            Self::Cosine { min_lr_ratio, .. } => {
                let span = total.saturating_sub(warmup + 1).max(1);
                let progress = ((step - warmup) as f64 / span as f64).min(1.0);
                let min = peak * min_lr_ratio;
                min + (peak - min) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
            }
            Self::WarmupStableDecay {
                decay_fraction,
                min_lr_ratio,
                ..
            } => decay(step, total, warmup, peak, decay_fraction, min_lr_ratio, 1.0),
            Self::MultiPowerLaw {
                decay_fraction,
                decay_exponent,
                min_lr_ratio,
                ..
            } => decay(
                step,
                total,
                warmup,
                peak,
                decay_fraction,
                min_lr_ratio,
                decay_exponent,
            ),
        }
    }

    /// Returns the learning rate of every step of a run.
    pub fn rates(&self, total: u64, peak: f64) -> Vec<f64> {
        (0..total).map(|step| self.lr(step, total, peak)).collect()
    }
}

/// Returns the rate of a stable phase followed by a decay over the last
/// `round(fraction * total)` steps (never into the warmup). Decay progress runs from
/// `1 / decay_steps` on the first decay step to 1 on the last.
fn decay(
    step: u64,
    total: u64,
    warmup: u64,
    peak: f64,
    fraction: f64,
    min_ratio: f64,
    exponent: f64,
) -> f64 {
    let decay_steps =
        ((fraction * total as f64).round() as u64).clamp(1, total.saturating_sub(warmup).max(1));
    let start = total.saturating_sub(decay_steps);
    if step < start {
        return peak;
    }
    let progress = ((step - start + 1) as f64 / decay_steps as f64).min(1.0);
    let min = peak * min_ratio;
    min + (peak - min) * (1.0 - progress).powf(exponent)
}
