//! Cost of requests from a price table: the shipped `configs/prices.toml`, with the entries of a
//! user's file added on top.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::outcome::TokenUsage;

/// The shipped price table.
pub const DEFAULT_PRICES: &str = include_str!("../../../configs/prices.toml");

/// Prices of one model in US dollars per million tokens.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    /// Prompt tokens.
    pub input: f64,
    /// Prompt tokens served from the provider's prompt cache; the `input` price when missing.
    pub cached_input: Option<f64>,
    /// Completion tokens.
    pub output: f64,
}

impl ModelPrice {
    /// Returns the cost in US dollars of one request's tokens. Cached tokens are part of the
    /// prompt tokens, as OpenAI reports them, so they are charged once at the cached price.
    pub fn cost(&self, usage: TokenUsage) -> f64 {
        let cached = usage.cached.min(usage.prompt);
        let uncached = usage.prompt - cached;
        let cached_price = self.cached_input.unwrap_or(self.input);
        (uncached as f64 * self.input
            + cached as f64 * cached_price
            + usage.completion as f64 * self.output)
            / 1e6
    }
}

/// Failure to read a price table.
#[derive(Debug, thiserror::Error)]
pub enum PriceError {
    #[error("cannot read the price table {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "invalid price table {path}: {message}. Each model is a table such as \
         [\"gpt-4o-mini\"] with `input`, `output` and optionally `cached_input`, in US dollars per \
         million tokens"
    )]
    Invalid { path: PathBuf, message: String },
}

/// Prices by model name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PriceTable(BTreeMap<String, ModelPrice>);

impl PriceTable {
    /// Reads the shipped table, then the entries of `user_file`, which replace shipped entries
    /// of the same model.
    pub fn load(user_file: Option<&Path>) -> Result<Self, PriceError> {
        let mut table = Self::parse(Path::new("configs/prices.toml"), DEFAULT_PRICES)?;
        if let Some(path) = user_file {
            let text = std::fs::read_to_string(path).map_err(|source| PriceError::Io {
                path: path.to_path_buf(),
                source,
            })?;
            table.0.extend(Self::parse(path, &text)?.0);
        }
        Ok(table)
    }

    /// Parses a price table; `path` only names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Self, PriceError> {
        let invalid = |message: String| PriceError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let prices: BTreeMap<String, ModelPrice> =
            toml::from_str(text).map_err(|e| invalid(e.message().to_string()))?;
        for (model, price) in &prices {
            let values = [Some(price.input), price.cached_input, Some(price.output)];
            if values
                .into_iter()
                .flatten()
                .any(|v| !v.is_finite() || v < 0.0)
            {
                return Err(invalid(format!(
                    "the prices of `{model}` must be finite and not negative"
                )));
            }
        }
        Ok(Self(prices))
    }

    /// Returns the price of `model`: its own entry, or else the entry of the model that it is a
    /// dated snapshot of (a listed name, then `-` and digits and dashes only, such as
    /// `gpt-4o-2024-08-06`).
    pub fn find(&self, model: &str) -> Option<ModelPrice> {
        if let Some(price) = self.0.get(model) {
            return Some(*price);
        }
        self.0
            .iter()
            .filter(|(name, _)| {
                model.strip_prefix(name.as_str()).is_some_and(|rest| {
                    rest.len() > 1
                        && rest.starts_with('-')
                        && rest.chars().all(|c| c == '-' || c.is_ascii_digit())
                })
            })
            .max_by_key(|(name, _)| name.len())
            .map(|(_, price)| *price)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_table_parses() {
        let table = PriceTable::load(None).unwrap();
        assert!(table.find("gpt-4o-mini").is_some());
    }

    #[test]
    fn snapshot_uses_longest_prefix() {
        let table = PriceTable::load(None).unwrap();
        let mini = table.find("gpt-4o-mini").unwrap();
        assert_eq!(table.find("gpt-4o-mini-2024-07-18"), Some(mini));
        assert_ne!(table.find("gpt-4o-2024-08-06"), Some(mini));
        assert_eq!(table.find("gpt-4o-minix"), None);
        assert_eq!(table.find("gpt-4o-mini-tts"), None);
        assert_eq!(table.find("llama-3"), None);
    }

    #[test]
    fn cost_charges_cached_tokens_once() {
        let price = ModelPrice {
            input: 1.0,
            cached_input: Some(0.5),
            output: 4.0,
        };
        let usage = TokenUsage {
            prompt: 1_000_000,
            completion: 500_000,
            cached: 400_000,
        };
        // 600k uncached at $1, 400k cached at $0.50, 500k completion at $4.
        let expected = 0.6 + 0.2 + 2.0;
        assert!((price.cost(usage) - expected).abs() < 1e-12);
    }

    #[test]
    fn user_file_replaces_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prices.toml");
        std::fs::write(&path, "[\"gpt-4o-mini\"]\ninput = 9\noutput = 9\n").unwrap();
        let table = PriceTable::load(Some(&path)).unwrap();
        assert_eq!(table.find("gpt-4o-mini").unwrap().input, 9.0);
        assert!(table.find("gpt-4.1").is_some());
    }

    #[test]
    fn invalid_table_names_the_file() {
        let error = PriceTable::parse(Path::new("my.toml"), "[m]\ninput = 1\n").unwrap_err();
        assert!(error.to_string().contains("my.toml"), "{error}");
        let error =
            PriceTable::parse(Path::new("my.toml"), "[m]\ninput = -1\noutput = 1\n").unwrap_err();
        assert!(error.to_string().contains("`m`"), "{error}");
    }
}
