//! `--mode` and `--sampler`: how reveal times are drawn and which executor runs the steps.

use clap::{Args, ValueEnum};
use prime_core::ExecutorChoice;
use prime_core::sampler::SamplingMode;

/// Sampler modes accepted by `--mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum ModeName {
    /// The official loop: reveal decisions drawn at each step.
    #[default]
    Ancestral,
    /// Reveal steps drawn up front (same law): steps without reveals cost nothing.
    EventDriven,
}

impl From<ModeName> for SamplingMode {
    fn from(m: ModeName) -> Self {
        match m {
            ModeName::Ancestral => SamplingMode::Ancestral,
            ModeName::EventDriven => SamplingMode::EventDriven,
        }
    }
}

/// Executors accepted by `--sampler`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum SamplerPath {
    /// The WGSL kernels on a GPU, the host executor on the CPU.
    #[default]
    Auto,
    /// On the host: logits are read back at every network call.
    Host,
    /// The WGSL kernels (wgpu only): state, logits and draws stay on the device.
    Shader,
    /// The kernels' Burn-ops twins on the model's device.
    Twin,
}

impl From<SamplerPath> for ExecutorChoice {
    fn from(p: SamplerPath) -> Self {
        match p {
            SamplerPath::Auto => ExecutorChoice::Auto,
            SamplerPath::Host => ExecutorChoice::Host,
            SamplerPath::Shader => ExecutorChoice::Shader,
            SamplerPath::Twin => ExecutorChoice::Twin,
        }
    }
}

/// Sampler options shared by the commands that generate.
#[derive(Args, Debug, Clone, Copy)]
pub struct SamplerArgs {
    /// How reveal times are drawn (both modes have the same law).
    #[arg(long, value_enum, default_value_t = ModeName::Ancestral)]
    pub mode: ModeName,
    /// Which executor runs the sampler's steps.
    #[arg(long, value_enum, default_value_t = SamplerPath::Auto)]
    pub sampler: SamplerPath,
}
