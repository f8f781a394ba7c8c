//! `prime init`: a randomly initialised model folder of an official shape, for benchmarks and
//! for trying the runtime at real size without a trained checkpoint.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use prime_core::image::ImageShape;
use prime_core::model::write_dir;
use prime_core::network::parameter_shapes;
use prime_core::output::DirOutput;
use prime_core::text::TextCodec;
use prime_core::train::initial_weights;
use prime_core::weights::to_safetensors_as;

use crate::convert::StoredDtype;
use prime_core::{ModelClass, ModelConfig};

/// Arguments of `prime init`.
#[derive(Args, Debug)]
pub struct InitArgs {
    /// The official shape to make.
    #[arg(long, value_enum)]
    preset: Preset,
    /// The model folder to write. It is assembled beside its path and moved into place when
    /// whole; an existing folder that is not empty is refused unless `--force`.
    #[arg(long)]
    out: PathBuf,
    /// Replace an existing `--out` folder as a whole.
    #[arg(long)]
    force: bool,
    /// Seed of the random weights.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Vocabulary size V instead of GPT-2's 50257 (the base b follows from V and ℓ).
    #[arg(long)]
    vocab: Option<u32>,
    /// Sequence length L instead of the preset's 1024 (a smaller model of the same kind).
    #[arg(long)]
    length: Option<usize>,
    /// Hidden size instead of the preset's 768.
    #[arg(long)]
    hidden: Option<usize>,
    /// Number of blocks instead of the preset's 12.
    #[arg(long)]
    blocks: Option<usize>,
    /// Number of attention heads instead of the preset's 12 (must divide the hidden size).
    #[arg(long)]
    heads: Option<usize>,
    /// How the weights are stored (f16: half the download for the browser).
    #[arg(long, value_enum, default_value_t = StoredDtype::F32)]
    dtype: StoredDtype,
    /// An image model of WIDTHxHEIGHT pixels instead (each pixel a token: V = 256,
    /// L = WIDTH × HEIGHT, with a learned position embedding as `prime-train` gives image models).
    #[arg(long, value_parser = parse_image, conflicts_with_all = ["vocab", "length", "tokenizer"])]
    image: Option<ImageShape>,
    /// A `tokenizer.json` to copy into the folder (e.g. the GPT-2 one `prime convert` recovers).
    #[arg(long)]
    tokenizer: Option<PathBuf>,
}

fn parse_image(s: &str) -> Result<ImageShape, String> {
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(|| format!("expected WIDTHxHEIGHT, got `{s}`"))?;
    let side = |v: &str| v.trim().parse::<usize>().map_err(|_| format!("bad size `{v}` in `{s}`"));
    Ok(ImageShape { width: side(w)?, height: side(h)? })
}

/// The OpenWebText models of the paper (spec §7): GPT-2 vocabulary, L = 1024, hidden 768,
/// 12 blocks, 12 heads, conditioning 128.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Preset {
    /// MDLM (ℓ = 1).
    OwtL1,
    /// MDM-Prime, ℓ = 2.
    OwtL2,
    /// MDM-Prime, ℓ = 4.
    OwtL4,
}

impl Preset {
    fn config(self) -> ModelConfig {
        let subtokens = match self {
            Self::OwtL1 => 1,
            Self::OwtL2 => 2,
            Self::OwtL4 => 4,
        };
        ModelConfig {
            model_class: if subtokens == 1 { ModelClass::DIT } else { ModelClass::PerceiverDIT },
            vocab_size: 50257,
            subtokens,
            base: None,
            hidden_size: 768,
            n_blocks: 12,
            n_heads: 12,
            cond_dim: 128,
            length: 1024,
            mlp_ratio: 4,
            layer_norm_eps: 1e-5,
            rope_base: 10000.0,
            frequency_embedding_size: 256,
            carry_over: true,
            image: None,
            position_embedding: false,
            classes: Vec::new(),
            sampling: Default::default(),
        }
    }
}

/// Runs the command.
pub fn run(args: InitArgs) -> anyhow::Result<()> {
    let mut config = args.preset.config();
    config.vocab_size = args.vocab.unwrap_or(config.vocab_size);
    config.length = args.length.unwrap_or(config.length);
    config.hidden_size = args.hidden.unwrap_or(config.hidden_size);
    config.n_blocks = args.blocks.unwrap_or(config.n_blocks);
    config.n_heads = args.heads.unwrap_or(config.n_heads);
    if let Some(shape) = args.image {
        config = config.into_image(shape);
    }
    config.validate().context("the model these options describe")?;
    let out = DirOutput::create(&args.out, args.force)?;
    let tokenizer = match &args.tokenizer {
        Some(path) => {
            let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            TextCodec::from_bytes(&bytes, config.vocab_size).with_context(|| format!("{}", path.display()))?;
            Some(bytes)
        }
        None => None,
    };
    // The init leaves the adaLN modulations and the output layer at zero (as the official
    // init does), which makes every output uniform; the cost of a network call is the same.
    let mut weights = initial_weights(&config, args.seed)?;
    let tensors = parameter_shapes(&config)?
        .into_iter()
        .map(|(name, shape)| Ok((name.clone(), weights.take(&name, &shape)?.into_host())))
        .collect::<prime_core::Result<Vec<_>>>()?;
    let bytes = to_safetensors_as(&tensors, args.dtype.dtype())?;
    write_dir(&out, &config, &bytes, tokenizer.as_deref())?;
    out.commit()?;
    eprintln!(
        "wrote {} ({:?} ℓ = {}, V = {}, L = {}, D = {}, {} blocks; {:.0} MB of random {:?} weights)",
        args.out.display(),
        config.model_class,
        config.subtokens,
        config.vocab_size,
        config.length,
        config.hidden_size,
        config.n_blocks,
        bytes.len() as f64 / 1e6,
        args.dtype.dtype()
    );
    Ok(())
}
