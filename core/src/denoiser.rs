//! The one network interface: what the sampler's executors call to get a network output.

use burn::tensor::Device;

use crate::error::Result;
use crate::logits::{Logits, NetworkInput};

/// A network that maps one sequence's sub-token state to its logits, on one device.
///
/// The state and the logits stay on the device: the host executor reads the logits back, the
/// device executor never does.
pub trait Denoiser {
    /// The device the state and the logits live on.
    fn device(&self) -> &Device;
    /// Logits (row blocks of V_out entries, covering at least `input.rows`) of a sub-token
    /// state (ℓ·L ids in `[0, b]`).
    fn logits(&self, input: NetworkInput) -> Result<Logits>;
    /// Logits of several inputs, in order. A network overrides this to run them as one batch
    /// (one call, B sequences); the default calls [`Denoiser::logits`] for each.
    fn logits_batch(&self, inputs: Vec<NetworkInput>) -> Result<Vec<Logits>> {
        inputs.into_iter().map(|i| self.logits(i)).collect()
    }
}
