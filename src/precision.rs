//! Numeric precision of weights and activations. `f16` halves the memory of weights and of the activations
//! between layers; convolutions and fc layers accumulate in f32 ([`compute_in_f32`]), GroupNorm statistics are
//! f32 (`layers::group_norm`), and everything read back to the host is converted to f32.

use std::str::FromStr;

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{DType, Tensor};

/// Weights' and activations' dtype on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// Single precision (the published models').
    #[default]
    F32,
    /// Half precision storage, f32 accumulation (GPUs).
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

    /// Every float parameter of `module` in this precision.
    pub fn cast_module<M: Module>(self, module: M) -> M {
        struct Caster(Precision);
        impl ModuleMapper for Caster {
            fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
                let p = self.0;
                param.map(|t| p.cast(t))
            }
        }
        module.map(&mut Caster(self))
    }
}

/// `f(module, x)` computed in f32 when `x` is in a reduced precision, the result cast back: Burn's f16
/// convolutions accumulate in f16 (a 3x3 256->64 conv measured 6.4e-3 relative L2 from f32 on wgpu), which
/// compounds over the model's ~60 convolutions, so f16 is the storage format between layers, not the
/// accumulator.
pub fn compute_in_f32<M: Module + Clone, const D: usize, const E: usize>(
    module: &M,
    x: Tensor<D>,
    f: impl Fn(&M, Tensor<D>) -> Tensor<E>,
) -> Tensor<E> {
    let dtype = x.dtype();
    if dtype == DType::F32 {
        return f(module, x);
    }
    f(&Precision::F32.cast_module(module.clone()), x.cast(DType::F32)).cast(dtype)
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
