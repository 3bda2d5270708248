//! Byte-level BPE tokenizers trained on the corpus, and loading a base model's tokenizer.

use std::path::Path;

use serde::{Deserialize, Serialize};
use tokenizers::decoders::DecoderWrapper;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::models::{ModelWrapper, TrainerWrapper};
use tokenizers::normalizers::NormalizerWrapper;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::processors::PostProcessorWrapper;
use tokenizers::{AddedToken, Tokenizer, TokenizerBuilder};

use crate::error::{Result, TrainError};

/// End-of-sequence token that separates packed documents.
pub const EOS_TOKEN: &str = "<|endoftext|>";

/// How to get the tokenizer of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenizerConfig {
    /// A Hugging Face `tokenizer.json` to use as it is, such as a base model's. When unset, a
    /// byte-level BPE tokenizer is trained on the training documents.
    pub path: Option<std::path::PathBuf>,
    /// Vocabulary size of a trained tokenizer, including the 256 byte tokens and EOS.
    pub vocab_size: usize,
    /// Minimum count of a pair of tokens to be merged.
    pub min_frequency: u64,
    /// End-of-sequence token, which must be in the vocabulary.
    pub eos_token: String,
}

impl Default for TokenizerConfig {
    fn default() -> Self {
        Self {
            path: None,
            vocab_size: 2048,
            min_frequency: 2,
            eos_token: EOS_TOKEN.to_string(),
        }
    }
}

/// A tokenizer with its end-of-sequence id.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    eos_id: u32,
}

impl TextTokenizer {
    /// Trains a byte-level BPE tokenizer on `documents`.
    pub fn train<S: AsRef<str> + Send>(
        config: &TokenizerConfig,
        documents: impl Iterator<Item = S> + Send,
    ) -> Result<Self> {
        if config.vocab_size < 258 {
            return Err(TrainError::Config(format!(
                "tokenizer.vocab_size {} is below 258, the 256 byte tokens plus EOS and one merge",
                config.vocab_size
            )));
        }
        let mut trainer = TrainerWrapper::from(
            BpeTrainerBuilder::new()
                .vocab_size(config.vocab_size)
                .min_frequency(config.min_frequency)
                .show_progress(false)
                .special_tokens(vec![AddedToken::from(config.eos_token.clone(), true)])
                .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
                .build(),
        );
        let byte_level = ByteLevel::new(false, true, true);
        let mut tokenizer = TokenizerBuilder::<
            ModelWrapper,
            NormalizerWrapper,
            PreTokenizerWrapper,
            PostProcessorWrapper,
            DecoderWrapper,
        >::new()
        .with_model(BPE::default().into())
        .with_normalizer(None)
        .with_pre_tokenizer(Some(byte_level.into()))
        .with_post_processor(None)
        .with_decoder(Some(ByteLevelDecoder::default().into()))
        .build()
        .map_err(|e| TrainError::Tokenizer(e.to_string()))?;
        tokenizer
            .train(&mut trainer, documents)
            .map_err(|e| TrainError::Tokenizer(format!("training failed: {e}")))?;
        Self::from_tokenizer(Tokenizer::from(tokenizer), &config.eos_token)
    }

    /// Loads a Hugging Face `tokenizer.json`.
    pub fn load(path: &Path, eos_token: &str) -> Result<Self> {
        let inner = Tokenizer::from_file(path)
            .map_err(|e| TrainError::Tokenizer(format!("cannot load {}: {e}", path.display())))?;
        Self::from_tokenizer(inner, eos_token)
    }

    /// Wraps a tokenizer whose vocabulary contains `eos_token`.
    pub fn from_tokenizer(inner: Tokenizer, eos_token: &str) -> Result<Self> {
        let eos_id = inner.token_to_id(eos_token).ok_or_else(|| {
            TrainError::Tokenizer(format!(
                "the vocabulary has no end-of-sequence token `{eos_token}`; set tokenizer.eos_token"
            ))
        })?;
        Ok(Self { inner, eos_id })
    }

    /// Writes the tokenizer as `tokenizer.json`.
    pub fn save(&self, path: &Path) -> Result<()> {
        self.inner
            .save(path, false)
            .map_err(|e| TrainError::Tokenizer(format!("cannot write {}: {e}", path.display())))
    }

    pub fn eos_id(&self) -> u32 {
        self.eos_id
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Returns the token ids of `text`, without special tokens.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .inner
            .encode(text, false)
            .map_err(|e| TrainError::Tokenizer(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Returns the token ids of every text, encoded in parallel.
    pub fn encode_all<S: AsRef<str> + Sync>(&self, texts: &[S]) -> Result<Vec<Vec<u32>>> {
        let inputs: Vec<&str> = texts.iter().map(AsRef::as_ref).collect();
        let encodings = self
            .inner
            .encode_batch(inputs, false)
            .map_err(|e| TrainError::Tokenizer(e.to_string()))?;
        Ok(encodings.iter().map(|e| e.get_ids().to_vec()).collect())
    }

    /// Returns the text of `ids`, leaving special tokens out.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, true)
            .map_err(|e| TrainError::Tokenizer(e.to_string()))
    }
}
