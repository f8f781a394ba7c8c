//! `prime-core`: the portable engine of the MDM-Prime runtime.
//!
//! MDM-Prime is masked discrete diffusion with partial masking: every token is split into ℓ
//! base-b sub-tokens that are revealed one at a time. This crate holds the sub-token codec, the
//! time schedule, the official networks on Burn (wgpu or burn-flex), weight loading, the output
//! distribution with the carry-over filter, and the sampler that reports every step.
//! It has no CLI and no browser code.

#![warn(missing_docs)]

pub mod codec;
pub mod config;
pub mod device;
pub mod distribution;
pub mod error;
pub mod kernels;
pub mod model;
pub mod network;
pub mod rng;
pub mod sampler;
pub mod schedule;
pub mod text;
#[cfg(feature = "train")]
pub mod train;
pub mod weights;

pub use codec::SubTokenCodec;
pub use config::{ModelClass, ModelConfig};
pub use error::{PrimeError, Result};
pub use model::Model;
pub use sampler::{Conditioning, Denoiser, Outcome, Sampler, SamplerSettings, SamplerShape, StepEvent};
