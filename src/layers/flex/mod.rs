//! Host kernels for Burn's CPU backend (flex), used only where Burn's generic ops are the measured
//! bottleneck (`cargo bench --bench ops`): GroupNorm(+ReLU) in one pass, and 3x3 convolutions by Winograd.
//!
//! Flex keeps tensors in host memory, and turning a uniquely owned contiguous tensor into `TensorData` and
//! back moves the buffer without copying, so these kernels work on plain `Vec<f32>`.

pub mod group_norm;
pub mod winograd;

use burn::tensor::{DType, Device, Tensor, TensorData};

/// Whether `x` can take the host path: on flex, in f32.
pub fn applies<const D: usize>(x: &Tensor<D>) -> bool {
    x.dtype() == DType::F32 && x.device() == Device::flex()
}

/// The tensor's values (zero-copy when it is uniquely owned and contiguous).
pub fn to_host<const D: usize>(x: Tensor<D>) -> Vec<f32> {
    x.into_data().try_into_vec::<f32>().expect("flex f32 tensor")
}

pub fn from_host<const D: usize>(values: Vec<f32>, shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(values, shape), device)
}
