//! `prime convert`: an official MDM-Prime Lightning checkpoint → a model folder
//! (`config.json`, `model.safetensors`, `tokenizer.json`), without Python.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use prime_core::checkpoint::{WeightSource, convert};
use prime_core::model::write_dir;
use prime_core::output::DirOutput;
use prime_core::text::TextCodec;
use prime_core::weights::to_safetensors_as;
use safetensors::Dtype;

/// Arguments of `prime convert`.
#[derive(Args, Debug)]
pub struct ConvertArgs {
    /// The Lightning checkpoint (`.ckpt`) written by the official training code.
    checkpoint: PathBuf,
    /// The model folder to write. It is assembled beside its path and moved into place when
    /// whole; an existing folder that is not empty is refused unless `--force`.
    #[arg(long)]
    out: PathBuf,
    /// Replace an existing `--out` folder as a whole.
    #[arg(long)]
    force: bool,
    /// How the weights are stored.
    #[arg(long, value_enum, default_value_t = StoredDtype::F32)]
    dtype: StoredDtype,
    /// A `tokenizer.json` to use instead of the one the checkpoint carries.
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Convert the trained weights (`state_dict`) instead of the EMA weights the official
    /// sampler uses (for checkpoints without an EMA).
    #[arg(long)]
    no_ema: bool,
}

/// Storage types `--dtype` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StoredDtype {
    /// 32-bit floats, as trained.
    F32,
    /// 16-bit floats: half the size (expanded to f32 on loading: on a GPU by a shader).
    F16,
}

impl StoredDtype {
    /// The safetensors dtype.
    pub fn dtype(self) -> Dtype {
        match self {
            Self::F32 => Dtype::F32,
            Self::F16 => Dtype::F16,
        }
    }
}

/// Runs the command.
pub fn run(args: ConvertArgs) -> anyhow::Result<()> {
    let what = || format!("checkpoint {}", args.checkpoint.display());
    // The output is checked first: a refused --out should not wait for the conversion.
    let out = DirOutput::create(&args.out, args.force)?;
    let bytes =
        std::fs::read(&args.checkpoint).with_context(|| format!("cannot read {}", args.checkpoint.display()))?;
    let source = if args.no_ema { WeightSource::StateDict } else { WeightSource::Ema };
    let converted = convert(&bytes, source).with_context(what)?;
    let tokenizer = match (&args.tokenizer, converted.tokenizer) {
        (Some(path), _) => Some(std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?),
        (None, found) => found,
    };
    let config = converted.config;
    if let Some(json) = &tokenizer {
        TextCodec::from_bytes(json, config.vocab_size).context("the tokenizer does not fit the model")?;
    }
    let weights = to_safetensors_as(&converted.tensors, args.dtype.dtype())?;
    write_dir(&out, &config, &weights, tokenizer.as_deref())?;
    out.commit()?;
    if tokenizer.is_none() {
        eprintln!("notice: the checkpoint carries no tokenizer; the folder works on token ids (or pass --tokenizer)");
    }
    eprintln!(
        "wrote {} ({:?} ℓ = {}, V = {}, L = {}, {} tensors, {:.1} MB, {} weights{}){}",
        args.out.display(),
        config.model_class,
        config.subtokens,
        config.vocab_size,
        config.length,
        converted.tensors.len(),
        weights.len() as f64 / 1e6,
        if args.no_ema { "trained" } else { "EMA" },
        converted.global_step.map(|s| format!(" after {s} steps")).unwrap_or_default(),
        if tokenizer.is_some() { ", with its tokenizer" } else { "" }
    );
    Ok(())
}
