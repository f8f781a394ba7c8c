//! `--device` handling shared by every command.

use clap::{Args, ValueEnum};
use prime_core::device::{ComputeDevice, DeviceChoice};

/// Backend names accepted by `--device`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeviceName {
    /// A hardware GPU if there is one, else the CPU: a software adapter (lavapipe, llvmpipe,
    /// SwiftShader) is passed over, being tens of times slower than the CPU backend.
    Auto,
    /// Burn's wgpu backend (Vulkan, Metal, DX12) on any adapter, software ones included; falls
    /// back to the CPU if no adapter exists.
    Gpu,
    /// The burn-flex CPU backend.
    Cpu,
}

/// Device options.
#[derive(Args, Debug, Clone)]
pub struct DeviceArgs {
    /// Compute backend.
    #[arg(long, value_enum, default_value_t = DeviceName::Auto)]
    pub device: DeviceName,
    /// Fail instead of falling back to the CPU when no GPU adapter exists (with `auto`, a
    /// software adapter then counts as one).
    #[arg(long)]
    pub require_gpu: bool,
}

impl DeviceArgs {
    /// Opens the device, printing the fallback notice if there is one.
    pub fn open(&self) -> anyhow::Result<ComputeDevice> {
        anyhow::ensure!(
            !(self.require_gpu && self.device == DeviceName::Cpu),
            "--require-gpu asks for a GPU but --device cpu chooses the CPU; drop one of them"
        );
        let choice = match self.device {
            DeviceName::Auto => DeviceChoice::Auto,
            DeviceName::Gpu => DeviceChoice::Gpu,
            DeviceName::Cpu => DeviceChoice::Cpu,
        };
        let device = ComputeDevice::open(choice, self.require_gpu)?;
        if let Some(notice) = &device.notice {
            eprintln!("notice: {notice}");
        }
        Ok(device)
    }

    /// A one-line description of the opened device (saying when `auto` passed over a
    /// software adapter).
    pub fn describe(device: &ComputeDevice) -> String {
        match (&device.adapter, &device.passed_over) {
            (Some(a), _) => format!("wgpu: {} ({}, {})", a.name, a.api, a.device_type),
            (None, Some(skipped)) => format!(
                "burn-flex (CPU; the only GPU adapter, {}, is a software rasteriser: --device gpu uses it)",
                skipped.label()
            ),
            (None, None) => "burn-flex (CPU)".to_string(),
        }
    }
}
