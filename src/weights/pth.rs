//! mmdetection / mmengine `.pth` checkpoints (`torch.save`'s zip or legacy format, holding `{'meta': …,
//! 'state_dict': …}` and, from a training run, `optimizer`, `message_hub`, `param_schedulers`) read natively through
//! Burn's PyTorch reader, a pickle interpreter that constructs nothing and runs no code: only `state_dict`'s
//! tensors and `meta`'s class names are read, every other entry is skipped.

use std::path::Path;

use burn::store::pytorch_reader::{DType, PickleValue, PytorchReader, Tensor};

use super::keys::{KeySpec, canonical, canonical_keys, check_keys};
use super::state_dict::{FloatFormat, StateDict, checked_file_size, max_file_size};
use crate::error::WeightsError;

/// A `.pth` checkpoint opened: its `state_dict`'s tensors (keys made canonical, data not read yet) and its
/// class names.
pub(crate) struct PthFile {
    origin: String,
    file_size: u64,
    tensors: Vec<(String, Tensor)>,
    classes: Option<Vec<String>>,
}

impl PthFile {
    /// Reads the pickle of `path` (no tensor data), refusing a file over `max_size` bytes first.
    pub(crate) fn open(path: &Path, max_size: Option<u64>) -> Result<Self, WeightsError> {
        let origin = path.display().to_string();
        let err = |message: String| WeightsError::Checkpoint { origin: origin.clone(), message };
        let file_size = checked_file_size(path, max_size)?;
        let (reader, wrapped) = match PytorchReader::with_top_level_key(path, "state_dict") {
            Ok(r) => (r, true),
            Err(_) => (PytorchReader::new(path).map_err(|e| err(e.to_string()))?, false),
        };
        if reader.is_empty() {
            return Err(err("it holds no tensors (not a PyTorch checkpoint?)".into()));
        }
        let classes = if wrapped { meta_classes(path) } else { None };
        let mut tensors: Vec<(String, Tensor)> = reader.into_tensors().into_iter().collect();
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        // `torch.save` stores tensors uncompressed: declaring more bytes than the file holds is a forged file.
        let mut declared = 0u64;
        for (key, t) in &tensors {
            let bytes = t.shape().iter().try_fold(t.dtype().size() as u64, |n, &d| n.checked_mul(d as u64));
            declared = bytes.and_then(|b| declared.checked_add(b)).ok_or_else(|| err(format!("tensor `{key}` declares a size past 2^64 bytes")))?;
        }
        if declared > file_size {
            let what = "its tensors would take more bytes than the file holds (torch.save stores them uncompressed)".into();
            return Err(WeightsError::TooLarge { origin, what, size: declared, max: file_size });
        }
        // Keys as mmdetection's `load_checkpoint` revises them (`module.` stripped), each once.
        let found = canonical_keys(&origin, tensors.iter().map(|(k, t)| (k.as_str(), t.shape())))?.len();
        debug_assert_eq!(found, tensors.len());
        let tensors = tensors.into_iter().map(|(k, t)| (canonical(&k).to_string(), t)).collect();
        Ok(Self { origin, file_size, tensors, classes })
    }

    /// Each tensor's key and shape.
    pub(crate) fn shapes(&self) -> impl Iterator<Item = (&str, &[usize])> {
        self.tensors.iter().map(|(k, t)| (k.as_str(), t.shape()))
    }

    /// The class names of the checkpoint's metadata.
    pub(crate) fn classes(&self) -> Option<&[String]> {
        self.classes.as_deref()
    }

    /// The tensors as f32, after checking that their keys and shapes are exactly `specs`' (when given) and that
    /// the file is no larger than those tensors and a training run's other entries can make it.
    pub(crate) fn read(self, specs: Option<&[KeySpec]>) -> Result<StateDict, WeightsError> {
        let origin = self.origin;
        if let Some(specs) = specs {
            let max = max_pth_size(specs);
            if self.file_size > max {
                return Err(WeightsError::TooLarge { origin, what: "the file is larger than the model's checkpoint can be".into(), size: self.file_size, max });
            }
            check_keys(&origin, specs, self.tensors.iter().map(|(k, t)| (k.as_str(), t.shape())))?;
        }
        let mut dict = StateDict { origin: origin.clone(), tensors: Default::default(), classes: self.classes };
        for (key, t) in self.tensors {
            let data = to_f32(&t).map_err(|m| WeightsError::Checkpoint { origin: origin.clone(), message: format!("tensor `{key}`: {m}") })?;
            dict.insert_checked(key, t.shape().to_vec(), data.into())?;
        }
        Ok(dict)
    }
}

impl StateDict {
    /// Reads the `state_dict` of a `torch.save`d checkpoint (or a bare state_dict), and the class names of its
    /// `meta`; floats become f32.
    pub fn from_pth(path: impl AsRef<Path>) -> Result<Self, WeightsError> {
        PthFile::open(path.as_ref(), None)?.read(None)
    }

    /// [`StateDict::from_pth`] for a checkpoint holding exactly the tensors `specs` names: the file's size, then
    /// its keys and shapes, are checked before any tensor is read.
    pub fn from_pth_for(path: impl AsRef<Path>, specs: &[KeySpec]) -> Result<Self, WeightsError> {
        PthFile::open(path.as_ref(), Some(max_pth_size(specs)))?.read(Some(specs))
    }
}

/// The largest `.pth` that can hold `specs`' tensors: the weights, a training run's optimizer state of twice their
/// size (momentum, Adam's two moments), and a generous pickle (message hub, schedulers, meta).
pub(crate) fn max_pth_size(specs: &[KeySpec]) -> u64 {
    max_file_size(specs).saturating_mul(3).saturating_add(64 << 20)
}

/// `meta.dataset_meta.classes` (mmengine, mmdetection 3.x) or `meta.CLASSES` (mmdetection 2.x), when the file
/// has one of them as a list of names. Anything else in `meta` is ignored.
fn meta_classes(path: &Path) -> Option<Vec<String>> {
    let PickleValue::Dict(meta) = PytorchReader::read_pickle_data(path, Some("meta")).ok()? else { return None };
    let from_3x = match meta.get("dataset_meta") {
        Some(PickleValue::Dict(d)) => d.get("classes"),
        _ => None,
    };
    let names = match from_3x.or_else(|| meta.get("CLASSES"))? {
        PickleValue::List(items) => items.iter().map(|v| if let PickleValue::String(s) = v { Some(s.clone()) } else { None }).collect::<Option<Vec<_>>>()?,
        _ => return None,
    };
    (!names.is_empty()).then_some(names)
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
