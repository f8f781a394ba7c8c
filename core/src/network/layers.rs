//! Small tensor building blocks of the DiT: linear maps, bias-free layer norm, modulation, GELU.

use burn::module::Param;
use burn::tensor::Tensor;

use super::fused;
use super::upload::Upload;
use crate::error::Result;
use crate::readback::read_f32;
use crate::weights::{HostTensor, StoredTensor};

/// A linear map stored as `Wᵀ` (in × out) so that `y = x·Wᵀ + b`.
#[derive(burn::module::Module, Debug)]
pub struct Linear {
    /// Transposed weight, (in, out).
    pub weight_t: Param<Tensor<2>>,
    /// Optional bias, (out).
    pub bias: Option<Param<Tensor<1>>>,
}

impl Linear {
    /// Builds the map from a PyTorch-layout weight (out, in) and an optional bias.
    pub fn load(weight: StoredTensor, bias: Option<StoredTensor>, up: &Upload<'_>) -> Result<Self> {
        let w = up.transposed_weight(weight)?;
        let bias = bias.map(|b| up.tensor::<1>(b).map(Param::from_tensor)).transpose()?;
        Ok(Self { weight_t: Param::from_tensor(w), bias })
    }

    /// The weight in PyTorch layout (out, in) and the bias, read back to the host.
    pub fn to_host(&self) -> Result<(HostTensor, Option<HostTensor>)> {
        let weight = tensor_to_host(self.weight_t.val().transpose(), "a linear weight")?;
        let bias = match &self.bias {
            Some(b) => Some(param_to_host(b, "a bias")?),
            None => None,
        };
        Ok((weight, bias))
    }

    /// `x·Wᵀ + b` for x of shape (N, in).
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let y = self.product(x);
        match &self.bias {
            Some(b) => fused::add_bias(y, &b.val()),
            None => y,
        }
    }

    /// `x·Wᵀ` without the bias, for a caller that adds it in a fused step.
    pub fn product(&self, x: Tensor<2>) -> Tensor<2> {
        x.matmul(self.weight_t.val())
    }

    /// The bias, if any.
    pub fn bias(&self) -> Option<Tensor<1>> {
        self.bias.as_ref().map(Param::val)
    }
}

/// Appends a linear map's weight (and bias) under `name` (`name.weight`, `name.bias`).
pub fn export_linear(out: &mut Vec<(String, HostTensor)>, name: &str, l: &Linear) -> Result<()> {
    let (w, b) = l.to_host()?;
    out.push((format!("{name}.weight"), w));
    if let Some(b) = b {
        out.push((format!("{name}.bias"), b));
    }
    Ok(())
}

/// A parameter read back to the host, in its own shape; `what` names it in errors.
pub fn param_to_host<const D: usize>(p: &Param<Tensor<D>>, what: &str) -> Result<HostTensor> {
    tensor_to_host(p.val(), what)
}

/// A tensor read back to the host, in its own shape; `what` names it in errors.
fn tensor_to_host<const D: usize>(t: Tensor<D>, what: &str) -> Result<HostTensor> {
    Ok(HostTensor { shape: t.dims().to_vec(), data: read_f32(t, what)? })
}

/// Layer norm over the last axis without affine parameters (biased variance, eps), then scaled by
/// `weight`; there is no bias. `x` is (N, D).
pub fn layer_norm(x: Tensor<2>, weight: &Param<Tensor<1>>, eps: f64) -> Tensor<2> {
    burn::tensor::module::layer_norm(x, weight.val(), None, eps)
}

/// adaLN modulation `x·(1 + scale) + shift`, with (1, D) vectors broadcast over rows.
pub fn modulate(x: Tensor<2>, shift: &Tensor<2>, scale: &Tensor<2>) -> Tensor<2> {
    x * (scale.clone() + 1.0) + shift.clone()
}
