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
/// NOTE: every token re-runs the whole context because the model has no key/value cache; that
/// is fine for short answers of small models but quadratic in the output length.
pub fn greedy(
    model: &Llama,
    tokenizer: &TextTokenizer,
    prompt: &str,
    max_new_tokens: usize,
    stop: Option<&str>,
) -> Result<Generation> {
    let mut context = tokenizer.encode(prompt)?;
    let window = model.config().max_seq_len;
    let mut tokens = Vec::new();
    let mut probabilities = Vec::new();
    let mut text = String::new();

    for _ in 0..max_new_tokens {
        let start = context.len().saturating_sub(window);
        let input = Tensor::new(&context[start..], model.device())?.unsqueeze(0)?;
        let logits = model.forward(&input)?.detach();
        let last = logits.squeeze(0)?.get(context.len() - start - 1)?;
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
