//! Optional capture of intermediate activations, named as in the golden files.

use std::collections::BTreeMap;

use burn::tensor::{Int, Tensor, TensorData};

use crate::error::{PrimeError, Result};
use crate::weights::HostTensor;

/// Intermediate tensors of one forward pass, read back to the host.
#[derive(Debug, Default)]
pub struct Trace {
    pending: Vec<(String, Vec<usize>, Tensor<1>)>,
}

impl Trace {
    /// Records `tensor` under `name` (read back later by [`Trace::into_host`]).
    pub fn record<const D: usize>(&mut self, name: &str, tensor: Tensor<D>) {
        let shape = tensor.dims().to_vec();
        let n: usize = shape.iter().product();
        self.pending.push((name.to_string(), shape, tensor.reshape([n])));
    }

    /// Reads every recorded tensor back to the host.
    pub fn into_host(self) -> Result<BTreeMap<String, HostTensor>> {
        self.pending
            .into_iter()
            .map(|(name, shape, t)| {
                let data = read_f32(t, &name)?;
                Ok((name, HostTensor { shape, data }))
            })
            .collect()
    }
}

/// Reads a tensor back to the host as f32 values; `what` names it in the error.
///
/// Blocks until the device has finished; on wasm with WebGPU use [`read_f32_async`].
pub fn read_f32<const D: usize>(t: Tensor<D>, what: &str) -> Result<Vec<f32>> {
    host_f32(t.try_into_data(), what)
}

/// Reads a tensor back to the host as f32 values without blocking (the only kind of read a
/// browser's WebGPU allows); `what` names it in the error.
pub async fn read_f32_async<const D: usize>(t: Tensor<D>, what: &str) -> Result<Vec<f32>> {
    host_f32(t.into_data_async().await, what)
}

fn host_f32<E: std::fmt::Debug>(data: std::result::Result<TensorData, E>, what: &str) -> Result<Vec<f32>> {
    data.map_err(|e| PrimeError::Device(format!("reading {what}: {e:?}")))?
        .try_into_vec::<f32>()
        .map_err(|e| PrimeError::Device(format!("reading {what}: {e:?}")))
}

/// Reads an integer tensor back to the host as i32 values (whatever its integer dtype);
/// `what` names it in the error. Blocks; on wasm with WebGPU use [`read_i32_async`].
pub fn read_i32<const D: usize>(t: Tensor<D, Int>, what: &str) -> Result<Vec<i32>> {
    host_i32(t.try_into_data(), what)
}

/// [`read_i32`] without blocking.
pub async fn read_i32_async<const D: usize>(t: Tensor<D, Int>, what: &str) -> Result<Vec<i32>> {
    host_i32(t.into_data_async().await, what)
}

fn host_i32<E: std::fmt::Debug>(data: std::result::Result<TensorData, E>, what: &str) -> Result<Vec<i32>> {
    data.map_err(|e| PrimeError::Device(format!("reading {what}: {e:?}")))?
        .convert::<i32>()
        .try_into_vec::<i32>()
        .map_err(|e| PrimeError::Device(format!("reading {what}: {e:?}")))
}
