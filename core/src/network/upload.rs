//! Weights from a file onto the device: f32 values are copied; f16 values are expanded to f32 by
//! the `unpack` shader on a wgpu device (so the host never holds an f32 copy of an f16 file) and
//! on the host elsewhere.

use burn::tensor::{Device, Tensor, TensorData};

use crate::error::{PrimeError, Result};
use crate::kernels::{KernelPath, expand_f16};
use crate::weights::{StoredTensor, StoredValues};

/// Puts stored tensors on one device.
#[derive(Debug, Clone, Copy)]
pub struct Upload<'a> {
    device: &'a Device,
    path: KernelPath,
}

impl<'a> Upload<'a> {
    /// Uploads to `device`, expanding f16 values with the shader where the device runs them.
    pub fn new(device: &'a Device) -> Self {
        Self { device, path: KernelPath::for_device(device) }
    }

    /// The tensor as f32 on the device, with its stored shape (which must have `D` axes).
    pub fn tensor<const D: usize>(&self, t: StoredTensor) -> Result<Tensor<D>> {
        let dims: [usize; D] = t.shape.clone().try_into().map_err(|_| {
            PrimeError::Weights(format!("a tensor of shape {:?} where {D} axes were expected", t.shape))
        })?;
        Ok(match t.values {
            StoredValues::F32(values) => Tensor::from_data(TensorData::new(values, dims), self.device),
            StoredValues::F16(bits) => expand_f16(&bits, self.path, self.device)?.reshape(dims),
        })
    }

    /// A linear map's weight, stored (out, in), as `Wᵀ` (in, out) in the layout the device's
    /// matrix product reads fastest. On the CPU it is transposed on the host and stored
    /// row-major (gemm on a transposed view made the MLP's products up to 1.5× slower); on
    /// wgpu it stays as stored and `Wᵀ` is a view (cubecl's matmul reads it directly; the
    /// ℓ = 2, L = 512 network call on lavapipe took 4.4–5.3 s with the row-major copy, 3.2–4.2 s
    /// on the view).
    pub fn transposed_weight(&self, weight: StoredTensor) -> Result<Tensor<2>> {
        Ok(match self.path {
            KernelPath::Shader => self.tensor::<2>(weight)?.transpose(),
            KernelPath::Twin => self.tensor::<2>(weight.transposed())?,
        })
    }
}
