//! Flex tensors as host buffers, for the host kernels: flex keeps tensors in host memory, and turning a uniquely
//! owned contiguous tensor into `TensorData` and back moves the buffer without copying.

use burn::tensor::{Device, Tensor, TensorData};

/// The values of an f32 flex tensor (zero-copy when it is uniquely owned and contiguous).
pub(crate) fn to_host<const D: usize>(x: Tensor<D>) -> Vec<f32> {
    x.into_data().try_into_vec::<f32>().expect("flex f32 tensor")
}

/// A flex tensor owning `values`.
pub(crate) fn from_host<const D: usize>(values: Vec<f32>, shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(values, shape), device)
}
