//! `prime info`: the adapters wgpu sees and the backend `--device` would choose.

use clap::Args;
use prime_core::device::{AdapterReport, BackendKind, list_adapters};
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
    adapters: Vec<AdapterReport>,
    backend: BackendKind,
    chosen: Option<AdapterReport>,
    notice: Option<String>,
}

/// Runs the command.
pub fn run(args: InfoArgs) -> anyhow::Result<()> {
    let adapters = pollster::block_on(list_adapters());
    let device = args.device.open()?;
    let info =
        Info { adapters, backend: device.backend, chosen: device.adapter.clone(), notice: device.notice.clone() };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&info)?);
        return Ok(());
    }
    println!("adapters found: {}", info.adapters.len());
    for a in &info.adapters {
        println!("  - {} ({}, {}; driver {})", a.name, a.api, a.device_type, a.driver);
    }
    println!("backend chosen: {}", DeviceArgs::describe(&device));
    if let Some(a) = &info.chosen {
        println!("limits:");
        for (name, value) in &a.limits {
            println!("  {name:<40} {value}");
        }
        println!("features: {}", if a.features.is_empty() { "none".to_string() } else { a.features.join(", ") });
    }
    Ok(())
}
