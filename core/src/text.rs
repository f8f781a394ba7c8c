//! The optional `tokenizer.json` of a model folder (Hugging Face `tokenizers` format).

use std::str::FromStr;

use crate::config::json_text;
use crate::error::{PrimeError, Result};

/// Text ↔ token ids for one model.
#[derive(Debug, Clone)]
pub struct TextCodec {
    inner: tokenizers::Tokenizer,
}

impl TextCodec {
    /// Parses `tokenizer.json` bytes and checks that its vocabulary (without added tokens) fits
    /// the model's vocabulary of `vocab`.
    pub fn from_bytes(bytes: &[u8], vocab: u32) -> Result<Self> {
        let text = json_text(bytes).map_err(PrimeError::Tokenizer)?;
        // The syntax is checked here first: `tokenizers` panics (instead of failing) on some
        // malformed JSON inside a nested object such as the decoder.
        serde_json::from_str::<serde::de::IgnoredAny>(text)
            .map_err(|e| PrimeError::Tokenizer(format!("not valid JSON: {e}")))?;
        let inner = tokenizers::Tokenizer::from_str(text).map_err(|e| PrimeError::Tokenizer(e.to_string()))?;
        // Added special tokens may lie beyond V (GPT-2 as the official code loads it has a
        // `[PAD]` at 50257): they are never sampled, and a prompt that encodes to one is
        // refused where token ids are checked.
        let size = inner.get_vocab_size(false);
        if size > vocab as usize {
            return Err(PrimeError::Tokenizer(format!(
                "tokenizer has {size} tokens, more than the model's vocabulary of {vocab}"
            )));
        }
        Ok(Self { inner })
    }

    /// Number of tokens, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Token ids of `text`, without special tokens.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self.inner.encode(text, false).map_err(|e| PrimeError::Tokenizer(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Text of `ids`, special tokens skipped.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, true).map_err(|e| PrimeError::Tokenizer(e.to_string()))
    }

    /// Text of one token, as shown for a token cell.
    pub fn token_text(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }
}
