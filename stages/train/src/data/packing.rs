//! Packs tokenized documents into fixed-length sequences with EOS separators.
//!
//! Each epoch shuffles the training documents with a seed derived from the run seed and the
//! epoch, concatenates them with an EOS token after each, cuts the stream into sequences of
//! `seq_len + 1` tokens (inputs plus the shifted targets) and shuffles the sequences. The token
//! count is the same in every epoch, so every epoch has the same number of sequences and the
//! sequence of any step is a pure function of the seed and the step, which makes resuming exact.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::error::{Result, TrainError};

/// Tokenized training and validation documents.
#[derive(Clone, Debug)]
pub struct PackedCorpus {
    train: Vec<Vec<u32>>,
    validation: Vec<u32>,
    seq_len: usize,
    eos_id: u32,
    seed: u64,
    sequences_per_epoch: usize,
}

impl PackedCorpus {
    /// Shuffles `documents` with `seed` and keeps the first `validation_fraction` of them
    /// (at least one when the fraction is positive) for validation.
    pub fn new(
        mut documents: Vec<Vec<u32>>,
        seq_len: usize,
        eos_id: u32,
        seed: u64,
        validation_fraction: f64,
    ) -> Result<Self> {
        if !(0.0..1.0).contains(&validation_fraction) {
            return Err(TrainError::Config(format!(
                "data.validation_fraction {validation_fraction} must be at least 0 and below 1"
            )));
        }
        if seq_len == 0 {
            return Err(TrainError::Config(
                "data.seq_len must be greater than 0".into(),
            ));
        }
        documents.retain(|d| !d.is_empty());
        if documents.is_empty() {
            return Err(TrainError::EmptyCorpus);
        }
        documents.shuffle(&mut StdRng::seed_from_u64(mix(seed, u64::MAX)));

        let validation_count = if validation_fraction > 0.0 {
            ((documents.len() as f64 * validation_fraction).ceil() as usize)
                .min(documents.len() - 1)
        } else {
            0
        };
        let train = documents.split_off(validation_count);
        let mut validation = Vec::new();
        for document in &documents {
            validation.extend_from_slice(document);
            validation.push(eos_id);
        }
        let tokens: usize = train.iter().map(|d| d.len() + 1).sum();
        Ok(Self {
            train,
            validation,
            seq_len,
            eos_id,
            seed,
            sequences_per_epoch: tokens / (seq_len + 1),
        })
    }

    pub fn seq_len(&self) -> usize {
        self.seq_len
    }

    pub fn train_documents(&self) -> usize {
        self.train.len()
    }

    /// Training tokens per epoch, EOS separators included.
    pub fn train_tokens(&self) -> usize {
        self.train.iter().map(|d| d.len() + 1).sum()
    }

    pub fn sequences_per_epoch(&self) -> usize {
        self.sequences_per_epoch
    }

    /// Returns the sequences of one epoch, each `seq_len + 1` tokens, flattened.
    pub fn epoch(&self, epoch: u64) -> Vec<u32> {
        let mut order: Vec<usize> = (0..self.train.len()).collect();
        let mut rng = StdRng::seed_from_u64(mix(self.seed, epoch));
        order.shuffle(&mut rng);

        let width = self.seq_len + 1;
        let mut stream = Vec::with_capacity(self.train_tokens());
        for index in order {
            stream.extend_from_slice(&self.train[index]);
            stream.push(self.eos_id);
        }
        stream.truncate(self.sequences_per_epoch * width);

        let mut sequences: Vec<usize> = (0..self.sequences_per_epoch).collect();
        sequences.shuffle(&mut rng);
        let mut shuffled = Vec::with_capacity(stream.len());
        for sequence in sequences {
            shuffled.extend_from_slice(&stream[sequence * width..(sequence + 1) * width]);
        }
        shuffled
    }

    /// Returns the validation sequences, each `seq_len + 1` tokens, flattened; the same in
    /// every call.
    pub fn validation(&self) -> &[u32] {
        let width = self.seq_len + 1;
        &self.validation[..self.validation.len() / width * width]
    }
}

/// Mixes a seed and a stream number into one seed (SplitMix64 finaliser).
pub fn mix(seed: u64, stream: u64) -> u64 {
    let mut z = seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
