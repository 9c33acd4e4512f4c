//! mmdetection `.pth` checkpoints (a zip holding a pickle `{'meta': …, 'state_dict': …}`) read natively, through
//! Burn's PyTorch reader, into a [`StateDict`] with the same keys.

use std::path::Path;

use burn::store::pytorch_reader::{DType, PytorchReader, Tensor};

use super::state_dict::{FloatFormat, StateDict};
use crate::error::WeightsError;

impl StateDict {
    /// Reads the `state_dict` of a `torch.save`d checkpoint (or a bare state_dict); floats become f32.
    pub fn from_pth(path: impl AsRef<Path>) -> Result<Self, WeightsError> {
        let path = path.as_ref();
        let origin = path.display().to_string();
        let err = |message: String| WeightsError::Checkpoint { origin: origin.clone(), message };
        if !path.is_file() {
            return Err(WeightsError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            });
        }
        let reader = match PytorchReader::with_top_level_key(path, "state_dict") {
            Ok(r) => r,
            Err(_) => PytorchReader::new(path).map_err(|e| err(e.to_string()))?,
        };
        if reader.is_empty() {
            return Err(err("it holds no tensors (not a PyTorch checkpoint?)".into()));
        }
        let mut dict = Self { origin: origin.clone(), tensors: Default::default() };
        for (key, t) in reader.into_tensors() {
            let data = to_f32(&t).map_err(|m| err(format!("tensor `{key}`: {m}")))?;
            dict.insert_checked(key, t.shape().to_vec(), data)?;
        }
        Ok(dict)
    }
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
