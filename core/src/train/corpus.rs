//! A tokenised corpus from which training windows are cut.

use crate::error::{PrimeError, Result};
use crate::rng::{CounterRng, Stream};

/// Token ids of a whole split, in order: running text, or records of one sequence each (images).
#[derive(Debug, Clone)]
pub struct TokenCorpus {
    tokens: Vec<u32>,
    /// Windows start at multiples of this: 1 for running text, the record length for records.
    record: usize,
    /// The class of each record (empty: the records have none).
    labels: Vec<u32>,
}

impl TokenCorpus {
    /// Wraps running text `tokens`; there must be at least one window of `length` and every id
    /// below `vocab`. Training windows start anywhere.
    pub fn new(tokens: Vec<u32>, length: usize, vocab: u32) -> Result<Self> {
        Self::check(&tokens, length, vocab)?;
        Ok(Self { tokens, record: 1, labels: Vec::new() })
    }

    /// Wraps records of exactly `length` tokens each, back to back (an image per record):
    /// training windows are whole records, never straddling two.
    pub fn records(tokens: Vec<u32>, length: usize, vocab: u32) -> Result<Self> {
        Self::check(&tokens, length, vocab)?;
        if !tokens.len().is_multiple_of(length) {
            return Err(PrimeError::Input(format!("{} tokens are not whole records of {length}", tokens.len())));
        }
        Ok(Self { tokens, record: length, labels: Vec::new() })
    }

    /// Gives each record its class (one label per record, each below `classes`).
    pub fn with_labels(mut self, labels: Vec<u32>, classes: usize) -> Result<Self> {
        let records = self.tokens.len() / self.record;
        if self.record == 1 || labels.len() != records {
            return Err(PrimeError::Input(format!(
                "{} labels for {records} records: every record needs one class",
                labels.len()
            )));
        }
        if let Some(bad) = labels.iter().find(|&&l| l as usize >= classes) {
            return Err(PrimeError::Input(format!("label {bad} is not one of the {classes} classes")));
        }
        self.labels = labels;
        Ok(self)
    }

    fn check(tokens: &[u32], length: usize, vocab: u32) -> Result<()> {
        if tokens.len() < length {
            return Err(PrimeError::Input(format!(
                "the corpus has {} tokens, fewer than one sequence of {length}",
                tokens.len()
            )));
        }
        if let Some(&bad) = tokens.iter().find(|&&t| t >= vocab) {
            return Err(PrimeError::Input(format!("corpus token {bad} is outside the vocabulary of {vocab}")));
        }
        Ok(())
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether the corpus is empty (never, once built).
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The training window of batch row `row` at `step`: a uniform offset keyed on the stream
    /// (a uniform record, for records).
    pub fn random_window(&self, rng: &CounterRng, step: u32, row: u32, length: usize) -> &[u32] {
        let start = self.random_start(rng, step, row, length);
        &self.tokens[start..start + length]
    }

    /// The class of the record [`Self::random_window`] cuts for the same arguments (`None`
    /// where the records have no labels).
    pub fn random_label(&self, rng: &CounterRng, step: u32, row: u32, length: usize) -> Option<u32> {
        let start = self.random_start(rng, step, row, length);
        self.labels.get(start / self.record).copied()
    }

    fn random_start(&self, rng: &CounterRng, step: u32, row: u32, length: usize) -> usize {
        let starts = ((self.tokens.len() - length) / self.record + 1) as u64;
        let word = u64::from(rng.word(Stream::TrainSample, step, row, 1)) << 32
            | u64::from(rng.word(Stream::TrainSample, step, row, 2));
        (word % starts) as usize * self.record
    }

    /// Consecutive non-overlapping windows of `length` (the tail shorter than `length` is left out).
    pub fn windows(&self, length: usize) -> impl Iterator<Item = &[u32]> {
        self.tokens.chunks_exact(length)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_windows_never_straddle_two_records() {
        let tokens: Vec<u32> = (0..5).flat_map(|r| [r; 4]).collect();
        let corpus = TokenCorpus::records(tokens, 4, 5).unwrap();
        let rng = CounterRng::new(7);
        let mut seen = [false; 5];
        for step in 0..64 {
            let w = corpus.random_window(&rng, step, 0, 4);
            assert!(w.iter().all(|&t| t == w[0]), "{w:?}");
            seen[w[0] as usize] = true;
        }
        assert!(seen.iter().all(|&s| s), "every record is drawn: {seen:?}");
        assert!(TokenCorpus::records(vec![0; 6], 4, 5).is_err());
    }

    #[test]
    fn a_window_comes_with_its_record_s_class() {
        let tokens: Vec<u32> = (0..5).flat_map(|r| [r; 4]).collect();
        let labels = vec![2, 0, 1, 1, 2];
        let corpus = TokenCorpus::records(tokens.clone(), 4, 5).unwrap().with_labels(labels.clone(), 3).unwrap();
        let rng = CounterRng::new(9);
        for step in 0..20 {
            let w = corpus.random_window(&rng, step, 1, 4);
            assert_eq!(corpus.random_label(&rng, step, 1, 4), Some(labels[w[0] as usize]));
        }
        let records = || TokenCorpus::records(tokens.clone(), 4, 5).unwrap();
        assert!(records().with_labels(vec![0; 4], 3).is_err(), "a label short");
        assert!(records().with_labels(vec![0, 0, 0, 0, 3], 3).is_err(), "a label out of range");
        assert!(TokenCorpus::new(tokens.clone(), 4, 5).unwrap().with_labels(vec![0; 20], 3).is_err(), "running text");
        assert_eq!(records().random_label(&rng, 0, 0, 4), None);
    }
}
