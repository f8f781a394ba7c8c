//! `prime-core`: the portable engine of the MDM-Prime runtime.
//!
//! MDM-Prime is masked discrete diffusion with partial masking: every token is split into ℓ
//! base-b sub-tokens that are revealed one at a time. This crate holds the sub-token codec, the
//! time schedule, the official networks on Burn (wgpu or burn-flex), weight loading, the output
//! distribution with the carry-over filter, and the sampler that reports every step.
//! It has no CLI and no browser code.

#![warn(missing_docs)]

pub mod binding;
#[cfg(not(target_family = "wasm"))]
pub mod checkpoint;
pub mod codec;
pub mod config;
pub mod denoiser;
pub mod device;
pub mod distribution;
pub mod error;
pub mod generation;
pub mod image;
pub mod kernels;
pub mod logits;
pub mod model;
pub mod network;
#[cfg(not(target_family = "wasm"))]
pub mod output;
pub mod readback;
pub mod recommended;
pub mod rng;
pub mod sampler;
pub mod schedule;
pub mod text;
#[cfg(feature = "train")]
pub mod train;
pub mod trajectory;
pub mod weights;

pub use codec::SubTokenCodec;
pub use config::{ModelClass, ModelConfig};
pub use denoiser::Denoiser;
pub use error::{PrimeError, Result};
pub use generation::{EACH_CLASS, ExecutorChoice, GenerationRequest, Tokens};
pub use logits::{Logits, NetworkInput};
pub use model::Model;
pub use recommended::SamplingDefaults;
pub use sampler::{Conditioning, Outcome, Run, Sampler, SamplerSettings, SamplerShape, StepEvent};
