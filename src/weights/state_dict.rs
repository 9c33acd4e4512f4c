//! Reading a safetensors file with mmdetection's key names into f32 host tensors.

use std::collections::BTreeMap;
use std::path::Path;

use rayon::prelude::*;
use safetensors::{Dtype, SafeTensorError};

use super::keys::{KeySpec, canonical, canonical_keys, check_keys};
use super::values::Values;
use crate::error::WeightsError;

/// One host tensor, row-major, PyTorch layout.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    /// The shape.
    pub shape: Vec<usize>,
    /// The values, row-major (read in place from a mapped safetensors file where they can be).
    pub data: Values,
}

/// A checkpoint's tensors by mmdetection key (`backbone.layer1.0.conv1.weight`...; a DataParallel model's
/// `module.` prefix stripped, as mmdetection's `load_checkpoint` does), and its class names when it names them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StateDict {
    /// Names the file in error messages.
    pub origin: String,
    /// Tensors by mmdetection key.
    pub tensors: BTreeMap<String, HostTensor>,
    /// Class names in label order, from the checkpoint's metadata (mmdetection's `meta`, or the `classes` entry
    /// of a safetensors file's metadata, which the converter writes).
    pub classes: Option<Vec<String>>,
}

/// The safetensors metadata entry holding the class names (a JSON list of strings).
pub(crate) const CLASSES_METADATA: &str = "classes";

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

/// The formats a checkpoint's float tensors may come in (others are refused).
fn float_format(dtype: Dtype) -> Option<FloatFormat> {
    match dtype {
        Dtype::F32 => Some(FloatFormat::F32),
        Dtype::F64 => Some(FloatFormat::F64),
        Dtype::F16 => Some(FloatFormat::F16),
        Dtype::BF16 => Some(FloatFormat::BF16),
        _ => None,
    }
}

impl StateDict {
    /// Reads a safetensors file; f16, bf16 and f64 tensors are cast to f32. The file is mapped and its f32
    /// tensors read in place: it must not be truncated or rewritten in place while they are alive (replacing it
    /// by a rename is fine).
    pub fn from_safetensors_file(path: impl AsRef<Path>) -> Result<Self, WeightsError> {
        Self::read_safetensors_file(path.as_ref(), None)
    }

    /// Reads a safetensors file holding exactly the tensors `specs` names (a model's `expected_keys`):
    /// a file larger than those tensors can take is refused before it is read, and keys and shapes are checked
    /// on the header before any tensor is decoded. Mapped, like [`StateDict::from_safetensors_file`].
    pub fn from_safetensors_file_for(path: impl AsRef<Path>, specs: &[KeySpec]) -> Result<Self, WeightsError> {
        Self::read_safetensors_file(path.as_ref(), Some(specs))
    }

    /// Parses safetensors bytes; a truncated or corrupt buffer is a [`WeightsError::Corrupt`].
    pub fn from_safetensors_bytes(bytes: &[u8], origin: &str) -> Result<Self, WeightsError> {
        Self::parse_safetensors(bytes, origin, None, None)
    }

    /// [`StateDict::from_safetensors_bytes`] checking keys and shapes against `specs` before decoding.
    pub fn from_safetensors_bytes_for(bytes: &[u8], origin: &str, specs: &[KeySpec]) -> Result<Self, WeightsError> {
        Self::parse_safetensors(bytes, origin, Some(specs), None)
    }

    /// `bytes`' tensors; with `file` (the mapped file `bytes` is), f32 tensors are read in place from it.
    /// The header is checked with overflow-safe sizes (safetensors' own `deserialize` adds a forged header's data
    /// length unchecked, a panic in debug builds): offsets contiguous from 0 and each tensor's byte length
    /// matching its shape and dtype (`Metadata`'s validation), the buffer exactly header plus data.
    fn parse_safetensors(bytes: &[u8], origin: &str, specs: Option<&[KeySpec]>, file: Option<&bytes::Bytes>) -> Result<Self, WeightsError> {
        use safetensors::tensor::Metadata;
        let corrupt = |e: SafeTensorError| WeightsError::Corrupt { origin: origin.to_string(), message: e.to_string() };
        let (len, rest) = bytes.split_first_chunk::<8>().ok_or(corrupt(SafeTensorError::HeaderTooSmall))?;
        let n = usize::try_from(u64::from_le_bytes(*len)).unwrap_or(usize::MAX);
        if n > MAX_HEADER {
            return Err(corrupt(SafeTensorError::HeaderTooLarge));
        }
        let (header, data) = rest.split_at_checked(n).ok_or(corrupt(SafeTensorError::InvalidHeaderLength))?;
        let header = std::str::from_utf8(header).map_err(|e| corrupt(SafeTensorError::InvalidHeader(e)))?;
        let metadata: Metadata = serde_json::from_str(header).map_err(|e| corrupt(SafeTensorError::InvalidHeaderDeserialization(e)))?;
        if metadata.data_len() != data.len() {
            return Err(corrupt(SafeTensorError::MetadataIncompleteBuffer));
        }
        let infos = metadata.tensors();
        let found = canonical_keys(origin, infos.iter().map(|(k, v)| (k.as_str(), v.shape.as_slice())))?;
        if let Some(specs) = specs {
            check_keys(origin, specs, found)?;
        }
        let classes = classes_of(metadata.metadata().as_ref(), origin)?;
        let mut dict = Self { origin: origin.to_string(), tensors: BTreeMap::new(), classes };
        for key in metadata.offset_keys() {
            let info = infos[&key];
            let Some(format) = float_format(info.dtype) else {
                return Err(WeightsError::Dtype { origin: origin.to_string(), key, dtype: format!("{:?}", info.dtype) });
            };
            let raw = &data[info.data_offsets.0..info.data_offsets.1];
            let in_place = file.filter(|_| format == FloatFormat::F32).and_then(|f| Values::in_place(f.slice_ref(raw)));
            let values = in_place.unwrap_or_else(|| format.decode(raw).into());
            dict.insert_checked(canonical(&key).to_string(), info.shape.clone(), values)?;
        }
        Ok(dict)
    }

    /// The file mapped, not read: f32 tensors stay in the page cache, where the file already is, and become the
    /// model's parameters in place (`Values`). (Read into buffers of their own, R-50's 183 MB were fresh
    /// pages, which cost a cold load 0.6-1.2 s on a VM that hands freed memory back to its host.) Checked as
    /// [`StateDict::from_safetensors_bytes`] checks bytes: offsets contiguous, sizes matching shapes and dtypes,
    /// the file's length exactly the header's; a file larger than the model's tensors is refused before mapping.
    fn read_safetensors_file(path: &Path, specs: Option<&[KeySpec]>) -> Result<Self, WeightsError> {
        let origin = path.display().to_string();
        let io = |source| WeightsError::Io { path: path.to_path_buf(), source };
        let max = specs.map(max_file_size);
        checked_file_size(path, max)?; // refuses a device, pipe or folder before opening it
        let file = std::fs::File::open(path).map_err(io)?;
        // The size of what was opened (the path may have been replaced in between).
        let size = file.metadata().map_err(io)?.len();
        if let Some(max) = max.filter(|&max| size > max) {
            return Err(too_large(path, size, max));
        }
        if size == 0 {
            return Self::parse_safetensors(&[], &origin, specs, None); // nothing to map
        }
        // SAFETY: the mapping is private and read-only, and `len` is the opened file's length, so it covers the
        // file and nothing past it. What memmap2 cannot promise, and this relies on, is that no one truncates or
        // rewrites the file while its tensors are alive (the contract of every memory-mapped weights loader:
        // safetensors' `safe_open`, candle, llama.cpp; documented on `Detector::from_safetensors`): a truncation
        // would fault the process (SIGBUS), a rewrite in place would change parameters under the model. Files
        // replaced by renaming a new one over them (`fs::write_atomic`, what this crate's converter and
        // downloads do) leave this mapping intact.
        let len = usize::try_from(size).map_err(|_| io(std::io::Error::new(std::io::ErrorKind::InvalidInput, "too large to map")))?;
        let map = unsafe { memmap2::MmapOptions::new().len(len).map_copy_read_only(&file) }.map_err(io)?;
        let map = bytes::Bytes::from_owner(map);
        Self::parse_safetensors(&map, &origin, specs, Some(&map))
    }

    /// Adds a tensor read from the file, refusing non-finite values (a corrupt or diverged checkpoint).
    pub(crate) fn insert_checked(&mut self, key: String, shape: Vec<usize>, data: Values) -> Result<(), WeightsError> {
        // In parallel: this reads every weight (183 MB for R-50), most of a load's time. Branch-free within a
        // chunk (an OR of comparisons vectorises; a per-value early exit does not).
        if data.par_chunks(1 << 16).any(|c| c.iter().fold(false, |bad, v| bad | !v.is_finite())) {
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
        let metadata = self.classes.as_ref().map(|names| {
            let json = serde_json::to_string(names).expect("strings serialise");
            std::collections::HashMap::from([(CLASSES_METADATA.to_string(), json)])
        });
        safetensors::serialize(views, metadata)
            .map_err(|e| WeightsError::Corrupt { origin: self.origin.clone(), message: e.to_string() })
    }
}

/// A safetensors file's tensors' keys and shapes and its class names, from its header alone (checked as
/// [`StateDict::from_safetensors_bytes`] checks it, no tensor data read).
pub(crate) fn read_safetensors_header(path: &Path) -> Result<(Vec<(String, Vec<usize>)>, Option<Vec<String>>), WeightsError> {
    use safetensors::tensor::Metadata;
    use std::io::Read;
    let origin = path.display().to_string();
    let io = |source| WeightsError::Io { path: path.to_path_buf(), source };
    let corrupt = |e: SafeTensorError| WeightsError::Corrupt { origin: origin.clone(), message: e.to_string() };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    let mut len = [0u8; 8];
    file.read_exact(&mut len).map_err(|_| corrupt(SafeTensorError::HeaderTooSmall))?;
    let n = u64::from_le_bytes(len);
    if n > MAX_HEADER as u64 {
        return Err(corrupt(SafeTensorError::HeaderTooLarge));
    }
    let mut header = vec![0u8; n as usize];
    file.read_exact(&mut header).map_err(|_| corrupt(SafeTensorError::InvalidHeaderLength))?;
    let header = std::str::from_utf8(&header).map_err(|e| corrupt(SafeTensorError::InvalidHeader(e)))?;
    let metadata: Metadata = serde_json::from_str(header).map_err(|e| corrupt(SafeTensorError::InvalidHeaderDeserialization(e)))?;
    if (metadata.data_len() as u64).checked_add(8 + n) != Some(size) {
        return Err(corrupt(SafeTensorError::MetadataIncompleteBuffer));
    }
    let classes = classes_of(metadata.metadata().as_ref(), &origin)?;
    let shapes = metadata.tensors().into_iter().map(|(k, v)| (k, v.shape.clone())).collect();
    Ok((shapes, classes))
}

/// safetensors' own bound on the header (`MAX_HEADER_SIZE`).
const MAX_HEADER: usize = 100_000_000;

/// The class names in a safetensors file's metadata, if it has them; a malformed entry is an error.
fn classes_of(metadata: Option<&std::collections::HashMap<String, String>>, origin: &str) -> Result<Option<Vec<String>>, WeightsError> {
    let Some(json) = metadata.and_then(|m| m.get(CLASSES_METADATA)) else { return Ok(None) };
    serde_json::from_str::<Vec<String>>(json)
        .map(Some)
        .map_err(|e| WeightsError::Corrupt { origin: origin.to_string(), message: format!("metadata `{CLASSES_METADATA}` is not a list of names: {e}") })
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A file's f32 tensors are read in place from the mapping (f16 ones decoded), with the values written.
    #[test]
    fn file_tensors_are_read_in_place() {
        let path = std::env::temp_dir().join(format!("mask-rcnn-burn-in-place-{}.safetensors", std::process::id()));
        let mut dict = StateDict::default();
        dict.tensors.insert("a".into(), HostTensor { shape: vec![2, 3], data: vec![1.0, -2.0, 3.5, 0.25, 5.0, 6.0].into() });
        dict.tensors.insert("b".into(), HostTensor { shape: vec![1], data: vec![7.0].into() });
        dict.write_safetensors(&path).unwrap();
        let back = StateDict::from_safetensors_file(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(back.tensors, dict.tensors);
        assert!(back.tensors.values().all(|t| t.data.is_in_place()));
    }

    /// Offsets whose sum passes `usize::MAX` (safetensors' `deserialize` adds them unchecked) are a typed error.
    #[test]
    fn a_forged_data_length_is_corrupt_not_an_overflow() {
        let big = (1u64 << 61) - 1;
        let entries: Vec<String> = (0..8u64)
            .map(|i| format!("\"t{i}\":{{\"dtype\":\"U8\",\"shape\":[{big}],\"data_offsets\":[{},{}]}}", i * big, (i + 1) * big))
            .collect();
        let mut header = format!("{{{}}}", entries.join(",")).into_bytes();
        header.resize(header.len().next_multiple_of(8), b' ');
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend(header);
        assert!(matches!(StateDict::from_safetensors_bytes(&bytes, "forged"), Err(WeightsError::Corrupt { .. })));
    }
}
