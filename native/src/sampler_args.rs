//! `--mode` and `--sampler`: how reveal times are drawn and where the sampler's work runs;
//! and the one function every command samples through.

use std::ops::ControlFlow;

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};
use prime_core::kernels::KernelPath;
use prime_core::sampler::{DeviceDenoiser, DeviceOptions, DeviceStats, SamplingMode, run as run_on_host};
use prime_core::{Denoiser, Outcome, Sampler, StepEvent};

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

/// Where the sampler's own work runs, accepted by `--sampler`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum SamplerPath {
    /// The WGSL kernels on a GPU, the host loop on the CPU.
    #[default]
    Auto,
    /// On the host: logits are read back at every network call.
    Host,
    /// The WGSL kernels (wgpu only): state, logits and draws stay on the device.
    Shader,
    /// The kernels' Burn-ops twins on the model's device.
    Twin,
}

/// Sampler options shared by the commands that generate.
#[derive(Args, Debug, Clone, Copy)]
pub struct SamplerArgs {
    /// How reveal times are drawn (both modes have the same law).
    #[arg(long, value_enum, default_value_t = ModeName::Ancestral)]
    pub mode: ModeName,
    /// Where the sampler's own work runs.
    #[arg(long, value_enum, default_value_t = SamplerPath::Auto)]
    pub sampler: SamplerPath,
}

impl SamplerArgs {
    /// The kernel path for `model`'s device, or `None` for the host loop.
    pub fn kernels(&self, model: &impl DeviceDenoiser) -> Result<Option<KernelPath>> {
        let on_gpu = KernelPath::for_device(model.device()) == KernelPath::Shader;
        Ok(match self.sampler {
            SamplerPath::Auto if on_gpu => Some(KernelPath::Shader),
            SamplerPath::Auto | SamplerPath::Host => None,
            SamplerPath::Shader if !on_gpu => bail!("--sampler shader needs a wgpu device (use --device gpu)"),
            SamplerPath::Shader => Some(KernelPath::Shader),
            SamplerPath::Twin => Some(KernelPath::Twin),
        })
    }
}

/// Runs `sampler` to the end on `model` along `kernels` (`None`: the host loop); events carry
/// states on every path when `sync_states` is set. Returns `Ok(None)` on abort.
pub fn sample<D: Denoiser + DeviceDenoiser>(
    sampler: &mut Sampler,
    model: &mut D,
    kernels: Option<KernelPath>,
    sync_states: bool,
    on_event: impl FnMut(&StepEvent) -> ControlFlow<()>,
) -> Result<Option<(Outcome, Option<DeviceStats>)>> {
    Ok(match kernels {
        None => run_on_host(sampler, model, on_event)?.map(|o| (o, None)),
        Some(path) => {
            sampler.run_on_device(model, DeviceOptions { path, sync_states }, on_event)?.map(|(o, s)| (o, Some(s)))
        }
    })
}
