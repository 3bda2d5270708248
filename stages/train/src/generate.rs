//! Greedy generation with the probability of every generated token.

use candle_core::{D, DType, Tensor};

use crate::error::Result;
use crate::model::Llama;
use crate::tokenizer::TextTokenizer;

/// A greedy continuation of a prompt.
#[derive(Clone, Debug, PartialEq)]
pub struct Generation {
    /// The decoded continuation, without the prompt.
    pub text: String,
    pub tokens: Vec<u32>,
    /// Model probability of each generated token.
    pub probabilities: Vec<f64>,
}

impl Generation {
    /// Mean probability of the generated tokens, used as the model's confidence; 0 when
    /// nothing was generated.
    pub fn confidence(&self) -> f64 {
        if self.probabilities.is_empty() {
            0.0
        } else {
            self.probabilities.iter().sum::<f64>() / self.probabilities.len() as f64
        }
    }
}

/// Extends `prompt` one most-probable token at a time, for at most `max_new_tokens` tokens,
/// stopping at EOS or once the generated text contains `stop` (when given; the text is then
/// cut before it). Prompts longer than the model's context keep their last tokens.
///
/// Earlier positions' keys and values are cached, so each new token runs one position through
/// the model. Once the context outgrows the model's window, the window slides and every step
/// recomputes its positions.
pub fn greedy(
    model: &Llama,
    tokenizer: &TextTokenizer,
    prompt: &str,
    max_new_tokens: usize,
    stop: Option<&str>,
) -> Result<Generation> {
    let mut context = tokenizer.encode(prompt)?;
    let window = model.config().max_seq_len;
    let mut cache = model.new_cache();
    // Tokens not yet in the cache: the prompt's last window, then each chosen token.
    let mut pending = context[context.len().saturating_sub(window)..].to_vec();
    let mut tokens = Vec::new();
    let mut probabilities = Vec::new();
    let mut text = String::new();

    for _ in 0..max_new_tokens {
        let last = if cache.len() + pending.len() <= window {
            let input = Tensor::new(pending.as_slice(), model.device())?.unsqueeze(0)?;
            let logits = model.forward_cached(&input, &mut cache)?.detach();
            logits.squeeze(0)?.get(pending.len() - 1)?
        } else {
            let start = context.len() - window;
            let input = Tensor::new(&context[start..], model.device())?.unsqueeze(0)?;
            let logits = model.forward(&input)?.detach();
            logits.squeeze(0)?.get(window - 1)?
        };
        let probs = candle_nn::ops::softmax(&last.to_dtype(DType::F32)?, D::Minus1)?;
        let probs: Vec<f32> = probs.to_vec1()?;
        let (next, probability) = probs
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, p)| (i as u32, f64::from(*p)))
            .expect("the vocabulary is not empty");
        if next == tokenizer.eos_id() {
            break;
        }
        context.push(next);
        pending.clear();
        pending.push(next);
        tokens.push(next);
        probabilities.push(probability);
        text = tokenizer.decode(&tokens)?;
        if let Some(stop) = stop
            && let Some(position) = text.find(stop)
        {
            text.truncate(position);
            break;
        }
    }
    Ok(Generation {
        text,
        tokens,
        probabilities,
    })
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device};

    use super::*;
    use crate::model::ModelConfig;
    use crate::tokenizer::TokenizerConfig;

    /// Greedy decoding that re-runs the last window of the context for every token.
    fn uncached(model: &Llama, context: &[u32], new_tokens: usize) -> Vec<u32> {
        let mut context = context.to_vec();
        let window = model.config().max_seq_len;
        for _ in 0..new_tokens {
            let start = context.len().saturating_sub(window);
            let input = Tensor::new(&context[start..], model.device())
                .unwrap()
                .unsqueeze(0)
                .unwrap();
            let logits = model.forward(&input).unwrap();
            let last: Vec<f64> = logits
                .squeeze(0)
                .unwrap()
                .get(context.len() - start - 1)
                .unwrap()
                .to_vec1()
                .unwrap();
            let next = (0..last.len())
                .max_by(|&a, &b| last[a].total_cmp(&last[b]))
                .unwrap();
            context.push(next as u32);
        }
        context
    }

    #[test]
    fn cached_greedy_matches_full_recompute() {
        let text = "the cat sat on the mat and the dog sat on the log";
        let config = TokenizerConfig {
            vocab_size: 300,
            min_frequency: 1,
            ..TokenizerConfig::default()
        };
        let tokenizer = TextTokenizer::train(&config, std::iter::once(text)).unwrap();
        let model_config = ModelConfig {
            vocab_size: tokenizer.vocab_size(),
            hidden_size: 32,
            intermediate_size: 48,
            num_layers: 2,
            num_heads: 4,
            num_kv_heads: 2,
            max_seq_len: 24,
            init_std: 0.3,
            ..ModelConfig::default()
        };
        let model = Llama::new(&model_config, 5, DType::F64, &Device::Cpu).unwrap();

        // A short prompt stays within the window; a long one outgrows it while generating.
        for prompt in ["the cat", text] {
            let prompt_ids = tokenizer.encode(prompt).unwrap();
            let generation = greedy(&model, &tokenizer, prompt, 20, None).unwrap();
            let expected = uncached(&model, &prompt_ids, generation.tokens.len());
            assert_eq!(
                generation.tokens,
                expected[prompt_ids.len()..],
                "prompt {prompt:?}"
            );
            assert!(!generation.tokens.is_empty(), "prompt {prompt:?}");
        }
    }
}
