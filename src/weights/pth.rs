//! mmdetection `.pth` checkpoints (a zip holding a pickle `{'meta': …, 'state_dict': …}`) read natively, through
//! Burn's PyTorch reader, into a [`StateDict`] with the same keys.

use std::path::Path;

use burn::store::pytorch_reader::{DType, PytorchReader, Tensor};

use super::mapping::{KeySpec, check_keys};
use super::state_dict::{FloatFormat, StateDict, checked_file_size, max_file_size};
use crate::error::WeightsError;

impl StateDict {
    /// Reads the `state_dict` of a `torch.save`d checkpoint (or a bare state_dict); floats become f32.
    ///
    /// `torch.save` stores tensors uncompressed, so tensors declaring more bytes than the file holds (a
    /// compressed or forged archive) are refused before any is read.
    pub fn from_pth(path: impl AsRef<Path>) -> Result<Self, WeightsError> {
        Self::read_pth(path.as_ref(), None)
    }

    /// [`StateDict::from_pth`] for a checkpoint holding exactly the tensors `specs` names: the file's size, then
    /// its keys and shapes, are checked before any tensor is read.
    pub fn from_pth_for(path: impl AsRef<Path>, specs: &[KeySpec]) -> Result<Self, WeightsError> {
        Self::read_pth(path.as_ref(), Some(specs))
    }

    fn read_pth(path: &Path, specs: Option<&[KeySpec]>) -> Result<Self, WeightsError> {
        let origin = path.display().to_string();
        let err = |message: String| WeightsError::Checkpoint { origin: origin.clone(), message };
        let file_size = checked_file_size(path, specs.map(max_pth_size))?;
        let reader = match PytorchReader::with_top_level_key(path, "state_dict") {
            Ok(r) => r,
            Err(_) => PytorchReader::new(path).map_err(|e| err(e.to_string()))?,
        };
        if reader.is_empty() {
            return Err(err("it holds no tensors (not a PyTorch checkpoint?)".into()));
        }
        let tensors = reader.into_tensors();
        let declared: u64 = tensors.values().map(|t| t.shape().iter().map(|&d| d as u64).product::<u64>() * t.dtype().size() as u64).sum();
        if declared > file_size {
            let what = "its tensors would take more bytes than the file holds (torch.save stores them uncompressed)".into();
            return Err(WeightsError::TooLarge { origin, what, size: declared, max: file_size });
        }
        if let Some(specs) = specs {
            check_keys(&origin, specs, tensors.iter().map(|(k, t)| (k.as_str(), t.shape())))?;
        }
        let mut dict = Self { origin: origin.clone(), tensors: Default::default() };
        let mut tensors: Vec<_> = tensors.into_iter().collect();
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        for (key, t) in tensors {
            let data = to_f32(&t).map_err(|m| err(format!("tensor `{key}`: {m}")))?;
            dict.insert_checked(key, t.shape().to_vec(), data.into())?;
        }
        Ok(dict)
    }
}

/// The largest `.pth` that can hold `specs`' tensors: the safetensors bound plus the pickle and zip directory.
pub(crate) fn max_pth_size(specs: &[KeySpec]) -> u64 {
    max_file_size(specs) + (1 << 20)
}

fn to_f32(t: &Tensor) -> Result<Vec<f32>, String> {
    let format = match t.dtype() {
        DType::F32 => FloatFormat::F32,
        DType::F64 => FloatFormat::F64,
        DType::F16 => FloatFormat::F16,
        DType::BF16 => FloatFormat::BF16,
        other => return Err(format!("dtype {other:?} is not a float")),
    };
    Ok(format.decode(&t.read().map_err(|e| e.to_string())?))
}
