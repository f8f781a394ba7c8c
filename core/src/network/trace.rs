//! Optional capture of intermediate activations, named as in the golden files.

use std::collections::BTreeMap;

use burn::tensor::Tensor;

use crate::error::Result;
use crate::readback::read_f32;
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
