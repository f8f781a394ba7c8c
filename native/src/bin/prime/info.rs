//! `prime info`: the adapters wgpu sees and the backend `--device` would choose.

use clap::Args;
use prime_core::device::{AdapterReport, BackendKind, compiled_backends, list_adapters};
use serde::Serialize;

use prime_native::device_args::DeviceArgs;

/// Arguments of `prime info`.
#[derive(Args, Debug)]
pub struct InfoArgs {
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    device: DeviceArgs,
}

#[derive(Serialize)]
struct Info {
    /// The wgpu backends this build can use (VULKAN, GL, METAL, DX12).
    compiled_backends: Vec<String>,
    adapters: Vec<AdapterReport>,
    backend: BackendKind,
    chosen: Option<AdapterReport>,
    /// The software adapter `--device auto` passed over for the CPU.
    passed_over: Option<AdapterReport>,
    notice: Option<String>,
}

/// Runs the command.
pub fn run(args: InfoArgs) -> anyhow::Result<()> {
    let adapters = pollster::block_on(list_adapters());
    let device = args.device.open()?;
    let info = Info {
        compiled_backends: compiled_backends(),
        adapters,
        backend: device.backend,
        chosen: device.adapter.clone(),
        passed_over: device.passed_over.clone(),
        notice: device.notice.clone(),
    };
    if args.json {
        prime_native::say!("{}", serde_json::to_string_pretty(&info)?)?;
        return Ok(());
    }
    prime_native::say!("wgpu backends compiled in: {}", info.compiled_backends.join(", "))?;
    prime_native::say!("adapters found: {}", info.adapters.len())?;
    for a in &info.adapters {
        let mark = if a.is_software() { " · software rasteriser: --device auto passes it over" } else { "" };
        prime_native::say!("  - {} ({}, {}; driver {}){mark}", a.name, a.api, a.device_type, a.driver)?;
    }
    prime_native::say!("backend chosen: {}", DeviceArgs::describe(&device))?;
    if let Some(a) = &info.chosen {
        prime_native::say!("limits:")?;
        for (name, value) in &a.limits {
            prime_native::say!("  {name:<40} {value}")?;
        }
        prime_native::say!(
            "features: {}",
            if a.features.is_empty() { "none".to_string() } else { a.features.join(", ") }
        )?;
    }
    Ok(())
}
