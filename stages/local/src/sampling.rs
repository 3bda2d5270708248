//! Choosing the next token from the model's logits: greedy at temperature 0, otherwise
//! temperature, top-k, min-p and top-p (nucleus) filtering, then a seeded draw.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::{LocalError, Result};
use crate::exp::exp;

/// Sampling settings of one request, with the meanings OpenAI-compatible servers give them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplingParams {
    /// 0 picks the most likely token every time.
    pub temperature: f32,
    /// Keeps the smallest set of tokens whose probabilities sum to at least `top_p`; 1 keeps all.
    pub top_p: f32,
    /// Keeps the `top_k` most likely tokens; 0 keeps all.
    pub top_k: usize,
    /// Drops tokens less likely than `min_p` times the most likely one; 0 keeps all.
    pub min_p: f32,
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 0.7,
            top_p: 1.0,
            top_k: 0,
            min_p: 0.0,
            seed: 0,
        }
    }
}

impl SamplingParams {
    pub fn check(&self) -> Result<()> {
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(LocalError::Setting(format!(
                "temperature must be 0 or more, got {}",
                self.temperature
            )));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(LocalError::Setting(format!(
                "top_p must be in (0, 1], got {}",
                self.top_p
            )));
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return Err(LocalError::Setting(format!(
                "min_p must be in [0, 1], got {}",
                self.min_p
            )));
        }
        Ok(())
    }
}

/// Draws tokens for one sequence. The same seed and logits give the same tokens.
pub struct Sampler {
    params: SamplingParams,
    rng: StdRng,
    /// Unnormalized probabilities by token id, reused between steps.
    weights: Vec<f32>,
    /// Candidate buffer reused between steps: (token, probability).
    candidates: Vec<(u32, f32)>,
}

impl Sampler {
    pub fn new(params: SamplingParams) -> Self {
        Self {
            params,
            rng: StdRng::seed_from_u64(params.seed),
            weights: Vec::new(),
            candidates: Vec::new(),
        }
    }

    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        if self.params.temperature == 0.0 {
            return argmax(logits);
        }

        // Unnormalized softmax at the given temperature.
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let scale = 1.0 / self.params.temperature;
        self.weights.clear();
        self.weights
            .extend(logits.iter().map(|&logit| exp((logit - max) * scale)));

        // A plain draw walks the vocabulary in order; filters need the candidates sorted.
        let filtered = self.params.top_k > 0 || self.params.min_p > 0.0 || self.params.top_p < 1.0;
        if !filtered {
            let total: f32 = self.weights.iter().sum();
            let mut target = self.rng.random::<f32>() * total;
            for (id, &weight) in self.weights.iter().enumerate() {
                if target < weight {
                    return id as u32;
                }
                target -= weight;
            }
            return self.weights.len().saturating_sub(1) as u32;
        }
        self.candidates.clear();
        self.candidates.extend(
            self.weights
                .iter()
                .enumerate()
                .map(|(id, &w)| (id as u32, w)),
        );
        self.candidates
            .sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));

        if self.params.top_k > 0 {
            self.candidates.truncate(self.params.top_k);
        }
        if self.params.min_p > 0.0 {
            let floor = self.candidates[0].1 * self.params.min_p;
            let keep = self.candidates.iter().take_while(|c| c.1 >= floor).count();
            self.candidates.truncate(keep.max(1));
        }
        let total: f32 = self.candidates.iter().map(|c| c.1).sum();
        if self.params.top_p < 1.0 {
            let mut sum = 0.0;
            let mut keep = self.candidates.len();
            for (i, candidate) in self.candidates.iter().enumerate() {
                sum += candidate.1 / total;
                if sum >= self.params.top_p {
                    keep = i + 1;
                    break;
                }
            }
            self.candidates.truncate(keep);
        }

        let total: f32 = self.candidates.iter().map(|c| c.1).sum();
        let mut target = self.rng.random::<f32>() * total;
        for &(id, weight) in &self.candidates {
            if target < weight {
                return id;
            }
            target -= weight;
        }
        self.candidates.last().map_or(0, |c| c.0)
    }
}

fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &value) in logits.iter().enumerate() {
        if value > logits[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(temperature: f32) -> SamplingParams {
        SamplingParams {
            temperature,
            seed: 7,
            ..SamplingParams::default()
        }
    }

    #[test]
    fn temperature_zero_is_greedy() {
        let mut sampler = Sampler::new(params(0.0));
        assert_eq!(sampler.sample(&[0.1, 3.0, 2.9]), 1);
    }

    #[test]
    fn same_seed_gives_the_same_draws() {
        let logits: Vec<f32> = (0..50).map(|i| (i as f32 * 0.37).sin()).collect();
        let draw = || {
            let mut sampler = Sampler::new(params(1.0));
            (0..20).map(|_| sampler.sample(&logits)).collect::<Vec<_>>()
        };
        assert_eq!(draw(), draw());
    }

    #[test]
    fn top_k_and_min_p_one_are_greedy() {
        let logits = [0.5, 0.2, 4.0, 3.9];
        let mut top_k = Sampler::new(SamplingParams {
            top_k: 1,
            ..params(1.5)
        });
        let mut min_p = Sampler::new(SamplingParams {
            min_p: 1.0,
            ..params(1.5)
        });
        for _ in 0..50 {
            assert_eq!(top_k.sample(&logits), 2);
            assert_eq!(min_p.sample(&logits), 2);
        }
    }

    #[test]
    fn top_p_keeps_only_the_nucleus() {
        // Probabilities at temperature 1: about 0.84, 0.11, 0.04, 0.01.
        let logits = [4.0, 2.0, 1.0, -0.5];
        let mut sampler = Sampler::new(SamplingParams {
            top_p: 0.9,
            ..params(1.0)
        });
        let draws: Vec<u32> = (0..400).map(|_| sampler.sample(&logits)).collect();
        assert!(
            draws.iter().all(|&t| t <= 1),
            "only the two most likely tokens reach 0.9"
        );
        assert!(draws.contains(&1), "the second token is still drawn");
    }

    #[test]
    fn draws_follow_the_distribution() {
        // Two tokens with probabilities 0.75 and 0.25 at temperature 1.
        let logits = [3f32.ln(), 0.0];
        let mut sampler = Sampler::new(params(1.0));
        let n = 20_000;
        let first = (0..n).filter(|_| sampler.sample(&logits) == 0).count();
        let share = first as f64 / n as f64;
        // Four standard errors of a binomial share at p = 0.75 and n = 20,000 is about 0.012.
        assert!((share - 0.75).abs() < 0.012, "share {share}");
    }

    #[test]
    fn rejects_bad_settings() {
        assert!(
            SamplingParams {
                temperature: -1.0,
                ..params(1.0)
            }
            .check()
            .is_err()
        );
        assert!(
            SamplingParams {
                top_p: 0.0,
                ..params(1.0)
            }
            .check()
            .is_err()
        );
        assert!(
            SamplingParams {
                min_p: 1.5,
                ..params(1.0)
            }
            .check()
            .is_err()
        );
    }
}
