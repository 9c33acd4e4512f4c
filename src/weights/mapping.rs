//! The one place where mmdetection's state_dict keys meet the Burn modules.
//!
//! Module fields are named like the state_dict, so a key is the module path except that GroupNorm's
//! `gamma`/`beta` are PyTorch's `weight`/`bias`, and a Linear's weight is stored transposed (`[out, in]`).

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::{Tensor, TensorData};

use super::keys::{KeySpec, check_keys};
use super::state_dict::{HostTensor, StateDict};
use crate::device::DeviceProfile;
use crate::error::WeightsError;
use crate::ops::transpose::transpose_2d;

/// Tracks the module path (`backbone.layer1.0.gn1.gamma`) and the innermost module type while Burn walks a model.
#[derive(Default)]
struct PathTracker {
    names: Vec<String>,
    types: Vec<String>,
}

impl PathTracker {
    fn enter(&mut self, name: &str, container_type: &str) {
        self.names.push(name.to_string());
        self.types.push(container_type.to_string());
    }

    fn exit(&mut self) {
        self.names.pop();
        self.types.pop();
    }

    /// The checkpoint key and layout of the parameter at the current path.
    fn spec(&self, shape: &[usize]) -> KeySpec {
        let module = self.types.iter().rev().find(|t| t.starts_with("Struct:")).map(String::as_str);
        let mut names = self.names.clone();
        let mut transposed = false;
        match (module, names.last().map(String::as_str)) {
            (Some("Struct:GroupNorm"), Some("gamma")) => *names.last_mut().unwrap() = "weight".into(),
            (Some("Struct:GroupNorm"), Some("beta")) => *names.last_mut().unwrap() = "bias".into(),
            (Some("Struct:Linear"), Some("weight")) => transposed = true,
            _ => {}
        }
        let shape = if transposed { shape.iter().rev().copied().collect() } else { shape.to_vec() };
        KeySpec { key: names.join("."), shape, transposed }
    }
}

struct SpecCollector {
    path: PathTracker,
    specs: Vec<KeySpec>,
}

impl ModuleVisitor for SpecCollector {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.enter(name, container_type);
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.exit();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.specs.push(self.path.spec(&param.lazy_shape().to_vec()));
    }
}

/// Every checkpoint key a module needs, in module order, with its PyTorch shape.
pub fn expected_keys<M: Module>(module: &M) -> Vec<KeySpec> {
    let mut collector = SpecCollector { path: PathTracker::default(), specs: Vec::new() };
    module.visit(&mut collector);
    collector.specs
}

struct Loader<'a> {
    path: PathTracker,
    tensors: &'a mut StateDict,
}

impl ModuleMapper for Loader<'_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.enter(name, container_type);
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.exit();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let shape = param.lazy_shape().to_vec();
        let spec = self.path.spec(&shape);
        // `load_state_dict` validated every key and shape before mapping.
        let HostTensor { data, shape: file_shape } =
            self.tensors.tensors.remove(&spec.key).expect("validated key is present");
        let device = param.lazy_device();
        let tensor = match (spec.transposed, DeviceProfile::of(&device).is_host()) {
            // flex's GEMM takes strided operands: the checkpoint's `[out, in]` seen transposed, not copied (the
            // box head's fc weight is 51 MB, read in place from the mapped file).
            (true, true) => Tensor::from_data(data.into_tensor_data(file_shape), &device).transpose(),
            (true, false) => Tensor::from_data(TensorData::new(transpose_2d(&data, file_shape[0], file_shape[1]), shape), &device),
            (false, _) => Tensor::from_data(data.into_tensor_data(shape), &device),
        };
        let id: ParamId = param.id;
        param.transform_for_load(tensor, id)
    }
}

/// Fills every parameter of `module` from `state_dict`, after checking that the keys are exactly the module's
/// and every shape matches: a missing, unexpected or misshapen tensor is an error naming it.
pub fn load_state_dict<M: Module>(module: M, mut state_dict: StateDict) -> Result<M, WeightsError> {
    let specs = expected_keys(&module);
    check_keys(&state_dict.origin, &specs, state_dict.tensors.iter().map(|(k, t)| (k.as_str(), t.shape.as_slice())))?;
    Ok(module.map(&mut Loader { path: PathTracker::default(), tensors: &mut state_dict }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_2d_blocks_match_the_definition() {
        for (rows, cols) in [(1, 1), (3, 70), (67, 33), (64, 32), (0, 5)] {
            let data: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
            let t = transpose_2d(&data, rows, cols);
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(t[c * rows + r], data[r * cols + c], "{rows}x{cols} at ({r}, {c})");
                }
            }
        }
    }
}
