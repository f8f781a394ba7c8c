//! `prime-web`: MDM-Prime in a browser tab.
//!
//! On wasm32, `bindings` is the wasm-bindgen API the page's Web Worker uses: load a model
//! from the bytes of its files (WebGPU through burn-wgpu's asynchronous initialisation, the
//! burn-flex CPU backend when WebGPU is missing or fails), then step a generation, each step
//! returning a trajectory record ([`session::StepMessage`]) as JSON. The generation layer and the
//! sampler are `prime-core`'s, the same as native: on WebGPU the device executor runs the WGSL
//! kernels and no logits are read back; no read on wasm blocks. Everything but the bindings also
//! builds natively, where it is tested.

#![warn(missing_docs)]

pub mod backend;
#[cfg(target_family = "wasm")]
pub mod bindings;
pub mod golden;
pub mod kernel_check;
pub mod session;

pub use session::{Session, StepMessage};
