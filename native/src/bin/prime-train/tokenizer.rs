//! `prime-train tokenizer`: trains the byte-level BPE of the demo models on the training split.

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, ensure};
use clap::Args;
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::normalizers::NormalizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{Tokenizer, TokenizerBuilder};

/// Arguments of `prime-train tokenizer`.
#[derive(Debug, Args)]
pub struct TokenizerArgs {
    /// Training text (one paragraph per line), as written by `prime-train corpus`.
    #[arg(long, default_value = "data/austen/train.txt")]
    corpus: PathBuf,
    /// Vocabulary size, including the 256 byte tokens.
    #[arg(long, default_value_t = 4096)]
    vocab: usize,
    /// Where to write `tokenizer.json`.
    #[arg(long, default_value = "data/austen/tokenizer.json")]
    out: PathBuf,
}

/// Runs `prime-train tokenizer`.
pub fn run(args: &TokenizerArgs) -> Result<()> {
    ensure!(args.vocab > 256, "--vocab must exceed the 256 byte tokens, got {}", args.vocab);
    ensure!(args.corpus.is_file(), "corpus {} not found (run `prime-train corpus` first)", args.corpus.display());
    let tokenizer = train(&args.corpus, args.vocab)?;
    let json = tokenizer.to_string(false).map_err(|e| anyhow!("cannot serialise the tokenizer: {e}"))?;
    prime_core::output::FileOutput::write_all_to(&args.out, json.as_bytes())?;
    prime_native::say!("{} tokens written to {}", tokenizer.get_vocab_size(true), args.out.display())?;
    Ok(())
}

/// Trains a byte-level BPE of `vocab` tokens (no special tokens: the model's mask is not a token).
pub fn train(corpus: &std::path::Path, vocab: usize) -> Result<Tokenizer> {
    let mut trainer = BpeTrainerBuilder::new()
        .show_progress(false)
        .vocab_size(vocab)
        .min_frequency(2)
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    // No prefix space: decoding the encoding of any text gives the text back unchanged.
    let byte_level = ByteLevel::new(false, true, true);
    let mut tokenizer = TokenizerBuilder::new()
        .with_model(BPE::default())
        .with_normalizer(None::<NormalizerWrapper>)
        .with_pre_tokenizer(Some(byte_level))
        .with_post_processor(Some(byte_level))
        .with_decoder(Some(byte_level))
        .build()
        .map_err(|e| anyhow!("cannot build the tokenizer: {e}"))?;
    let file = corpus.to_str().context("corpus path is not UTF-8")?.to_string();
    tokenizer.train_from_files(&mut trainer, vec![file]).map_err(|e| anyhow!("BPE training failed: {e}"))?;
    Ok(tokenizer.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trained_tokenizer_round_trips_text() {
        let dir = std::env::temp_dir().join(format!("prime-bpe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let corpus = dir.join("train.txt");
        let para = "It is a truth universally acknowledged, that a single man in possession of a good fortune, \
                    must be in want of a wife.\n";
        std::fs::write(&corpus, para.repeat(20)).unwrap();
        let tokenizer = train(&corpus, 400).unwrap();
        assert!(tokenizer.get_vocab_size(true) <= 400);
        for text in [para, "“Mr. Darcy!” — naïve café, 1813.\n\nTwo  spaces", ""] {
            let ids = tokenizer.encode(text, false).unwrap().get_ids().to_vec();
            assert_eq!(tokenizer.decode(&ids, false).unwrap(), text);
        }
        // Merges were learned: the repeated paragraph takes far fewer tokens than bytes.
        let n = tokenizer.encode(para, false).unwrap().get_ids().len();
        assert!(n * 3 < para.len(), "{n} tokens for {} bytes", para.len());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
