//! `--mode`: how the sampler draws reveal times.

use clap::ValueEnum;
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
