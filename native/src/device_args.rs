//! `--device` handling shared by every command.

use clap::{Args, ValueEnum};
use prime_core::device::{ComputeDevice, DeviceChoice};

/// Backend names accepted by `--device`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeviceName {
    /// Burn's wgpu backend (Vulkan, Metal, DX12); falls back to the CPU if no adapter exists.
    Gpu,
    /// The burn-flex CPU backend.
    Cpu,
}

/// Device options.
#[derive(Args, Debug, Clone)]
pub struct DeviceArgs {
    /// Compute backend.
    #[arg(long, value_enum, default_value_t = DeviceName::Gpu)]
    pub device: DeviceName,
    /// Fail instead of falling back to the CPU when no GPU adapter exists.
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
            DeviceName::Gpu => DeviceChoice::Gpu,
            DeviceName::Cpu => DeviceChoice::Cpu,
        };
        let device = ComputeDevice::open(choice, self.require_gpu)?;
        if let Some(notice) = &device.notice {
            eprintln!("notice: {notice}");
        }
        Ok(device)
    }

    /// A one-line description of the opened device.
    pub fn describe(device: &ComputeDevice) -> String {
        match &device.adapter {
            Some(a) => format!("wgpu: {} ({}, {})", a.name, a.api, a.device_type),
            None => "burn-flex (CPU)".to_string(),
        }
    }
}
