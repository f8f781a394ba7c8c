//! Choosing the compute device: Burn's wgpu backend by default, burn-flex on the CPU otherwise.

#[cfg(not(target_family = "wasm"))]
use std::sync::OnceLock;

use burn::tensor::Device;
use burn::tensor::wgpu::wgpu;
#[cfg(not(target_family = "wasm"))]
use burn::tensor::wgpu::{WgpuBackend, WgpuSetup};
use serde::Serialize;

#[cfg(not(target_family = "wasm"))]
use crate::error::PrimeError;
use crate::error::Result;
use crate::model::Model;
pub use crate::model::ModelSource;

/// Which backend a caller asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    /// A hardware GPU adapter if there is one, else the CPU: a software rasteriser (lavapipe,
    /// llvmpipe, SwiftShader) runs the network tens of times slower than burn-flex, so it is
    /// passed over.
    Auto,
    /// Burn's wgpu backend (Vulkan, Metal, DX12, WebGPU) on whatever adapter exists, software
    /// ones included; falls back to the CPU unless required.
    Gpu,
    /// The burn-flex CPU backend.
    Cpu,
}

/// The backend actually in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// burn-wgpu.
    Wgpu,
    /// burn-flex.
    Flex,
}

/// What a wgpu adapter is and what it can do.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdapterReport {
    /// Adapter name, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)".
    pub name: String,
    /// Graphics API (Vulkan, Metal, Dx12, Gl, BrowserWebGpu).
    pub api: String,
    /// Integrated, discrete, virtual, CPU or other.
    pub device_type: String,
    /// Driver name and info.
    pub driver: String,
    /// Limits that matter for this runtime.
    pub limits: Vec<(String, u64)>,
    /// Enabled optional features.
    pub features: Vec<String>,
}

impl AdapterReport {
    /// Whether the adapter is a software rasteriser on the CPU (lavapipe, SwiftShader).
    pub fn is_software(&self) -> bool {
        self.device_type == format!("{:?}", wgpu::DeviceType::Cpu)
    }

    /// The adapter's name, or its driver's where the name is empty (browsers may withhold it).
    pub fn label(&self) -> &str {
        match (self.name.as_str(), self.driver.as_str()) {
            ("", "") => "an unnamed adapter",
            ("", driver) => driver,
            (name, _) => name,
        }
    }

    /// Describes a wgpu adapter.
    pub fn from_adapter(adapter: &wgpu::Adapter) -> Self {
        let info = adapter.get_info();
        let l = adapter.limits();
        let limits = vec![
            ("max_buffer_size".to_string(), l.max_buffer_size),
            ("max_storage_buffer_binding_size".to_string(), l.max_storage_buffer_binding_size),
            ("max_compute_workgroup_size_x".to_string(), u64::from(l.max_compute_workgroup_size_x)),
            ("max_compute_invocations_per_workgroup".to_string(), u64::from(l.max_compute_invocations_per_workgroup)),
            ("max_compute_workgroup_storage_size".to_string(), u64::from(l.max_compute_workgroup_storage_size)),
            ("max_storage_buffers_per_shader_stage".to_string(), u64::from(l.max_storage_buffers_per_shader_stage)),
        ];
        let features = adapter.features().iter_names().map(|(name, _)| name.to_string()).collect();
        Self {
            name: info.name,
            api: format!("{:?}", info.backend),
            device_type: format!("{:?}", info.device_type),
            driver: format!("{} {}", info.driver, info.driver_info).trim().to_string(),
            limits,
            features,
        }
    }
}

/// An opened device, with what was chosen and why.
#[derive(Debug, Clone)]
pub struct ComputeDevice {
    /// The Burn device to place tensors on.
    pub device: Device,
    /// Backend in use.
    pub backend: BackendKind,
    /// The wgpu adapter, when the backend is wgpu.
    pub adapter: Option<AdapterReport>,
    /// Set when the GPU was asked for but the CPU is used; says why.
    pub notice: Option<String>,
    /// The software adapter that [`DeviceChoice::Auto`] passed over for the CPU, if any.
    pub passed_over: Option<AdapterReport>,
}

/// The process-wide wgpu device: a wgpu runtime can be initialised once per process.
#[cfg(not(target_family = "wasm"))]
static WGPU: OnceLock<std::result::Result<(Device, AdapterReport), String>> = OnceLock::new();

/// The wgpu device of this process, initialised on first use (native only).
#[cfg(not(target_family = "wasm"))]
pub fn wgpu_device() -> Result<(Device, AdapterReport)> {
    WGPU.get_or_init(|| {
        let options = Device::wgpu_options();
        // Pinning Vulkan where it exists keeps wgpu from probing OpenGL as well, whose EGL
        // probe writes errors to stderr on machines without a display; elsewhere (macOS, or no
        // Vulkan driver) wgpu chooses.
        let options = if has_vulkan_adapter() { options.graphics_api(WgpuBackend::Vulkan) } else { options };
        options
            .init_with_setup()
            .map(|(device, setup): (Device, WgpuSetup)| (device, AdapterReport::from_adapter(&setup.adapter)))
            .map_err(|e| format!("{e}"))
    })
    .clone()
    .map_err(PrimeError::Device)
}

impl ComputeDevice {
    /// Opens the device `choice` names. With `Gpu` and no usable adapter, falls back to the
    /// CPU and records a notice, unless `require_gpu` makes that an error.
    /// `Auto` with `require_gpu` is `Gpu`: any adapter, an error without one.
    #[cfg(not(target_family = "wasm"))]
    pub fn open(choice: DeviceChoice, require_gpu: bool) -> Result<Self> {
        match choice {
            DeviceChoice::Cpu => Ok(Self::cpu(None)),
            DeviceChoice::Auto if !require_gpu => {
                // Looked at before the wgpu runtime is started: when every adapter is software,
                // it is never started at all.
                let adapters = pollster::block_on(list_adapters());
                if let Some(software) = adapters.iter().find(|a| a.is_software())
                    && adapters.iter().all(AdapterReport::is_software)
                {
                    return Ok(Self { passed_over: Some(software.clone()), ..Self::cpu(None) });
                }
                match Self::open(DeviceChoice::Gpu, false)? {
                    Self { adapter: Some(chosen), .. } if chosen.is_software() => {
                        Ok(Self { passed_over: Some(chosen), ..Self::cpu(None) })
                    }
                    opened => Ok(opened),
                }
            }
            DeviceChoice::Auto | DeviceChoice::Gpu => match wgpu_device() {
                Ok((device, adapter)) => Ok(Self {
                    device,
                    backend: BackendKind::Wgpu,
                    adapter: Some(adapter),
                    notice: None,
                    passed_over: None,
                }),
                Err(e) if !require_gpu => {
                    Ok(Self::cpu(Some(format!("no usable GPU adapter ({e}); running on the CPU (burn-flex)"))))
                }
                Err(e) => Err(e),
            },
        }
    }

    /// Loads a model onto this device, cutting its large tensors to the adapter's largest
    /// storage binding (see [`crate::binding::Blocking`]).
    pub fn load(&self, source: ModelSource<'_>) -> Result<Model> {
        self.load_within(source, None)
    }

    /// [`ComputeDevice::load`] with tensors cut to at most `cap` bytes per binding where that
    /// is below the adapter's limit (no effect on the CPU, which has no limit).
    pub fn load_within(&self, source: ModelSource<'_>, cap: Option<u64>) -> Result<Model> {
        let limit = match (self.max_binding(), cap) {
            (Some(adapter), Some(cap)) => Some(adapter.min(cap)),
            (limit, _) => limit,
        };
        Model::load(source, &self.device, limit)
    }

    /// The adapter's largest storage binding in bytes; `None` on the CPU.
    pub fn max_binding(&self) -> Option<u64> {
        let adapter = self.adapter.as_ref()?;
        adapter.limits.iter().find(|(name, _)| name == "max_storage_buffer_binding_size").map(|(_, v)| *v)
    }

    /// The burn-flex CPU device.
    pub fn cpu(notice: Option<String>) -> Self {
        Self { device: Device::flex(), backend: BackendKind::Flex, adapter: None, notice, passed_over: None }
    }
}

/// Whether a Vulkan driver reports an adapter (a GPU, or lavapipe).
#[cfg(not(target_family = "wasm"))]
fn has_vulkan_adapter() -> bool {
    let backends = wgpu::Backends::VULKAN;
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends,
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    });
    !pollster::block_on(instance.enumerate_adapters(backends)).is_empty()
}

/// The wgpu backends compiled into this build, by wgpu's names (`VULKAN`, `GL`, `METAL`, `DX12`,
/// `BROWSER_WEBGPU`): which a platform can use, whether or not an adapter exists.
pub fn compiled_backends() -> Vec<String> {
    wgpu::Instance::enabled_backend_features().iter_names().map(|(name, _)| name.to_string()).collect()
}

/// Every adapter on the primary graphics APIs (Vulkan, Metal, DX12, WebGPU); OpenGL's only
/// where those have none, since its probe prints errors on machines without a display.
pub async fn list_adapters() -> Vec<AdapterReport> {
    for backends in [wgpu::Backends::PRIMARY, wgpu::Backends::GL] {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
            backends,
            ..wgpu::InstanceDescriptor::new_without_display_handle()
        });
        let adapters = instance.enumerate_adapters(backends).await;
        if !adapters.is_empty() {
            return adapters.iter().map(AdapterReport::from_adapter).collect();
        }
    }
    Vec::new()
}
