//! `prime-web`: MDM-Prime in a browser tab.
//!
//! On wasm32, [`bindings`] is the wasm-bindgen API the page's Web Worker uses: load a model
//! from the bytes of its files (WebGPU through burn-wgpu's asynchronous initialisation, the
//! burn-flex CPU backend when WebGPU is missing or fails), then step a generation, each step
//! returning a [`StepView`] as JSON. The sampler is `prime-core`'s, the same as native; no read
//! on wasm blocks. Everything but the bindings also builds natively, where it is tested.

#![warn(missing_docs)]

pub mod backend;
#[cfg(target_family = "wasm")]
pub mod bindings;
pub mod golden;
pub mod kernel_check;
pub mod session;
pub mod view;

pub use session::{Request, Session};
pub use view::StepView;
