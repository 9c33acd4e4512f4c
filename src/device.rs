//! Choosing where the model runs: a real GPU through wgpu when there is one, else the `flex` CPU backend.

use burn::tensor::wgpu::wgpu;
use burn::tensor::{Device, DeviceKind};

use crate::error::Error;

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    /// A hardware GPU if wgpu finds one (software rasterisers such as lavapipe do not count), else flex.
    Auto,
    /// wgpu on its default adapter and API.
    Wgpu,
    /// wgpu pinned to Vulkan (SPIR-V).
    Vulkan,
    /// Burn's pure-Rust CPU backend.
    Flex,
}

impl std::str::FromStr for DeviceChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "wgpu" | "gpu" => Ok(Self::Wgpu),
            "vulkan" => Ok(Self::Vulkan),
            "flex" | "cpu" => Ok(Self::Flex),
            other => Err(format!("unknown device `{other}`: expected auto, wgpu, vulkan or flex")),
        }
    }
}

/// What wgpu reports of one adapter.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AdapterSummary {
    /// The GPU's name, e.g. "NVIDIA H100 80GB HBM3" or "llvmpipe (LLVM 15.0.6, 256 bits)".
    pub name: String,
    /// The graphics API: Vulkan, Metal, Dx12.
    pub backend: String,
    /// DiscreteGpu, IntegratedGpu, VirtualGpu, Cpu (software), Other.
    pub device_type: String,
    /// The driver's name and version string.
    pub driver: String,
    /// Further driver details (version, build).
    pub driver_info: String,
}

/// The Vulkan, Metal and DX12 adapters wgpu finds (see `adapter_types` for why not OpenGL).
pub fn adapters() -> Vec<AdapterSummary> {
    enumerate()
        .iter()
        .map(|a| {
            let info = a.get_info();
            AdapterSummary {
                name: info.name,
                backend: format!("{:?}", info.backend),
                device_type: format!("{:?}", info.device_type),
                driver: info.driver,
                driver_info: info.driver_info,
            }
        })
        .collect()
}

/// Whether wgpu sees a discrete, integrated or virtual GPU.
pub fn hardware_gpu_present() -> bool {
    adapter_types().iter().any(|t| matches!(t, wgpu::DeviceType::DiscreteGpu | wgpu::DeviceType::IntegratedGpu | wgpu::DeviceType::VirtualGpu))
}

/// Whether wgpu sees any Vulkan/Metal/DX12 adapter, software ones (lavapipe) included.
pub fn wgpu_adapter_present() -> bool {
    !adapter_types().is_empty()
}

/// Adapters of the APIs this crate runs on. OpenGL is left out: Burn's wgpu backend falls back to it when no
/// Vulkan adapter exists, and there (Mesa's EGL on llvmpipe, this machine) a run either crawled for minutes or
/// panicked in wgpu-hal ("Could not lock adapter context"), so a GL-only machine counts as having no GPU.
fn adapter_types() -> Vec<wgpu::DeviceType> {
    enumerate().iter().map(|a| a.get_info().device_type).collect()
}

fn enumerate() -> Vec<wgpu::Adapter> {
    // Only the APIs counted: an instance with OpenGL probes EGL and Wayland, whose "XDG_RUNTIME_DIR is invalid
    // or not set" lines leaked into every `--device auto` run on a machine without that variable.
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor { backends: wgpu::Backends::PRIMARY, ..wgpu::InstanceDescriptor::new_without_display_handle() });
    block_on(instance.enumerate_adapters(wgpu::Backends::PRIMARY))
}

/// Polls a future that native wgpu resolves without waiting.
fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}

/// Silences the Vulkan probe on machines without `XDG_RUNTIME_DIR` (servers, containers, CI): Mesa's
/// device-select layer, which every Vulkan enumeration loads, tries to connect to Wayland to find the display's
/// GPU and prints "XDG_RUNTIME_DIR is invalid or not set" twice when it cannot. With no Wayland session there
/// is no display to select by, so the layer is switched off (`NODEVICE_SELECT=1`) only then, and not when the
/// user steers it (`MESA_VK_DEVICE_SELECT`, `DRI_PRIME`); wgpu and Burn still choose the adapter themselves.
///
/// # Safety
/// It sets an environment variable: call it before any other thread may read or write the environment (at the
/// top of `main`, before threads are spawned).
pub unsafe fn quiet_vulkan_probe() {
    let user_selects = ["NODEVICE_SELECT", "MESA_VK_DEVICE_SELECT", "DRI_PRIME"].iter().any(|v| std::env::var_os(v).is_some());
    if std::env::var_os("XDG_RUNTIME_DIR").is_none_or(|v| v.is_empty()) && !user_selects {
        // SAFETY: the caller guarantees no other thread touches the environment now.
        unsafe { std::env::set_var("NODEVICE_SELECT", "1") };
    }
}

/// The Burn device for a choice; an explicit GPU choice without a Vulkan/Metal/DX12 adapter is an error
/// rather than wgpu's OpenGL fallback (see `adapter_types`).
pub fn select_device(choice: DeviceChoice) -> Result<Device, Error> {
    match choice {
        DeviceChoice::Auto if hardware_gpu_present() => Ok(Device::wgpu(DeviceKind::DefaultDevice)),
        DeviceChoice::Auto | DeviceChoice::Flex => Ok(Device::flex()),
        DeviceChoice::Wgpu if wgpu_adapter_present() => Ok(Device::wgpu(DeviceKind::DefaultDevice)),
        DeviceChoice::Vulkan if wgpu_adapter_present() => Ok(Device::vulkan(DeviceKind::DefaultDevice)),
        DeviceChoice::Wgpu => Err(Error::NoGpu { requested: "wgpu" }),
        DeviceChoice::Vulkan => Err(Error::NoGpu { requested: "vulkan" }),
    }
}
