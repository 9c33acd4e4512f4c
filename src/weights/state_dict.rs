//! Reading a safetensors file with mmdetection's key names into f32 host tensors.

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::{Dtype, SafeTensors};

use crate::error::WeightsError;

/// One host tensor, row-major, PyTorch layout.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// A checkpoint's tensors by mmdetection key (`backbone.layer1.0.conv1.weight`...).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StateDict {
    /// Names the file in error messages.
    pub origin: String,
    pub tensors: BTreeMap<String, HostTensor>,
}

impl StateDict {
    /// Reads a safetensors file; f16, bf16 and f64 tensors are cast to f32.
    pub fn from_safetensors_file(path: impl AsRef<Path>) -> Result<Self, WeightsError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| WeightsError::Io { path: path.to_path_buf(), source })?;
        Self::from_safetensors_bytes(&bytes, &path.display().to_string())
    }

    /// Parses safetensors bytes; a truncated or corrupt buffer is a [`WeightsError::Corrupt`].
    pub fn from_safetensors_bytes(bytes: &[u8], origin: &str) -> Result<Self, WeightsError> {
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| WeightsError::Corrupt { origin: origin.to_string(), message: e.to_string() })?;
        let mut tensors = BTreeMap::new();
        for (key, view) in st.tensors() {
            let raw = view.data();
            let data: Vec<f32> = match view.dtype() {
                Dtype::F32 => raw.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect(),
                Dtype::F16 => raw
                    .chunks_exact(2)
                    .map(|b| half::f16::from_le_bytes(b.try_into().unwrap()).to_f32())
                    .collect(),
                Dtype::BF16 => raw
                    .chunks_exact(2)
                    .map(|b| half::bf16::from_le_bytes(b.try_into().unwrap()).to_f32())
                    .collect(),
                Dtype::F64 => raw.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap()) as f32).collect(),
                other => {
                    return Err(WeightsError::Dtype { origin: origin.to_string(), key, dtype: format!("{other:?}") });
                }
            };
            if data.iter().any(|v| !v.is_finite()) {
                return Err(WeightsError::NonFinite { origin: origin.to_string(), key });
            }
            tensors.insert(key, HostTensor { shape: view.shape().to_vec(), data });
        }
        Ok(Self { origin: origin.to_string(), tensors })
    }

    /// Writes the tensors as an f32 safetensors file (what the converter and the synthetic weights produce).
    pub fn write_safetensors(&self, path: impl AsRef<Path>) -> Result<(), WeightsError> {
        let path = path.as_ref();
        let io = |e: std::io::Error| WeightsError::Io { path: path.to_path_buf(), source: e };
        let bytes = self.to_safetensors_bytes()?;
        // Write beside the target, then rename: a reader never sees half a file.
        let tmp = path.with_extension(format!("safetensors.{}.tmp", std::process::id()));
        std::fs::write(&tmp, bytes).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    pub fn to_safetensors_bytes(&self) -> Result<Vec<u8>, WeightsError> {
        let bufs: Vec<(&String, Vec<u8>, &Vec<usize>)> = self
            .tensors
            .iter()
            .map(|(k, t)| (k, t.data.iter().flat_map(|v| v.to_le_bytes()).collect(), &t.shape))
            .collect();
        let views = bufs
            .iter()
            .map(|(k, b, s)| {
                let view = safetensors::tensor::TensorView::new(Dtype::F32, s.to_vec(), b)
                    .map_err(|e| WeightsError::Corrupt { origin: k.to_string(), message: e.to_string() })?;
                Ok((k.as_str(), view))
            })
            .collect::<Result<Vec<_>, WeightsError>>()?;
        safetensors::serialize(views, None)
            .map_err(|e| WeightsError::Corrupt { origin: self.origin.clone(), message: e.to_string() })
    }
}
