//! `prime forward`: one network call on ids from a file, for parity checks of any model folder.

use std::borrow::Cow;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use prime_core::output::FileOutput;
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
    let shape = [batch, config.length, config.output_width()];
    write_logits(&args.output, shape, |write| model.forward_blocks(&ids, batch, block_rows(shape[2]), write))
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    eprintln!("wrote logits ({batch} × {} × {}) to {}", config.length, config.output_width(), args.output.display());
    Ok(())
}

/// Rows of logits per block: about 32 MiB of them.
fn block_rows(width: usize) -> usize {
    (32 << 20) / (4 * width.max(1))
}

/// Writes a safetensors file holding one f32 tensor `logits` of `shape`, whose values
/// `produce` hands over block by block (row-major, in order), so that they are never all in
/// memory at once (safetensors' own writer takes the whole buffer). The file appears at its path
/// only once whole (see [`FileOutput`]): a failed run leaves no partial file and an earlier file
/// by that name untouched.
fn write_logits(
    path: &Path,
    shape: [usize; 3],
    produce: impl FnOnce(&mut dyn FnMut(&[f32]) -> prime_core::Result<()>) -> prime_core::Result<()>,
) -> anyhow::Result<()> {
    let bytes = shape
        .iter()
        .try_fold(4usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| anyhow::anyhow!("logits of shape {shape:?} exceed this machine's address space"))?;
    let mut header =
        serde_json::json!({ "logits": { "dtype": "F32", "shape": shape, "data_offsets": [0, bytes] } }).to_string();
    // The data starts 8-byte aligned: the header is padded with spaces, as the format allows.
    header.push_str(&" ".repeat((8 - header.len() % 8) % 8));
    let mut file = FileOutput::create(path)?;
    file.write_all(&(header.len() as u64).to_le_bytes())?;
    file.write_all(header.as_bytes())?;
    let mut written = 0;
    produce(&mut |values: &[f32]| {
        // Safetensors stores little-endian values: on such a CPU they are written as they lie
        // in memory.
        let raw: Cow<'_, [u8]> = if cfg!(target_endian = "little") {
            Cow::Borrowed(bytemuck::cast_slice(values))
        } else {
            Cow::Owned(values.iter().flat_map(|v| v.to_le_bytes()).collect())
        };
        written += raw.len();
        file.write_all(&raw).map_err(|e| prime_core::PrimeError::io(path, e))
    })?;
    if written != bytes {
        bail!("the network produced {written} bytes of logits, {bytes} expected");
    }
    Ok(file.commit()?)
}
