//! `prime forward`: one network call on ids from a file, for parity checks of any model folder.

use std::borrow::Cow;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use safetensors::{Dtype, SafeTensors};

use prime_native::device_args::DeviceArgs;
use prime_native::model_arg::ModelArg;

/// Arguments of `prime forward`.
#[derive(Args, Debug)]
pub struct ForwardArgs {
    #[command(flatten)]
    model: ModelArg,
    /// Safetensors file with an integer tensor `input_ids` of shape (B, ℓ·L).
    #[arg(long)]
    input: PathBuf,
    /// Where to write float32 `logits` of shape (B, L, V_out).
    #[arg(long)]
    output: PathBuf,
    #[command(flatten)]
    device: DeviceArgs,
}

/// Reads `input_ids` (any integer dtype) as (rows, columns, values).
fn read_ids(bytes: &[u8]) -> anyhow::Result<(usize, usize, Vec<i64>)> {
    let file = SafeTensors::deserialize(bytes).context("not a valid safetensors file")?;
    let view = file.tensor("input_ids").context("no tensor `input_ids`")?;
    let shape = view.shape();
    if shape.len() != 2 {
        bail!("`input_ids` must be 2-D (B, ℓ·L), has shape {shape:?}");
    }
    let d = view.data();
    let ids: Vec<i64> = match view.dtype() {
        Dtype::I64 => d.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect(),
        Dtype::I32 => {
            d.chunks_exact(4).map(|c| i64::from(i32::from_le_bytes(c.try_into().unwrap_or([0; 4])))).collect()
        }
        Dtype::U32 => {
            d.chunks_exact(4).map(|c| i64::from(u32::from_le_bytes(c.try_into().unwrap_or([0; 4])))).collect()
        }
        Dtype::I16 => {
            d.chunks_exact(2).map(|c| i64::from(i16::from_le_bytes(c.try_into().unwrap_or([0; 2])))).collect()
        }
        Dtype::U16 => {
            d.chunks_exact(2).map(|c| i64::from(u16::from_le_bytes(c.try_into().unwrap_or([0; 2])))).collect()
        }
        Dtype::U8 => d.iter().map(|&b| i64::from(b)).collect(),
        other => bail!("`input_ids` must be an integer tensor, has dtype {other:?}"),
    };
    Ok((shape[0], shape[1], ids))
}

/// Runs the command.
pub fn run(args: ForwardArgs) -> anyhow::Result<()> {
    let device = args.device.open()?;
    let model = args.model.load(&device)?;
    let bytes = std::fs::read(&args.input).with_context(|| format!("cannot read {}", args.input.display()))?;
    let (batch, columns, ids) = read_ids(&bytes).with_context(|| format!("input {}", args.input.display()))?;
    let config = model.config();
    if columns != config.sequence_subtokens() {
        bail!(
            "`input_ids` has {columns} columns; this model takes ℓ·L = {}·{} = {}",
            config.subtokens,
            config.length,
            config.sequence_subtokens()
        );
    }
    let data = model.forward_data(&ids, batch)?;
    let logits: &[f32] = data.as_slice().map_err(|e| anyhow::anyhow!("the logits are not f32: {e:?}"))?;
    // Safetensors stores little-endian values: on such a CPU the logits are written as they lie
    // in memory (B = 4 at V = 50257 is 400 MB; building a byte copy took a quarter of a call).
    let raw: Cow<'_, [u8]> = if cfg!(target_endian = "little") {
        Cow::Borrowed(bytemuck::cast_slice(logits))
    } else {
        Cow::Owned(logits.iter().flat_map(|v| v.to_le_bytes()).collect())
    };
    let shape = vec![batch, config.length, config.output_width()];
    let view = safetensors::tensor::TensorView::new(Dtype::F32, shape, &raw)?;
    safetensors::serialize_to_file([("logits", view)], None, &args.output)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    eprintln!("wrote logits ({batch} × {} × {}) to {}", config.length, config.output_width(), args.output.display());
    Ok(())
}
