//! The one network interface: what the sampler's executors call to get a network output.

use burn::tensor::{Device, Int, Tensor};

use crate::error::Result;
use crate::logits::Logits;

/// A network that maps one sequence's sub-token state to its logits, on one device.
///
/// The state and the logits stay on the device: the host executor reads the logits back, the
/// device executor never does.
pub trait Denoiser {
    /// The device the state and the logits live on.
    fn device(&self) -> &Device;
    /// Logits (L × V_out, in row blocks) of a sub-token state (ℓ·L ids in `[0, b]`).
    fn logits(&self, state: Tensor<1, Int>) -> Result<Logits>;
    /// Logits of several states, in order. A network overrides this to run them as one batch
    /// (one call, B sequences); the default calls [`Denoiser::logits`] for each.
    fn logits_batch(&self, states: Vec<Tensor<1, Int>>) -> Result<Vec<Logits>> {
        states.into_iter().map(|s| self.logits(s)).collect()
    }
}
