//! The GPU path on wgpu (in CI: Mesa's software Vulkan, lavapipe): the r50_hopper_320 fixture end to end with
//! the same matching thresholds as on flex. Skipped, with a message, where wgpu finds no Vulkan/Metal/DX12
//! adapter at all.

mod common;

use burn::tensor::{Device, DeviceKind};
use common::*;

fn wgpu_device() -> Option<Device> {
    if !mask_rcnn_burn::device::wgpu_adapter_present() {
        eprintln!("no wgpu adapter: GPU-path tests skipped (install mesa-vulkan-drivers for lavapipe)");
        return None;
    }
    Some(Device::wgpu(DeviceKind::DefaultDevice))
}

#[test]
fn hopper_320_end_to_end_on_wgpu() {
    let Some(device) = wgpu_device() else { return };
    let (matched, mask) = check_end_to_end("r50_hopper_320", case_detector("r50_hopper_320", device), 0.98, 2e-3);
    println!("wgpu r50_hopper_320: {matched}/100 matched, mask I/U {mask:.5}");
}
