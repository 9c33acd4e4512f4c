//! Reading a safetensors file with mmdetection's key names into f32 host tensors.

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::{Dtype, SafeTensors};

use super::mapping::{KeySpec, check_keys};
use crate::error::WeightsError;

/// One host tensor, row-major, PyTorch layout.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    /// The shape.
    pub shape: Vec<usize>,
    /// The values, row-major.
    pub data: Vec<f32>,
}

/// A checkpoint's tensors by mmdetection key (`backbone.layer1.0.conv1.weight`...).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StateDict {
    /// Names the file in error messages.
    pub origin: String,
    /// Tensors by mmdetection key.
    pub tensors: BTreeMap<String, HostTensor>,
}

/// A float storage format of checkpoint tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FloatFormat {
    F32,
    F64,
    F16,
    BF16,
}

impl FloatFormat {
    /// Little-endian values (safetensors' order, and `torch.save`'s on every platform it is run on here) as f32.
    pub(crate) fn decode(self, raw: &[u8]) -> Vec<f32> {
        match self {
            Self::F32 => raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
            Self::F64 => raw.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32).collect(),
            Self::F16 => raw.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            Self::BF16 => raw.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        }
    }
}

impl StateDict {
    /// Reads a safetensors file; f16, bf16 and f64 tensors are cast to f32.
    pub fn from_safetensors_file(path: impl AsRef<Path>) -> Result<Self, WeightsError> {
        let path = path.as_ref();
        let bytes = read_regular_file(path, None)?;
        Self::from_safetensors_bytes(&bytes, &path.display().to_string())
    }

    /// Reads a safetensors file holding exactly the tensors `specs` names (a model's [`super::expected_keys`]):
    /// a file larger than those tensors can take is refused before it is read, and keys and shapes are checked
    /// on the header before any tensor is decoded.
    pub fn from_safetensors_file_for(path: impl AsRef<Path>, specs: &[KeySpec]) -> Result<Self, WeightsError> {
        let path = path.as_ref();
        let bytes = read_regular_file(path, Some(max_file_size(specs)))?;
        Self::from_safetensors_bytes_for(&bytes, &path.display().to_string(), specs)
    }

    /// Parses safetensors bytes; a truncated or corrupt buffer is a [`WeightsError::Corrupt`].
    pub fn from_safetensors_bytes(bytes: &[u8], origin: &str) -> Result<Self, WeightsError> {
        Self::parse_safetensors(bytes, origin, None)
    }

    /// [`StateDict::from_safetensors_bytes`] checking keys and shapes against `specs` before decoding.
    pub fn from_safetensors_bytes_for(bytes: &[u8], origin: &str, specs: &[KeySpec]) -> Result<Self, WeightsError> {
        Self::parse_safetensors(bytes, origin, Some(specs))
    }

    fn parse_safetensors(bytes: &[u8], origin: &str, specs: Option<&[KeySpec]>) -> Result<Self, WeightsError> {
        // `deserialize` checks every tensor's offsets and byte length against the buffer.
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| WeightsError::Corrupt { origin: origin.to_string(), message: e.to_string() })?;
        let views = st.tensors();
        if let Some(specs) = specs {
            check_keys(origin, specs, views.iter().map(|(k, v)| (k.as_str(), v.shape())))?;
        }
        let mut dict = Self { origin: origin.to_string(), tensors: BTreeMap::new() };
        for (key, view) in views {
            let format = match view.dtype() {
                Dtype::F32 => FloatFormat::F32,
                Dtype::F64 => FloatFormat::F64,
                Dtype::F16 => FloatFormat::F16,
                Dtype::BF16 => FloatFormat::BF16,
                other => return Err(WeightsError::Dtype { origin: origin.to_string(), key, dtype: format!("{other:?}") }),
            };
            dict.insert_checked(key, view.shape().to_vec(), format.decode(view.data()))?;
        }
        Ok(dict)
    }

    /// Adds a tensor read from the file, refusing non-finite values (a corrupt or diverged checkpoint).
    pub(crate) fn insert_checked(&mut self, key: String, shape: Vec<usize>, data: Vec<f32>) -> Result<(), WeightsError> {
        if data.iter().any(|v| !v.is_finite()) {
            return Err(WeightsError::NonFinite { origin: self.origin.clone(), key });
        }
        self.tensors.insert(key, HostTensor { shape, data });
        Ok(())
    }

    /// Writes the tensors as an f32 safetensors file (what the converter and the synthetic weights produce),
    /// atomically.
    pub fn write_safetensors(&self, path: impl AsRef<Path>) -> Result<(), WeightsError> {
        let path = path.as_ref();
        crate::fs::write_atomic(path, &self.to_safetensors_bytes()?).map_err(|source| WeightsError::Io { path: path.to_path_buf(), source })
    }

    /// The tensors as f32 safetensors bytes.
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

/// The largest weights file that can hold `specs`' tensors: every value as f64 (the widest float accepted), plus
/// a generous header (key names, shapes, offsets: ~60 KB for R-101).
pub(crate) fn max_file_size(specs: &[KeySpec]) -> u64 {
    let values: u64 = specs.iter().map(|s| s.shape.iter().map(|&d| d as u64).product::<u64>()).sum();
    8 + (1 << 20) + 256 * specs.len() as u64 + 8 * values
}

/// A regular file's size, refusing devices, pipes and folders (`/dev/zero` would be read until memory runs out)
/// and, with `max`, a file larger than that (a model's bound: [`max_file_size`]).
pub(crate) fn checked_file_size(path: &Path, max: Option<u64>) -> Result<u64, WeightsError> {
    let io = |source| WeightsError::Io { path: path.to_path_buf(), source };
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        return Err(io(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file")));
    }
    match max {
        Some(max) if meta.len() > max => Err(too_large(path, meta.len(), max)),
        _ => Ok(meta.len()),
    }
}

fn too_large(path: &Path, size: u64, max: u64) -> WeightsError {
    WeightsError::TooLarge { origin: path.display().to_string(), what: "the file is larger than the model's tensors".into(), size, max }
}

/// A regular file's bytes ([`checked_file_size`]), read no further than `max` in case it grows meanwhile.
pub(crate) fn read_regular_file(path: &Path, max: Option<u64>) -> Result<Vec<u8>, WeightsError> {
    use std::io::Read;
    let size = checked_file_size(path, max)?;
    let limit = max.unwrap_or(u64::MAX);
    let mut bytes = Vec::with_capacity(size as usize);
    let io = |source| WeightsError::Io { path: path.to_path_buf(), source };
    std::fs::File::open(path).map_err(io)?.take(limit.saturating_add(1)).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(too_large(path, bytes.len() as u64, limit));
    }
    Ok(bytes)
}
