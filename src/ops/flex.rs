//! Flex tensors as host buffers, for the host kernels: flex keeps tensors in host memory, and turning a uniquely
//! owned contiguous tensor into `TensorData` and back moves the buffer without copying. A tensor that is also
//! held elsewhere (a residual, a pyramid level the RPN and the RoI heads both read) is read in place through
//! its flex primitive instead of copied.

use std::ops::Deref;

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::tensor::{Device, Tensor, TensorData};

/// The values of an f32 flex tensor (zero-copy when it is uniquely owned and contiguous).
pub(crate) fn to_host<const D: usize>(x: Tensor<D>) -> Vec<f32> {
    x.into_data().try_into_vec::<f32>().expect("flex f32 tensor")
}

/// A flex tensor owning `values`.
pub(crate) fn from_host<const D: usize>(values: Vec<f32>, shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// Read-only values of an f32 flex tensor, shared with whoever else holds it.
pub(crate) enum HostValues {
    /// The tensor's own buffer (contiguous, f32).
    Shared(FlexTensor),
    /// A contiguous copy (a strided view, or not a flex tensor).
    Owned(Vec<f32>),
}

impl Deref for HostValues {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        match self {
            HostValues::Shared(t) => t.as_slice::<f32>().expect("checked contiguous f32 when made"),
            HostValues::Owned(v) => v,
        }
    }
}

/// The values of an f32 flex tensor without copying them when they are contiguous, even if the tensor is shared.
pub(crate) fn host_values<const D: usize>(x: Tensor<D>) -> HostValues {
    match x.clone().try_into_primitive::<Flex>() {
        Ok(t) if t.as_slice::<f32>().is_some() => HostValues::Shared(t),
        _ => HostValues::Owned(to_host(x)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_tensors_are_read_in_place() {
        let device = Device::flex();
        let x = Tensor::<2>::from_data(TensorData::new((0..12).map(|i| i as f32).collect::<Vec<_>>(), [3, 4]), &device);
        let view = host_values(x.clone());
        assert!(matches!(view, HostValues::Shared(_)));
        assert_eq!(&view[..], &(0..12).map(|i| i as f32).collect::<Vec<_>>()[..]);
        // A transposed view is not contiguous: copied, in logical order.
        let t = host_values(x.clone().transpose());
        assert_eq!(&t[..4], &[0.0, 4.0, 8.0, 1.0]);
        // A narrowed view with an offset: its own values only.
        let n = host_values(x.narrow(0, 1, 2));
        assert_eq!(&n[..], &(4..12).map(|i| i as f32).collect::<Vec<_>>()[..]);
    }
}
