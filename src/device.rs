//! Where the model runs. A [`DeviceSpec`] is what a user writes (`auto`, `cpu`, `wgpu:1`, `vulkan`); it is resolved
//! once into a [`DeviceProfile`]: the Burn device and what the rest of the crate needs to know about it (host
//! memory or GPU, software or hardware adapter, the largest buffer a kernel may bind, f16 support). Dispatch,
//! batching and read-backs read the profile of the tensors' device; nothing probes the machine per operation.

use std::sync::{Arc, Mutex, RwLock};

use burn::tensor::wgpu::wgpu;
use burn::tensor::{DType, Device, DeviceKind};

use crate::error::Error;

/// A device as a user names it: `auto`, `cpu` (or `flex`), `wgpu`, `vulkan`, with an adapter index for machines
/// with several GPUs (`wgpu:1`, `vulkan:0`; indices as [`adapters`] lists them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSpec {
    /// The first hardware GPU wgpu finds (discrete, then integrated, then virtual); the CPU when there is none
    /// (software rasterisers such as lavapipe do not count).
    Auto,
    /// Burn's CPU backend, flex.
    Cpu,
    /// wgpu on the graphics API it settles on (Vulkan where there is one; Metal on macOS; DX12): the adapter of
    /// this index, else the first hardware adapter, else the first software one.
    Wgpu(Option<usize>),
    /// wgpu pinned to Vulkan (SPIR-V), the adapter chosen as for [`DeviceSpec::Wgpu`].
    Vulkan(Option<usize>),
}

impl std::str::FromStr for DeviceSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let invalid = || Error::invalid_argument(format!("unknown device `{s}`: expected auto, cpu, wgpu, vulkan, or wgpu:N / vulkan:N"));
        let (name, index) = match s.split_once(':') {
            Some((name, index)) => (name, Some(index.parse::<usize>().map_err(|_| invalid())?)),
            None => (s, None),
        };
        match (name, index) {
            ("auto", None) => Ok(Self::Auto),
            ("cpu" | "flex", None) => Ok(Self::Cpu),
            ("wgpu" | "gpu", index) => Ok(Self::Wgpu(index)),
            ("vulkan", index) => Ok(Self::Vulkan(index)),
            _ => Err(invalid()),
        }
    }
}

impl std::fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Cpu => f.write_str("cpu"),
            Self::Wgpu(None) => f.write_str("wgpu"),
            Self::Vulkan(None) => f.write_str("vulkan"),
            Self::Wgpu(Some(i)) => write!(f, "wgpu:{i}"),
            Self::Vulkan(Some(i)) => write!(f, "vulkan:{i}"),
        }
    }
}

/// What kind of processor runs the kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum AdapterClass {
    /// The CPU through flex: tensors are host memory, this crate's host kernels run on them.
    Host,
    /// A GPU API on a software rasteriser (lavapipe, WARP): plain kernels, as Burn's tuned ones do not run or
    /// take seconds to autotune there.
    Software,
    /// A GPU.
    Hardware,
}

/// One device and what the crate needs to know about it, made once per device.
#[derive(Debug, Clone)]
pub struct DeviceProfile {
    device: Device,
    class: AdapterClass,
    api: &'static str,
    adapter_index: Option<usize>,
    name: String,
    max_binding: u64,
    f16: bool,
}

/// The largest storage buffer a kernel may bind where the adapter's limit is unknown: WebGPU's default, which
/// lavapipe also reports.
const DEFAULT_MAX_BINDING: u64 = 128 << 20;

/// Profiles made so far, one per device.
static PROFILES: RwLock<Vec<Arc<DeviceProfile>>> = RwLock::new(Vec::new());

thread_local! {
    /// A profile standing in for its device's on this thread ([`DeviceProfile::scope`]).
    static OVERRIDE: std::cell::RefCell<Option<Arc<DeviceProfile>>> = const { std::cell::RefCell::new(None) };
}

impl DeviceProfile {
    /// Resolves `spec` to a device and its profile, with a line saying which adapter was chosen and why
    /// (`--device auto` prints it). An explicit GPU choice where wgpu finds no Vulkan/Metal/DX12 adapter, or an
    /// adapter index past the last, is an error.
    pub fn resolve(spec: DeviceSpec) -> Result<(Arc<Self>, String), Error> {
        let (profile, why) = match spec {
            DeviceSpec::Cpu => (Self::host(), "the CPU (flex), as asked".to_string()),
            DeviceSpec::Auto => match Api::settle(Api::AUTO).filter(|(_, list)| list.iter().any(|a| a.hardware())) {
                Some((api, list)) => {
                    let i = list.iter().position(Adapter::hardware).expect("a hardware adapter");
                    let a = &list[i];
                    let why = format!("{} ({:?}, {}, adapter {i}): the first hardware GPU wgpu lists", a.name, a.device_type, api.name());
                    (Self::gpu(api, &list, i, false)?, why)
                }
                None => {
                    let seen: Vec<String> = Api::AUTO.iter().flat_map(|api| api.adapters()).map(|a| format!("{} (software)", a.name)).collect();
                    let seen = if seen.is_empty() { "no Vulkan, Metal or DX12 adapter".to_string() } else { seen.join(", ") };
                    (Self::host(), format!("the CPU (flex): wgpu finds no hardware GPU ({seen})"))
                }
            },
            DeviceSpec::Wgpu(index) | DeviceSpec::Vulkan(index) => {
                let pinned = matches!(spec, DeviceSpec::Vulkan(_));
                let apis: &[Api] = if pinned { &[Api::Vulkan] } else { Api::AUTO };
                let Some((api, list)) = Api::settle(apis) else { return Err(Error::NoGpu { requested: spec.to_string() }) };
                let i = match index {
                    Some(i) if i < list.len() => i,
                    Some(i) => {
                        return Err(Error::UnsupportedDevice {
                            device: spec.to_string(),
                            reason: format!(
                                "adapter {i} does not exist ({} has {} adapter(s): {})",
                                api.name(),
                                list.len(),
                                list.iter().map(|a| a.name.as_str()).collect::<Vec<_>>().join(", ")
                            ),
                        });
                    }
                    None => list.iter().position(Adapter::hardware).unwrap_or(0),
                };
                let why = format!("{} ({:?}, {}, adapter {i})", list[i].name, list[i].device_type, api.name());
                (Self::gpu(api, &list, i, pinned)?, why)
            }
        };
        Ok((profile.register(), why))
    }

    /// The profile of `device`: the one made when it was resolved, else one made now (flex: the host; a wgpu
    /// device: its adapter's name, and software when it is no card) and kept.
    pub fn of(device: &Device) -> Arc<Self> {
        if let Some(p) = OVERRIDE.with_borrow(|o| o.clone()).filter(|p| p.device == *device) {
            return p;
        }
        if let Some(p) = PROFILES.read().expect("profiles lock").iter().find(|p| p.device == *device) {
            return p.clone();
        }
        let profile = if *device == Device::flex() {
            Self::host()
        } else {
            let identity = device.identity();
            let hardware = identity.as_ref().is_some_and(|i| i.physical.is_some());
            Self {
                device: device.clone(),
                class: if hardware { AdapterClass::Hardware } else { AdapterClass::Software },
                api: "wgpu",
                adapter_index: None,
                name: identity.map(|i| i.name).unwrap_or_else(|| "unknown adapter".into()),
                max_binding: DEFAULT_MAX_BINDING,
                f16: device.supports_dtype(DType::F16),
            }
        };
        profile.register()
    }

    /// Keeps the first profile of each device: every later lookup of the device gets this one.
    fn register(self) -> Arc<Self> {
        let mut all = PROFILES.write().expect("profiles lock");
        if let Some(p) = all.iter().find(|p| p.device == self.device) {
            return p.clone();
        }
        let p = Arc::new(self);
        all.push(p.clone());
        p
    }

    fn host() -> Self {
        Self {
            device: Device::flex(),
            class: AdapterClass::Host,
            api: "flex",
            adapter_index: None,
            name: "CPU (flex)".into(),
            max_binding: u64::MAX,
            f16: true,
        }
    }

    fn gpu(api: Api, list: &[Adapter], index: usize, pinned: bool) -> Result<Self, Error> {
        let a = &list[index];
        let nth = list[..index].iter().filter(|b| b.device_type == a.device_type).count();
        let kind = match a.device_type {
            wgpu::DeviceType::DiscreteGpu => DeviceKind::DiscreteGpu(nth),
            wgpu::DeviceType::IntegratedGpu => DeviceKind::IntegratedGpu(nth),
            wgpu::DeviceType::VirtualGpu => DeviceKind::VirtualGpu(nth),
            // Burn addresses the first software adapter only.
            wgpu::DeviceType::Cpu if nth == 0 => DeviceKind::Cpu,
            other => {
                return Err(Error::UnsupportedDevice {
                    device: format!("{} ({other:?}, adapter {index})", a.name),
                    reason: "Burn cannot address this adapter".into(),
                });
            }
        };
        let device = if pinned { Device::vulkan(kind) } else { Device::wgpu(kind) };
        let class = if a.hardware() { AdapterClass::Hardware } else { AdapterClass::Software };
        Ok(Self { device, class, api: api.name(), adapter_index: Some(index), name: a.name.clone(), max_binding: a.max_binding, f16: a.f16 })
    }

    /// This profile with its adapter class replaced: lets tests run the hardware branch of each operator on a
    /// software adapter. Use it through [`DeviceProfile::scope`].
    #[doc(hidden)]
    pub fn claiming(&self, class: AdapterClass) -> Arc<Self> {
        Arc::new(Self { class, ..self.clone() })
    }

    /// Runs `f` with this profile standing in for its device's on this thread.
    #[doc(hidden)]
    pub fn scope<R>(self: &Arc<Self>, f: impl FnOnce() -> R) -> R {
        let previous = OVERRIDE.with_borrow_mut(|o| o.replace(self.clone()));
        let out = f();
        OVERRIDE.with_borrow_mut(|o| *o = previous);
        out
    }

    /// The Burn device.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Host, software or hardware.
    pub fn class(&self) -> AdapterClass {
        self.class
    }

    /// Whether tensors live in host memory (flex), where this crate's host kernels run on them in place.
    pub fn is_host(&self) -> bool {
        self.class == AdapterClass::Host
    }

    /// The graphics API (`vulkan`, `metal`, `dx12`, `wgpu` when unknown), or `flex`.
    pub fn api(&self) -> &str {
        self.api
    }

    /// The adapter's index among those [`adapters`] lists, where it was chosen by index or spec.
    pub fn adapter_index(&self) -> Option<usize> {
        self.adapter_index
    }

    /// The adapter's name (`NVIDIA H100 80GB HBM3`, `llvmpipe (LLVM 15.0.6, 256 bits)`, `CPU (flex)`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The largest buffer one kernel may bind, in bytes (unbounded on flex).
    pub fn max_binding(&self) -> u64 {
        self.max_binding
    }

    /// Whether the device computes in f16.
    pub fn supports_f16(&self) -> bool {
        self.f16
    }

    /// How many rows of `bytes_per_row` fit one binding (at least 1): batches and RoI chunks are split by it.
    pub fn rows_per_binding(&self, bytes_per_row: usize) -> usize {
        if self.max_binding == u64::MAX {
            return usize::MAX;
        }
        usize::try_from(self.max_binding / bytes_per_row.max(1) as u64).unwrap_or(usize::MAX).max(1)
    }
}

/// The graphics APIs this crate runs on, in the order wgpu's automatic choice tries them. OpenGL is left out:
/// Burn falls back to it when nothing else exists, and there (Mesa's EGL on llvmpipe) a run either crawled for
/// minutes or panicked in wgpu-hal ("Could not lock adapter context"), so a GL-only machine has no GPU here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    Vulkan,
    #[cfg_attr(not(target_os = "macos"), allow(dead_code))]
    Metal,
    Dx12,
}

impl Api {
    #[cfg(target_os = "macos")]
    const AUTO: &'static [Api] = &[Api::Metal];
    #[cfg(not(target_os = "macos"))]
    const AUTO: &'static [Api] = &[Api::Vulkan, Api::Dx12];

    fn name(self) -> &'static str {
        match self {
            Self::Vulkan => "vulkan",
            Self::Metal => "metal",
            Self::Dx12 => "dx12",
        }
    }

    fn backend(self) -> wgpu::Backend {
        match self {
            Self::Vulkan => wgpu::Backend::Vulkan,
            Self::Metal => wgpu::Backend::Metal,
            Self::Dx12 => wgpu::Backend::Dx12,
        }
    }

    /// The API of `apis` a device comes up on, as wgpu's own choice makes it (the first with a hardware adapter,
    /// else the first with any), with its adapters in enumeration order.
    fn settle(apis: &[Api]) -> Option<(Api, Vec<Adapter>)> {
        let mut software = None;
        for &api in apis {
            let list = api.adapters();
            if list.iter().any(Adapter::hardware) {
                return Some((api, list));
            }
            if software.is_none() && !list.is_empty() {
                software = Some((api, list));
            }
        }
        software
    }

    /// This API's adapters, in the order wgpu (and so Burn's device indices) enumerates them.
    fn adapters(self) -> Vec<Adapter> {
        // Instances are made one at a time: the Vulkan loader crashes when they come and go on several threads.
        static ENUMERATING: Mutex<()> = Mutex::new(());
        let _one = ENUMERATING.lock().unwrap_or_else(|e| e.into_inner());
        if !wgpu::Instance::enabled_backend_features().contains(self.backend().into()) {
            return Vec::new();
        }
        // Only this API: an instance with OpenGL probes EGL and Wayland, whose "XDG_RUNTIME_DIR is invalid or not
        // set" lines leaked into every `--device auto` run on a machine without that variable.
        let backends: wgpu::Backends = self.backend().into();
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor { backends, ..wgpu::InstanceDescriptor::new_without_display_handle() });
        block_on(instance.enumerate_adapters(backends))
            .iter()
            .map(|a| {
                let (info, limits) = (a.get_info(), a.limits());
                Adapter {
                    name: info.name,
                    device_type: info.device_type,
                    driver: format!("{} {}", info.driver, info.driver_info).trim().to_string(),
                    max_binding: limits.max_storage_buffer_binding_size.min(limits.max_buffer_size),
                    f16: a.features().contains(wgpu::Features::SHADER_F16),
                }
            })
            .collect()
    }
}

/// What wgpu reports of one adapter.
#[derive(Debug, Clone)]
struct Adapter {
    name: String,
    device_type: wgpu::DeviceType,
    driver: String,
    max_binding: u64,
    f16: bool,
}

impl Adapter {
    fn hardware(&self) -> bool {
        matches!(self.device_type, wgpu::DeviceType::DiscreteGpu | wgpu::DeviceType::IntegratedGpu | wgpu::DeviceType::VirtualGpu)
    }
}

/// One adapter as [`adapters`] lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AdapterSummary {
    /// Its index in `wgpu:N` / `vulkan:N`.
    pub index: usize,
    /// The GPU's name, e.g. "NVIDIA H100 80GB HBM3" or "llvmpipe (LLVM 15.0.6, 256 bits)".
    pub name: String,
    /// The graphics API: vulkan, metal, dx12.
    pub api: String,
    /// DiscreteGpu, IntegratedGpu, VirtualGpu, Cpu (software), Other.
    pub device_type: String,
    /// The driver's name and version.
    pub driver: String,
}

/// The adapters `wgpu:N` chooses from (those of the API wgpu settles on), with their indices.
pub fn adapters() -> Vec<AdapterSummary> {
    let Some((api, list)) = Api::settle(Api::AUTO) else { return Vec::new() };
    list.into_iter()
        .enumerate()
        .map(|(index, a)| AdapterSummary {
            index,
            name: a.name,
            api: api.name().into(),
            device_type: format!("{:?}", a.device_type),
            driver: a.driver,
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_with_and_without_an_index() {
        assert_eq!("auto".parse::<DeviceSpec>().unwrap(), DeviceSpec::Auto);
        assert_eq!("flex".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cpu);
        assert_eq!("cpu".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cpu);
        assert_eq!("wgpu:1".parse::<DeviceSpec>().unwrap(), DeviceSpec::Wgpu(Some(1)));
        assert_eq!("vulkan".parse::<DeviceSpec>().unwrap(), DeviceSpec::Vulkan(None));
        for bad in ["cuda", "wgpu:", "wgpu:-1", "cpu:0", "vulkan:x"] {
            assert!(bad.parse::<DeviceSpec>().is_err(), "{bad}");
        }
        assert_eq!(DeviceSpec::Vulkan(Some(2)).to_string(), "vulkan:2");
    }

    #[test]
    fn the_host_profile_is_unbounded_and_registered_once() {
        let (p, why) = DeviceProfile::resolve(DeviceSpec::Cpu).unwrap();
        assert!(p.is_host() && why.contains("CPU"));
        assert_eq!(p.rows_per_binding(1 << 20), usize::MAX);
        assert!(Arc::ptr_eq(&p, &DeviceProfile::of(&Device::flex())));
        let claimed = p.claiming(AdapterClass::Software);
        assert_eq!(claimed.scope(|| DeviceProfile::of(&Device::flex()).class()), AdapterClass::Software);
        assert_eq!(DeviceProfile::of(&Device::flex()).class(), AdapterClass::Host);
        let gpu = DeviceProfile { max_binding: 128 << 20, ..(*p).clone() };
        assert_eq!(gpu.rows_per_binding(256 * 7 * 7 * 4), 2674);
        assert_eq!(gpu.rows_per_binding(usize::MAX), 1);
    }
}
