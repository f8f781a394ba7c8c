//! Opening the compute device in a browser: WebGPU through burn-wgpu's asynchronous
//! initialisation, and the burn-flex CPU backend when WebGPU is missing, fails or (by default)
//! is only a software rasteriser.

use std::cell::RefCell;

use burn::tensor::Device;
use prime_core::device::{AdapterReport, BackendKind, ComputeDevice};
use serde::Serialize;

/// Which backend the page asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendChoice {
    /// WebGPU on a hardware adapter; the CPU (with a notice) when WebGPU is missing or is a
    /// software rasteriser, which runs these models far slower than the CPU backend (measured
    /// with SwiftShader: a step of the 14 × 14 image models ~6 s on it, 0.07–0.11 s on burn-flex).
    Auto,
    /// WebGPU whenever the browser offers it, a software adapter included; else the CPU.
    WebGpu,
    /// The burn-flex CPU backend, even where WebGPU exists.
    Cpu,
}

impl BackendChoice {
    /// Parses the page's setting: `auto`, `webgpu` (or `gpu`) or `cpu`.
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "auto" => Ok(Self::Auto),
            "webgpu" | "gpu" => Ok(Self::WebGpu),
            "cpu" => Ok(Self::Cpu),
            other => Err(format!("unknown backend `{other}`: expected auto, webgpu or cpu")),
        }
    }
}

/// What the page shows about the backend in use.
#[derive(Debug, Clone, Serialize)]
pub struct BackendReport {
    /// `wgpu` (WebGPU) or `flex` (CPU).
    pub backend: BackendKind,
    /// The WebGPU adapter and its limits, when WebGPU is in use.
    pub adapter: Option<AdapterReport>,
    /// Why the CPU is used although WebGPU was asked for, if it is.
    pub notice: Option<String>,
    /// How the CPU path runs in this build: its threads and vector instructions, in words.
    pub cpu: String,
}

thread_local! {
    /// The WebGPU device of this wasm instance: initialised once (the runtime allows one
    /// initialisation), the failure kept so that it is reported rather than retried.
    static WEBGPU: RefCell<Option<Result<(Device, AdapterReport), String>>> = const { RefCell::new(None) };
}

async fn webgpu() -> Result<(Device, AdapterReport), String> {
    if let Some(known) = WEBGPU.with(|cell| cell.borrow().clone()) {
        return known;
    }
    let opened = Device::wgpu_options()
        .init_with_setup_async()
        .await
        .map(|(device, setup)| (device, AdapterReport::from_adapter(&setup.adapter)))
        .map_err(|e| format!("{e}"));
    #[cfg(target_family = "wasm")]
    let opened = match opened {
        Ok((device, mut report)) if report.name.is_empty() && report.driver.is_empty() => {
            report.name = browser_adapter_label().await.unwrap_or_default();
            Ok((device, report))
        }
        other => other,
    };
    WEBGPU.with(|cell| *cell.borrow_mut() = Some(opened.clone()));
    opened
}

/// The browser's own words for its WebGPU adapter (`GPUAdapter.info`: vendor, architecture,
/// device, description), for when wgpu's adapter info comes back empty, as Chromium's does;
/// `None` where the browser says nothing either.
#[cfg(target_family = "wasm")]
async fn browser_adapter_label() -> Option<String> {
    use js_sys::{Function, Promise, Reflect};
    use wasm_bindgen::{JsCast, JsValue};
    let get = |v: &JsValue, key: &str| {
        Reflect::get(v, &JsValue::from_str(key)).ok().filter(|v| !v.is_undefined() && !v.is_null())
    };
    let gpu = get(&get(&js_sys::global(), "navigator")?, "gpu")?;
    let request: Function = get(&gpu, "requestAdapter")?.dyn_into().ok()?;
    let promise: Promise = request.call0(&gpu).ok()?.dyn_into().ok()?;
    let adapter = wasm_bindgen_futures::JsFuture::from(promise).await.ok()?;
    let info = get(&adapter, "info")?;
    let words: Vec<String> = ["vendor", "architecture", "device", "description"]
        .iter()
        .filter_map(|key| get(&info, key)?.as_string())
        .filter(|word| !word.is_empty())
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

/// Opens the device `choice` names; never fails: without WebGPU (or, for `Auto`, with only a
/// software adapter) it is the CPU, with a notice that says why.
pub async fn open(choice: BackendChoice) -> ComputeDevice {
    if choice == BackendChoice::Cpu {
        return ComputeDevice::cpu(None);
    }
    match webgpu().await {
        Ok((_, adapter)) if choice == BackendChoice::Auto && adapter.is_software() => {
            let name = adapter.label();
            ComputeDevice::cpu(Some(format!(
                "WebGPU here is a software adapter ({name}), far slower than the CPU backend: running on the CPU \
                 (burn-flex); ?backend=webgpu uses the adapter anyway"
            )))
        }
        Ok((device, adapter)) => ComputeDevice {
            device,
            backend: BackendKind::Wgpu,
            adapter: Some(adapter),
            notice: None,
            passed_over: None,
        },
        Err(e) => ComputeDevice::cpu(Some(format!("WebGPU is not available ({e}); running on the CPU (burn-flex)"))),
    }
}

/// The device in words, for the trajectory header.
pub fn describe(device: &ComputeDevice) -> String {
    match &device.adapter {
        Some(a) => format!("WebGPU: {} ({})", a.label(), a.device_type),
        None => "burn-flex (CPU, wasm)".to_string(),
    }
}

/// The page's view of an opened device.
pub fn report(device: &ComputeDevice) -> BackendReport {
    BackendReport {
        backend: device.backend,
        adapter: device.adapter.clone(),
        notice: device.notice.clone(),
        cpu: cpu_build().to_string(),
    }
}

/// The CPU path of this build in words: one thread (a plain page has no shared memory for
/// more), with or without wasm SIMD128 (`web/run.sh` builds with it).
fn cpu_build() -> &'static str {
    if cfg!(target_feature = "simd128") { "one thread, SIMD128" } else { "one thread, no SIMD" }
}
