//! A tokenizer built from the vocabulary, merges and token types stored in a GGUF file.
//!
//! candle's own helper treats every GPT-2-style vocabulary alike and adds a leading space,
//! which gives SmolLM2 the wrong ids ("Hello" becomes 38699, " Hello", instead of 19556). This
//! builder follows llama.cpp instead: no prefix space, digits split one by one for the
//! `smollm` pre-tokenizer, and control tokens matched only in template markup.

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{AddedToken, Tokenizer};

use crate::error::{LocalError, Result};
use crate::gguf::GgufFile;

/// GGUF token type of control tokens such as `<|im_start|>`.
const TOKEN_TYPE_CONTROL: i64 = 3;
/// GGUF token type of user-defined tokens, matched in any text.
const TOKEN_TYPE_USER_DEFINED: i64 = 4;

/// Names of end-of-turn tokens used by common chat formats, tried in order when the file does
/// not name one.
const END_OF_TURN_NAMES: [&str; 4] = ["<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>"];

/// Text to token ids and back, for one model.
pub struct GgufTokenizer {
    /// Matches control tokens in the text; used for chat-template markup only.
    markup: Tokenizer,
    /// Reads control-token names as plain text; used for everything a user supplies, so a
    /// document containing `<|im_end|>` cannot end the turn early.
    plain: Tokenizer,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub end_of_turn: Option<u32>,
    pub bos_text: String,
    pub eos_text: String,
}

impl GgufTokenizer {
    pub fn from_gguf(file: &GgufFile) -> Result<Self> {
        let fail = |reason: String| LocalError::Tokenizer {
            path: file.path().to_path_buf(),
            reason,
        };

        let kind = file.string("tokenizer.ggml.model")?;
        if kind != "gpt2" {
            return Err(fail(format!(
                "tokenizer model `{kind}` is not supported; only byte-level BPE (`gpt2`) vocabularies are"
            )));
        }
        let tokens = file.strings("tokenizer.ggml.tokens")?;
        let merges = file.strings("tokenizer.ggml.merges")?;
        let types = file
            .integers("tokenizer.ggml.token_type")
            .unwrap_or_else(|_| vec![1; tokens.len()]);
        let pre = file.string("tokenizer.ggml.pre").unwrap_or("default");

        let vocab: Vocab = tokens
            .iter()
            .enumerate()
            .map(|(id, token)| ((*token).to_string(), id as u32))
            .collect();
        let merges = merges
            .iter()
            .map(|merge| {
                merge
                    .split_once(' ')
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .ok_or_else(|| {
                        fail(format!(
                            "merge `{merge}` is not two tokens separated by a space"
                        ))
                    })
            })
            .collect::<Result<Vec<_>>>()?;

        let build = |with_control: bool| -> Result<Tokenizer> {
            let bpe = BPE::builder()
                .vocab_and_merges(vocab.clone(), merges.clone())
                .build()
                .map_err(|e| fail(e.to_string()))?;
            let mut tokenizer = Tokenizer::new(bpe);
            let byte_level = ByteLevel::new(false, true, true);
            let mut steps: Vec<PreTokenizerWrapper> = Vec::new();
            if splits_digits(pre) {
                steps.push(Digits::new(true).into());
            }
            steps.push(byte_level.into());
            tokenizer.with_pre_tokenizer(Some(Sequence::new(steps)));
            tokenizer.with_decoder(Some(ByteLevelDecoder::default()));

            let mut special = Vec::new();
            let mut user = Vec::new();
            for (id, kind) in types.iter().enumerate() {
                let content = tokens[id];
                match *kind {
                    TOKEN_TYPE_CONTROL if with_control => {
                        special.push(AddedToken::from(content, true));
                    }
                    TOKEN_TYPE_USER_DEFINED => user.push(AddedToken::from(content, false)),
                    _ => {}
                }
            }
            tokenizer.add_special_tokens(&special);
            tokenizer.add_tokens(&user);
            Ok(tokenizer)
        };

        let id_of = |key: &str| file.integer(key).ok().map(|v| v as u32);
        let bos = id_of("tokenizer.ggml.bos_token_id");
        let eos = id_of("tokenizer.ggml.eos_token_id");
        let end_of_turn = id_of("tokenizer.ggml.eot_token_id").or_else(|| {
            END_OF_TURN_NAMES
                .iter()
                .find_map(|name| vocab.get(*name).copied())
        });
        let text_of = |id: Option<u32>| {
            id.and_then(|id| tokens.get(id as usize))
                .map_or_else(String::new, |t| (*t).to_string())
        };

        Ok(Self {
            markup: build(true)?,
            plain: build(false)?,
            bos,
            eos,
            end_of_turn,
            bos_text: text_of(bos),
            eos_text: text_of(eos),
        })
    }

    /// Encodes user text: control-token names stay plain text.
    pub fn encode_text(&self, text: &str) -> Result<Vec<u32>> {
        encode(&self.plain, text)
    }

    /// Encodes template markup: control-token names become their tokens.
    pub fn encode_markup(&self, text: &str) -> Result<Vec<u32>> {
        encode(&self.markup, text)
    }

    /// Returns the tokenizer that reads every text as plain text, for training on documents.
    pub fn plain(&self) -> &Tokenizer {
        &self.plain
    }

    /// Decodes generated ids, leaving control tokens out.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.markup
            .decode(ids, true)
            .map_err(|e| LocalError::Setting(format!("cannot decode tokens: {e}")))
    }

    /// Returns true for the tokens that end a generation.
    pub fn is_end(&self, id: u32) -> bool {
        Some(id) == self.eos || Some(id) == self.end_of_turn
    }

    pub fn vocab_size(&self) -> usize {
        self.markup.get_vocab_size(true)
    }
}

fn encode(tokenizer: &Tokenizer, text: &str) -> Result<Vec<u32>> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    tokenizer
        .encode(text, false)
        .map(|encoding| encoding.get_ids().to_vec())
        .map_err(|e| LocalError::Setting(format!("cannot tokenize the text: {e}")))
}

/// Pre-tokenizers of llama.cpp that split numbers into single digits.
fn splits_digits(pre: &str) -> bool {
    matches!(pre, "smollm" | "starcoder" | "refact")
}
