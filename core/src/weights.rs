//! Reading `model.safetensors` into host tensors with every name, shape and dtype checked.
//!
//! The `safetensors` crate parses and bounds-checks the file; this module maps the official
//! names (with or without Lightning's `backbone.` prefix). f32 values are kept as f32 and f16
//! values as their bits (a GPU expands them in a shader, so the host never holds an f32 copy of
//! an f16 file); F64 and BF16 are converted to f32.

use std::collections::HashMap;

use safetensors::{Dtype, SafeTensors};

use crate::error::{PrimeError, Result};

/// A dense f32 tensor in host memory, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Values, `shape.iter().product()` of them.
    pub data: Vec<f32>,
}

/// A tensor's values as the weight file stores them.
#[derive(Debug, Clone, PartialEq)]
pub enum StoredValues {
    /// f32 values (also what F64 and BF16 files are converted to).
    F32(Vec<f32>),
    /// IEEE binary16 values, as their bits.
    F16(Vec<u16>),
}

/// A tensor of a weight file: its shape and stored values, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredTensor {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Values, `shape.iter().product()` of them.
    pub values: StoredValues,
}

impl StoredTensor {
    /// The values as f32 on the host.
    pub fn into_host(self) -> HostTensor {
        let data = match self.values {
            StoredValues::F32(v) => v,
            StoredValues::F16(bits) => f16_to_f32(&bits),
        };
        HostTensor { shape: self.shape, data }
    }

    /// A 2-D tensor (r, c) as its transpose (c, r), stored row-major: a linear map's weight in
    /// the layout the CPU's product reads (see `Upload::transposed_weight`). Other ranks are
    /// returned unchanged.
    pub fn transposed(self) -> StoredTensor {
        let &[rows, cols] = &self.shape[..] else { return self };
        let values = match self.values {
            StoredValues::F32(v) => StoredValues::F32(transpose(&v, rows, cols)),
            StoredValues::F16(v) => StoredValues::F16(transpose(&v, rows, cols)),
        };
        StoredTensor { shape: vec![cols, rows], values }
    }

    /// Rows `start..start + count` of the first axis (clamped to the tensor).
    pub fn rows(&self, start: usize, count: usize) -> StoredTensor {
        let per_row: usize = self.shape.iter().skip(1).product();
        let first = self.shape.first().copied().unwrap_or(0);
        let (start, end) = (start.min(first), start.saturating_add(count).min(first));
        let range = start * per_row..end * per_row;
        let values = match &self.values {
            StoredValues::F32(v) => StoredValues::F32(v[range].to_vec()),
            StoredValues::F16(v) => StoredValues::F16(v[range].to_vec()),
        };
        let mut shape = self.shape.clone();
        if let Some(rows) = shape.first_mut() {
            *rows = end - start;
        }
        StoredTensor { shape, values }
    }

    /// Index of the first value that is not finite, if any.
    fn first_non_finite(&self) -> Option<usize> {
        match &self.values {
            StoredValues::F32(v) => v.iter().position(|x| !x.is_finite()),
            // All exponent bits set: an infinity or a NaN.
            StoredValues::F16(v) => v.iter().position(|&b| b & 0x7c00 == 0x7c00),
        }
    }
}

/// IEEE binary16 values, given by their bits, as f32 (exact).
pub fn f16_to_f32(bits: &[u16]) -> Vec<f32> {
    bits.iter().map(|&b| half::f16::from_bits(b).to_f32()).collect()
}

impl From<HostTensor> for StoredTensor {
    fn from(t: HostTensor) -> Self {
        Self { shape: t.shape, values: StoredValues::F32(t.data) }
    }
}

/// The tensors of a weight file, by official name (prefix stripped), as stored.
#[derive(Debug)]
pub struct WeightFile {
    tensors: HashMap<String, StoredTensor>,
}

/// Lightning checkpoints store the network under this prefix.
const LIGHTNING_PREFIX: &str = "backbone.";

impl WeightFile {
    /// Parses safetensors bytes. Fails on a truncated or corrupt file (naming the tensor where
    /// one is at fault), an unsupported dtype, or a tensor stored both with and without the
    /// `backbone.` prefix.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let file = SafeTensors::deserialize(bytes).map_err(|e| PrimeError::Weights(diagnose(bytes, &e)))?;
        let mut tensors = HashMap::new();
        for (name, view) in file.tensors() {
            let values = match view.dtype() {
                Dtype::F16 => {
                    StoredValues::F16(view.data().chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect())
                }
                dtype => StoredValues::F32(to_f32(&name, dtype, view.data())?),
            };
            let key = name.strip_prefix(LIGHTNING_PREFIX).unwrap_or(&name).to_string();
            if tensors.insert(key.clone(), StoredTensor { shape: view.shape().to_vec(), values }).is_some() {
                return Err(PrimeError::Weights(format!(
                    "holds both `{LIGHTNING_PREFIX}{key}` and `{key}`; keep one of them"
                )));
            }
        }
        Ok(Self { tensors })
    }

    /// Wraps host tensors given by name (for weights made in memory, e.g. a training init).
    pub fn from_tensors(tensors: impl IntoIterator<Item = (String, HostTensor)>) -> Self {
        Self { tensors: tensors.into_iter().map(|(name, t)| (name, t.into())).collect() }
    }

    /// Adds `tensor` under `name` unless the file already holds a tensor of that name.
    pub fn or_insert(&mut self, name: &str, tensor: HostTensor) {
        self.tensors.entry(name.to_string()).or_insert_with(|| tensor.into());
    }

    /// Takes the tensor `name`, which must have exactly `shape` and finite values.
    pub fn take(&mut self, name: &str, shape: &[usize]) -> Result<StoredTensor> {
        let tensor = self.tensors.remove(name).ok_or_else(|| PrimeError::MissingTensor(name.to_string()))?;
        if tensor.shape != shape {
            return Err(PrimeError::TensorShape {
                name: name.to_string(),
                found: tensor.shape,
                expected: shape.to_vec(),
            });
        }
        if let Some(i) = tensor.first_non_finite() {
            return Err(PrimeError::Weights(format!("tensor `{name}` holds a non-finite value at index {i}")));
        }
        Ok(tensor)
    }

    /// Names not taken so far (reported, not fatal: checkpoints may carry extra buffers).
    pub fn remaining(&self) -> Vec<String> {
        let mut names: Vec<String> = self.tensors.keys().cloned().collect();
        names.sort();
        names
    }
}

/// Serialises named f32 tensors as a safetensors file of f32 values, in the given order.
pub fn to_safetensors(tensors: &[(String, HostTensor)]) -> Result<Vec<u8>> {
    to_safetensors_as(tensors, Dtype::F32)
}

/// Serialises named f32 tensors as a safetensors file, stored as `dtype` (F32, F16 or BF16),
/// in the given order.
pub fn to_safetensors_as(tensors: &[(String, HostTensor)], dtype: Dtype) -> Result<Vec<u8>> {
    let encode = |t: &HostTensor| -> Result<Vec<u8>> {
        Ok(match dtype {
            Dtype::F32 => t.data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            Dtype::F16 => t.data.iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()).collect(),
            Dtype::BF16 => t.data.iter().flat_map(|v| half::bf16::from_f32(*v).to_le_bytes()).collect(),
            other => return Err(PrimeError::Weights(format!("cannot store tensors as {other:?}"))),
        })
    };
    let bytes: Vec<Vec<u8>> = tensors.iter().map(|(_, t)| encode(t)).collect::<Result<_>>()?;
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, t), b)| {
            let view = safetensors::tensor::TensorView::new(dtype, t.shape.clone(), b)
                .map_err(|e| PrimeError::Weights(format!("tensor `{name}`: {e}")))?;
            Ok((name.as_str(), view))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize(views, None).map_err(|e| PrimeError::Weights(e.to_string()))
}

/// Says what is wrong with a file the `safetensors` crate rejected: which tensor, and whether
/// the file is shorter than its header says; otherwise the crate's own words.
fn diagnose(bytes: &[u8], error: &safetensors::SafeTensorError) -> String {
    let Some(header_len) = bytes.get(..8).map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
    else {
        return format!("truncated: {} bytes, shorter than the 8-byte header length", bytes.len());
    };
    let data_len = bytes.len() as u64 - 8;
    if header_len > data_len {
        return format!("truncated: the header is {header_len} bytes long but only {data_len} bytes follow it");
    }
    let header = &bytes[8..8 + header_len as usize];
    let Ok(header) = serde_json::from_slice::<HashMap<String, serde_json::Value>>(header) else {
        return format!("not a safetensors file: {error}");
    };
    let stored = data_len - header_len;
    let mut end = 0u64;
    for (name, info) in header.iter().filter(|(name, _)| name.as_str() != "__metadata__") {
        let offsets = info.get("data_offsets").and_then(|o| serde_json::from_value::<[u64; 2]>(o.clone()).ok());
        let shape = info.get("shape").and_then(|s| serde_json::from_value::<Vec<u64>>(s.clone()).ok());
        let width =
            info.get("dtype").and_then(|d| serde_json::from_value::<Dtype>(d.clone()).ok()).map(|d| d.bitsize());
        let (Some([start, stop]), Some(shape), Some(bits)) = (offsets, shape, width) else {
            return format!("tensor `{name}` has a malformed entry in the header ({error})");
        };
        let needed =
            shape.iter().try_fold(bits as u64, |acc, &d| acc.checked_mul(d)).map(|b| b.div_ceil(8)).unwrap_or(u64::MAX);
        if stop < start || stop - start != needed {
            return format!(
                "tensor `{name}`: shape {shape:?} needs {needed} bytes but its offsets [{start}, {stop}] give {}",
                stop.saturating_sub(start)
            );
        }
        end = end.max(stop);
    }
    if end > stored {
        return format!("truncated: the header describes {end} bytes of tensor data, the file holds {stored}");
    }
    format!("corrupt: {error}")
}

/// Little-endian values of `dtype` (F32, F64, F16 or BF16) as f32; `name` names the tensor in
/// the error for another dtype.
pub(crate) fn to_f32(name: &str, dtype: Dtype, bytes: &[u8]) -> Result<Vec<f32>> {
    let words = |n: usize| bytes.chunks_exact(n);
    Ok(match dtype {
        Dtype::F32 => words(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
        Dtype::F64 => {
            words(8).map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32).collect()
        }
        Dtype::BF16 => words(2).map(|c| f32::from_bits(u32::from(u16::from_le_bytes([c[0], c[1]])) << 16)).collect(),
        Dtype::F16 => words(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        other => {
            return Err(PrimeError::Weights(format!(
                "tensor `{name}` has dtype {other:?}; only F32, F64, F16 and BF16 are supported"
            )));
        }
    })
}

/// The transpose of a row-major (rows, cols) matrix, in 32 × 32 tiles (so that reads and writes
/// both stay within a few cache lines).
fn transpose<T: Copy + Default>(v: &[T], rows: usize, cols: usize) -> Vec<T> {
    const TILE: usize = 32;
    let mut out = vec![T::default(); rows * cols];
    for r0 in (0..rows).step_by(TILE) {
        for c0 in (0..cols).step_by(TILE) {
            for r in r0..(r0 + TILE).min(rows) {
                for c in c0..(c0 + TILE).min(cols) {
                    out[c * rows + r] = v[r * cols + c];
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, shape: Vec<usize>, values: &[f32]) -> Vec<u8> {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let view = safetensors::tensor::TensorView::new(Dtype::F32, shape, &bytes).unwrap();
        safetensors::serialize([(name, view)], None).unwrap()
    }

    #[test]
    fn strips_prefix_and_checks_shape() {
        let bytes = file("backbone.a.weight", vec![2, 2], &[1.0, 2.0, 3.0, 4.0]);
        let mut w = WeightFile::from_bytes(&bytes).unwrap();
        assert!(matches!(w.take("a.weight", &[4]), Err(PrimeError::TensorShape { .. })));
        let mut w = WeightFile::from_bytes(&bytes).unwrap();
        assert_eq!(w.take("a.weight", &[2, 2]).unwrap().into_host().data, vec![1.0, 2.0, 3.0, 4.0]);
        assert!(matches!(w.take("b", &[1]), Err(PrimeError::MissingTensor(_))));
    }

    #[test]
    fn truncated_and_garbage_files_fail_cleanly() {
        let bytes = file("a", vec![3], &[1.0, 2.0, 3.0]);
        for cut in [0, 4, 8, 20, bytes.len() - 1] {
            assert!(WeightFile::from_bytes(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        assert!(WeightFile::from_bytes(b"not a safetensors file at all").is_err());
    }

    #[test]
    fn non_finite_weights_are_rejected() {
        let bytes = file("a", vec![2], &[1.0, f32::NAN]);
        let mut w = WeightFile::from_bytes(&bytes).unwrap();
        assert!(w.take("a", &[2]).is_err());
        for bad in [f32::INFINITY, f32::NAN, 1e6] {
            let t = vec![("a".to_string(), HostTensor { shape: vec![2], data: vec![1.0, bad] })];
            let bytes = to_safetensors_as(&t, Dtype::F16).unwrap();
            let err = WeightFile::from_bytes(&bytes).unwrap().take("a", &[2]).unwrap_err().to_string();
            assert!(err.contains("non-finite value at index 1"), "{bad}: {err}");
        }
    }

    /// f16 files keep their bits until a device takes them; rows of a stored tensor keep their
    /// type; the host decoding is exact.
    #[test]
    fn f16_values_are_kept_as_bits() {
        let data = vec![1.0, -2.5, 65504.0, 6.0e-8, -0.0, 0.333_251_95];
        let t = vec![("a".to_string(), HostTensor { shape: vec![3, 2], data: data.clone() })];
        let bytes = to_safetensors_as(&t, Dtype::F16).unwrap();
        let stored = WeightFile::from_bytes(&bytes).unwrap().take("a", &[3, 2]).unwrap();
        assert!(matches!(stored.values, StoredValues::F16(_)));
        let middle = stored.rows(1, 1);
        assert_eq!(middle.shape, vec![1, 2]);
        assert_eq!(middle.into_host().data, vec![65504.0, half::f16::from_f32(6.0e-8).to_f32()]);
        assert_eq!(stored.rows(2, 5).shape, vec![1, 2]);
        let host = stored.into_host().data;
        assert_eq!(host[0..3], [1.0, -2.5, 65504.0]);
        assert!(host[4] == 0.0 && host[4].is_sign_negative());
        assert_eq!(host[5], 0.333_251_95);
    }

    /// A transposed weight holds element (r, c) at (c, r), across tile edges and for both
    /// stored types; other ranks are unchanged.
    #[test]
    fn transposed_weights_swap_rows_and_columns() {
        let (rows, cols) = (35, 70);
        let values: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
        let t = StoredTensor { shape: vec![rows, cols], values: StoredValues::F32(values) }.transposed();
        assert_eq!(t.shape, vec![cols, rows]);
        let StoredValues::F32(v) = &t.values else { panic!("f32 stays f32") };
        for (r, c) in [(0, 0), (0, 69), (34, 0), (31, 32), (34, 69), (17, 40)] {
            assert_eq!(v[c * rows + r], (r * cols + c) as f32, "({r}, {c})");
        }
        let bits = StoredTensor { shape: vec![2, 3], values: StoredValues::F16(vec![1, 2, 3, 4, 5, 6]) }.transposed();
        assert_eq!(bits.values, StoredValues::F16(vec![1, 4, 2, 5, 3, 6]));
        let vector = StoredTensor { shape: vec![3], values: StoredValues::F16(vec![1, 2, 3]) };
        assert_eq!(vector.clone().transposed(), vector);
    }
}
