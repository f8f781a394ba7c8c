//! The browser's parity check against the official network: a golden `cases.safetensors`
//! (`input_ids` I64 (B, ℓ·L), `logits` F32 (B, L, V_out)) run through the loaded model.

use prime_core::{Model, PrimeError, Result};
use safetensors::{Dtype, SafeTensors};

fn tensor<'a>(file: &'a SafeTensors<'a>, name: &str, dtype: Dtype) -> Result<(Vec<usize>, &'a [u8])> {
    let view = file.tensor(name).map_err(|e| PrimeError::Input(format!("golden cases: `{name}`: {e}")))?;
    if view.dtype() != dtype {
        return Err(PrimeError::Input(format!("golden cases: `{name}` is {:?}, expected {dtype:?}", view.dtype())));
    }
    Ok((view.shape().to_vec(), view.data()))
}

/// Largest |Δ| between the model's logits and the official ones, over every case.
pub async fn logits_deviation(model: &Model, cases: &[u8]) -> Result<f32> {
    let file = SafeTensors::deserialize(cases).map_err(|e| PrimeError::Input(format!("golden cases: {e}")))?;
    let (shape, ids) = tensor(&file, "input_ids", Dtype::I64)?;
    let ids: Vec<i64> = ids.chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap_or([0; 8]))).collect();
    let (_, want) = tensor(&file, "logits", Dtype::F32)?;
    let want = want.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap_or([0; 4])));
    let got = model.forward_async(&ids, shape.first().copied().unwrap_or(0)).await?;
    if got.len() != want.len() {
        return Err(PrimeError::Input(format!(
            "golden cases hold {} logits, the model gave {}",
            want.len(),
            got.len()
        )));
    }
    Ok(got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max))
}
