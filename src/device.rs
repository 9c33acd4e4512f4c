//! Choosing where the model runs: a real GPU through wgpu when there is one, else the `flex` CPU backend.

use burn::tensor::wgpu::wgpu;
use burn::tensor::{Device, DeviceKind};

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

/// Whether wgpu sees a discrete, integrated or virtual GPU.
pub fn hardware_gpu_present() -> bool {
    adapter_types().iter().any(|t| matches!(t, wgpu::DeviceType::DiscreteGpu | wgpu::DeviceType::IntegratedGpu | wgpu::DeviceType::VirtualGpu))
}

/// Whether wgpu sees any adapter at all, software ones (lavapipe) included.
pub fn wgpu_adapter_present() -> bool {
    !adapter_types().is_empty()
}

fn adapter_types() -> Vec<wgpu::DeviceType> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    block_on(instance.enumerate_adapters(wgpu::Backends::all())).iter().map(|a| a.get_info().device_type).collect()
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

/// The Burn device for a choice.
pub fn select_device(choice: DeviceChoice) -> Device {
    match choice {
        DeviceChoice::Auto if hardware_gpu_present() => Device::wgpu(DeviceKind::DefaultDevice),
        DeviceChoice::Auto | DeviceChoice::Flex => Device::flex(),
        DeviceChoice::Wgpu => Device::wgpu(DeviceKind::DefaultDevice),
        DeviceChoice::Vulkan => Device::vulkan(DeviceKind::DefaultDevice),
    }
}
