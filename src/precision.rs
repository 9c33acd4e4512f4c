//! Numeric precision of the activations. `f16` halves the memory of the pyramid (which the heads hold throughout)
//! and of the heads' activations; what a GPU reads back is the same (the heads' outputs, f32 either way). The
//! weights stay f32, every convolution, fc layer and GroupNorm computes in f32 (Burn's f16 convolutions accumulate
//! in f16: a 3x3 256->64 conv measured 6.4e-3 relative L2 from f32 on wgpu), the backbone and FPN run on the f32
//! input in f32 throughout (their depth amplifies each rounding: see `MaskRcnn::features`), and each head's outputs
//! (RPN logits and deltas, box logits and deltas, mask logits) and every RoI coordinate stay f32, where f16's 11
//! bits would move scores, choices and mask pixels.

use std::str::FromStr;

use burn::tensor::{DType, Tensor};

/// Activations' dtype between layers on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// Single precision (the published models').
    #[default]
    F32,
    /// Half precision storage of the pyramid and the heads' activations; f32 weights, arithmetic, backbone and FPN.
    F16,
}

impl Precision {
    /// The Burn dtype.
    pub fn dtype(self) -> DType {
        match self {
            Self::F32 => DType::F32,
            Self::F16 => DType::F16,
        }
    }

    /// `x` in this precision.
    pub fn cast<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        if x.dtype() == self.dtype() { x } else { x.cast(self.dtype()) }
    }
}

/// `f(x)` computed in f32, the result back in `x`'s dtype (the weights are f32 already: nothing is cast but `x`).
pub(crate) fn compute_in_f32<const D: usize, const E: usize>(x: Tensor<D>, f: impl FnOnce(Tensor<D>) -> Tensor<E>) -> Tensor<E> {
    let dtype = x.dtype();
    if dtype == DType::F32 {
        return f(x);
    }
    f(x.cast(DType::F32)).cast(dtype)
}

/// `x` in f32 (a head's output, which the host reads).
pub(crate) fn to_f32<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if x.dtype() == DType::F32 { x } else { x.cast(DType::F32) }
}

impl FromStr for Precision {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" | "fp32" => Ok(Self::F32),
            "f16" | "fp16" | "half" => Ok(Self::F16),
            other => Err(format!("unknown precision `{other}`: expected f32 or f16")),
        }
    }
}
