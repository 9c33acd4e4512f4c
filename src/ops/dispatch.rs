//! Which implementation runs each operator on a tensor's device: the one place that decides.
//!
//! | operator | flex, f32 | flex, f16 (computed in f32) | GPU, software adapter (lavapipe) | GPU, hardware | hardware branch tested on lavapipe |
//! |---|---|---|---|---|---|
//! | 3x3 stride-1 conv | host Winograd | host Winograd | plain CubeCL conv | Burn's tuned conv | yes |
//! | other convs | host im2col + GEMM | host im2col + GEMM | plain CubeCL conv | Burn's tuned conv | 3x3 stride 2 as above; 1x1: no (crashes) |
//! | fc layers | Burn | Burn | plain CubeCL matmul | Burn's tuned matmul | no: crashes lavapipe's compiler |
//! | 2x2 stride-2 deconv | host GEMM per RoI | host GEMM per RoI | plain CubeCL matmul | Burn's tuned matmul | no: crashes |
//! | GroupNorm (+ReLU, +residual) | host kernel | Burn, in f32 | CubeCL kernels | CubeCL kernels | yes |
//! | FPN upsample + add | host, in place | Burn | Burn | Burn | (the software branch) |
//! | stem's 3x3 stride-2 max pool | host | Burn | Burn | Burn | (the software branch) |
//! | RoIAlign | host reference | host reference | CubeCL kernel | CubeCL kernel | yes |
//! | mask paste | host reference | host reference | CubeCL kernel | CubeCL kernel | (the software branch) |
//! | RPN top-k anchors and their deltas | host sort | host sort | CubeCL radix select | CubeCL radix select | (the software branch) |
//!
//! Software adapters get plain kernels because lavapipe segfaults compiling Burn 0.22.1's tiled matmul and
//! Burn's conv autotuner times every candidate there on every new shape (seconds per run); flex's host kernels
//! exist where Burn's generic ops were the measured bottleneck (`cargo bench --bench ops`). The last column: CI runs
//! each hardware branch on lavapipe under a profile claiming hardware (`tests/gpu.rs`,
//! `examples/hardware_branch.rs`) wherever lavapipe can run it; Burn's matmul-based kernels crash it (SIGSEGV).

use burn::tensor::{DType, Device};

use crate::device::{AdapterClass, DeviceProfile};

/// An operator whose implementation depends on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// A 3x3, stride-1, padding-1 convolution without dilation or groups (Winograd's shape).
    Conv3x3,
    Conv,
    Matmul,
    /// The mask head's 2x2, stride-2 transposed conv.
    Deconv2x2,
    /// FPN's merge of a level with the nearest 2x upsampling of the coarser one.
    UpsampleAdd,
    /// The ResNet stem's 3x3, stride-2, padding-1 max pool.
    MaxPool,
    GroupNorm,
    RoiAlign,
    MaskPaste,
    /// The RPN's best anchors per level and their deltas (on a GPU, so only they are read back).
    RpnTopK,
}

/// Who computes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Impl {
    /// A kernel of this crate on host memory (flex tensors are host buffers).
    Host,
    /// A CubeCL kernel of this crate.
    Cube,
    /// Burn's own operator.
    Burn,
}

/// The implementation of `op` for a tensor of `dtype` on `device` (the device's [`DeviceProfile`]).
pub(crate) fn implementation(op: Op, device: &Device, dtype: DType) -> Impl {
    table(op, DeviceProfile::of(device).class(), dtype)
}

/// The table above, as code.
fn table(op: Op, class: AdapterClass, dtype: DType) -> Impl {
    use AdapterClass::*;
    match (op, class) {
        (Op::RoiAlign | Op::MaskPaste | Op::RpnTopK, Host) => Impl::Host,
        (Op::RoiAlign | Op::MaskPaste | Op::RpnTopK | Op::GroupNorm, Software | Hardware) => Impl::Cube,
        (Op::GroupNorm | Op::Conv3x3 | Op::Conv | Op::Deconv2x2 | Op::UpsampleAdd | Op::MaxPool, Host) if dtype == DType::F32 => Impl::Host,
        (_, Host) => Impl::Burn,
        // No CubeCL kernel of this crate: Burn's ops on every GPU.
        (Op::UpsampleAdd | Op::MaxPool, _) => Impl::Burn,
        (Op::Conv3x3 | Op::Conv | Op::Matmul | Op::Deconv2x2, Software) => Impl::Cube,
        (Op::Conv3x3 | Op::Conv | Op::Matmul | Op::Deconv2x2, Hardware) => Impl::Burn,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpus_take_plain_kernels_on_software_adapters_and_burns_on_hardware() {
        for op in [Op::Conv3x3, Op::Conv, Op::Matmul, Op::Deconv2x2] {
            assert_eq!(table(op, AdapterClass::Software, DType::F32), Impl::Cube);
            assert_eq!(table(op, AdapterClass::Hardware, DType::F16), Impl::Burn);
        }
        for op in [Op::GroupNorm, Op::RoiAlign, Op::MaskPaste, Op::RpnTopK] {
            assert_eq!(table(op, AdapterClass::Hardware, DType::F32), Impl::Cube);
        }
        assert_eq!(table(Op::MaxPool, AdapterClass::Software, DType::F32), Impl::Burn);
    }

    #[test]
    fn flex_takes_host_kernels_in_f32_only() {
        let flex = Device::flex();
        assert_eq!(implementation(Op::Conv3x3, &flex, DType::F32), Impl::Host);
        assert_eq!(implementation(Op::Conv3x3, &flex, DType::F16), Impl::Burn);
        assert_eq!(implementation(Op::Conv, &flex, DType::F32), Impl::Host);
        assert_eq!(implementation(Op::Conv, &flex, DType::F16), Impl::Burn);
        assert_eq!(implementation(Op::Deconv2x2, &flex, DType::F32), Impl::Host);
        assert_eq!(implementation(Op::Deconv2x2, &flex, DType::F16), Impl::Burn);
        assert_eq!(implementation(Op::GroupNorm, &flex, DType::F32), Impl::Host);
        assert_eq!(implementation(Op::GroupNorm, &flex, DType::F16), Impl::Burn);
        assert_eq!(implementation(Op::MaxPool, &flex, DType::F32), Impl::Host);
        assert_eq!(implementation(Op::MaxPool, &flex, DType::F16), Impl::Burn);
        assert_eq!(implementation(Op::RoiAlign, &flex, DType::F16), Impl::Host);
        assert_eq!(implementation(Op::MaskPaste, &flex, DType::F32), Impl::Host);
        assert_eq!(implementation(Op::RpnTopK, &flex, DType::F16), Impl::Host);
    }
}
