//! Reading device tensors back to the host: blocking (native) or awaited (the only kind of read
//! a browser's WebGPU allows). Every read of the runtime goes through here.

use burn::tensor::{Int, Tensor, TensorData};

use crate::error::{PrimeError, Result};

/// Reads a tensor back to the host as f32 values; `what` names it in the error.
///
/// Blocks until the device has finished; on wasm with WebGPU use [`read_f32_async`].
pub fn read_f32<const D: usize>(t: Tensor<D>, what: &str) -> Result<Vec<f32>> {
    host_f32(t.try_into_data(), what)
}

/// Reads a tensor back to the host as f32 values without blocking; `what` names it in the error.
pub async fn read_f32_async<const D: usize>(t: Tensor<D>, what: &str) -> Result<Vec<f32>> {
    host_f32(t.into_data_async().await, what)
}

/// Reads a tensor back to the host and lends its f32 values to `use_values`, without the copy
/// into a `Vec` that [`read_f32`] makes (on burn-flex the values are the tensor's own buffer);
/// `what` names it in the error. Blocks like [`read_f32`].
pub fn with_f32<const D: usize, R>(
    t: Tensor<D>,
    what: &str,
    use_values: impl FnOnce(&[f32]) -> Result<R>,
) -> Result<R> {
    let data = t.try_into_data().map_err(|e| read_error(what, e))?;
    use_values(data.as_slice::<f32>().map_err(|e| read_error(what, e))?)
}

/// The error of a failed read of `what`.
fn read_error(what: &str, e: impl std::fmt::Debug) -> PrimeError {
    PrimeError::Device(format!("reading {what}: {e:?}"))
}

fn host_f32<E: std::fmt::Debug>(data: std::result::Result<TensorData, E>, what: &str) -> Result<Vec<f32>> {
    data.map_err(|e| read_error(what, e))?.try_into_vec::<f32>().map_err(|e| read_error(what, e))
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
    data.map_err(|e| read_error(what, e))?.convert::<i32>().try_into_vec::<i32>().map_err(|e| read_error(what, e))
}

/// What a step must read back before it can go on: at most one integer vector and the float
/// vectors, read in order into one (an executor concatenates what it needs, so a step costs
/// one read of each; floats come in several vectors only where one would exceed the device's
/// largest binding, as an official-size model's logits do).
#[derive(Debug, Default)]
pub struct Readback {
    /// Integer values to read.
    pub ints: Option<Tensor<1, Int>>,
    /// Float values to read, concatenated in order.
    pub floats: Vec<Tensor<1>>,
}

/// The values of a [`Readback`], on the host.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct HostValues {
    /// The integers (empty when none were asked for).
    pub ints: Vec<i32>,
    /// The floats (empty when none were asked for).
    pub floats: Vec<f32>,
}

impl HostValues {
    /// Bytes these values took to read back.
    pub fn bytes(&self) -> usize {
        4 * (self.ints.len() + self.floats.len())
    }
}

impl Readback {
    /// Reads the values, blocking.
    pub fn read(self) -> Result<HostValues> {
        Ok(HostValues {
            ints: self.ints.map(|t| read_i32(t, "sampler integers")).transpose()?.unwrap_or_default(),
            floats: self
                .floats
                .into_iter()
                .map(|t| read_f32(t, "sampler floats"))
                .collect::<Result<Vec<_>>>()?
                .concat(),
        })
    }

    /// Reads the values without blocking.
    pub async fn read_async(self) -> Result<HostValues> {
        let ints = match self.ints {
            Some(t) => read_i32_async(t, "sampler integers").await?,
            None => Vec::new(),
        };
        let mut floats = Vec::new();
        for t in self.floats {
            floats.extend(read_f32_async(t, "sampler floats").await?);
        }
        Ok(HostValues { ints, floats })
    }
}
