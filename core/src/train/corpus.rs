//! A tokenised corpus from which training windows are cut.

use crate::error::{PrimeError, Result};
use crate::rng::{CounterRng, Stream};

/// Token ids of a whole split, in order.
#[derive(Debug, Clone)]
pub struct TokenCorpus {
    tokens: Vec<u32>,
}

impl TokenCorpus {
    /// Wraps `tokens`; there must be at least one window of `length` and every id below `vocab`.
    pub fn new(tokens: Vec<u32>, length: usize, vocab: u32) -> Result<Self> {
        if tokens.len() < length {
            return Err(PrimeError::Input(format!(
                "the corpus has {} tokens, fewer than one sequence of {length}",
                tokens.len()
            )));
        }
        if let Some(&bad) = tokens.iter().find(|&&t| t >= vocab) {
            return Err(PrimeError::Input(format!("corpus token {bad} is outside the vocabulary of {vocab}")));
        }
        Ok(Self { tokens })
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether the corpus is empty (never, once built).
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The training window of batch row `row` at `step`: a uniform offset keyed on the stream.
    pub fn random_window(&self, rng: &CounterRng, step: u32, row: u32, length: usize) -> &[u32] {
        let starts = (self.tokens.len() - length + 1) as u64;
        let word = u64::from(rng.word(Stream::TrainSample, step, row, 1)) << 32
            | u64::from(rng.word(Stream::TrainSample, step, row, 2));
        let start = (word % starts) as usize;
        &self.tokens[start..start + length]
    }

    /// Consecutive non-overlapping windows of `length` (the tail shorter than `length` is left out).
    pub fn windows(&self, length: usize) -> impl Iterator<Item = &[u32]> {
        self.tokens.chunks_exact(length)
    }
}
