//! mmdetection `.pth` checkpoints (a zip holding a pickle `{'meta': …, 'state_dict': …}`) read natively, through
//! Burn's PyTorch reader, into a [`StateDict`] with the same keys.

use std::path::Path;

use burn::store::pytorch_reader::{DType, PytorchReader, Tensor};

use super::state_dict::{HostTensor, StateDict};
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
        let mut tensors = std::collections::BTreeMap::new();
        for (key, t) in reader.into_tensors() {
            let data = to_f32(&t).map_err(|m| err(format!("tensor `{key}`: {m}")))?;
            if data.iter().any(|v| !v.is_finite()) {
                return Err(WeightsError::NonFinite { origin: origin.clone(), key });
            }
            tensors.insert(key, HostTensor { shape: t.shape().to_vec(), data });
        }
        Ok(Self { origin, tensors })
    }
}

fn to_f32(t: &Tensor) -> Result<Vec<f32>, String> {
    let bytes = t.read().map_err(|e| e.to_string())?;
    Ok(match t.dtype() {
        DType::F32 => bytes.chunks_exact(4).map(|b| f32::from_ne_bytes(b.try_into().unwrap())).collect(),
        DType::F64 => bytes.chunks_exact(8).map(|b| f64::from_ne_bytes(b.try_into().unwrap()) as f32).collect(),
        DType::F16 => bytes.chunks_exact(2).map(|b| half::f16::from_ne_bytes(b.try_into().unwrap()).to_f32()).collect(),
        DType::BF16 => bytes.chunks_exact(2).map(|b| half::bf16::from_ne_bytes(b.try_into().unwrap()).to_f32()).collect(),
        other => return Err(format!("dtype {other:?} is not a float")),
    })
}
