//! A checkpoint as a model is made from it: the heads' sizes read from its tensors' shapes (a fine-tuned model has
//! its own number of classes), its class names from its metadata, then the weights loaded into the model of that
//! size (gn+ws models' filters standardised once, here).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::Device;

use super::keys::{KeySpec, canonical_keys, check_keys};
use super::mapping::{expected_keys, load_state_dict};
use super::pth::{PthFile, max_pth_size};
use super::standardize::standardize_weights;
use super::state_dict::{StateDict, checked_file_size, max_file_size, read_safetensors_header};
use crate::config::{MAX_CLASSES, ModelConfig};
use crate::error::WeightsError;
use crate::model::MaskRcnn;

/// The keys whose shapes give the number of classes: `fc_cls [N + 1, F]`, `fc_reg [4N, F]`,
/// `conv_logits [N, C, 1, 1]`.
const FC_CLS: &str = "roi_head.bbox_head.fc_cls.weight";
const FC_REG: &str = "roi_head.bbox_head.fc_reg.weight";
const CONV_LOGITS: &str = "roi_head.mask_head.conv_logits.weight";

/// A weights file (or tensors in memory) whose keys and shapes are known and whose data is not read yet.
pub struct Checkpoint {
    origin: String,
    source: Source,
    shapes: BTreeMap<String, Vec<usize>>,
    classes: Option<Vec<String>>,
}

enum Source {
    Safetensors(PathBuf),
    Pth(PthFile),
    Memory(StateDict),
}

impl From<StateDict> for Checkpoint {
    fn from(dict: StateDict) -> Self {
        let shapes = dict.tensors.iter().map(|(k, t)| (k.clone(), t.shape.clone())).collect();
        let classes = dict.classes.clone();
        Self { origin: dict.origin.clone(), source: Source::Memory(dict), shapes, classes }
    }
}

impl Checkpoint {
    /// Opens `path` (`.pth` / `.pt`, else safetensors) and reads its tensors' keys and shapes and its class names;
    /// a file larger than any model of `config`'s architecture could be is refused before it is parsed.
    pub fn open(path: &Path, config: &ModelConfig) -> Result<Self, WeightsError> {
        let origin = path.display().to_string();
        let largest = expected_keys(&MaskRcnn::new(config, MAX_CLASSES, &Device::flex()));
        if path.extension().is_some_and(|e| e == "pth" || e == "pt") {
            let file = PthFile::open(path, Some(max_pth_size(&largest)))?;
            let shapes = file.shapes().map(|(k, s)| (k.to_string(), s.to_vec())).collect();
            let classes = file.classes().map(<[String]>::to_vec);
            return Ok(Self { origin, source: Source::Pth(file), shapes, classes });
        }
        checked_file_size(path, Some(max_file_size(&largest)))?;
        let (shapes, classes) = read_safetensors_header(path)?;
        let shapes = canonical_keys(&origin, shapes.iter().map(|(k, s)| (k.as_str(), s.as_slice())))?
            .into_iter()
            .map(|(k, s)| (k.to_string(), s.to_vec()))
            .collect();
        Ok(Self { origin, source: Source::Safetensors(path.to_path_buf()), shapes, classes })
    }

    /// The number of object classes its heads have, checked for consistency between `fc_cls`, `fc_reg` and
    /// `conv_logits`.
    pub fn num_classes(&self) -> Result<usize, WeightsError> {
        let origin = self.origin.clone();
        let shape = |key: &str| {
            self.shapes.get(key).ok_or_else(|| WeightsError::Missing { origin: origin.clone(), count: 1, keys: vec![key.into()], hint: String::new() })
        };
        let (cls, reg, logits) = (shape(FC_CLS)?, shape(FC_REG)?, shape(CONV_LOGITS)?);
        let n = cls.first().copied().unwrap_or(0).saturating_sub(1);
        let consistent = cls.len() == 2 && reg.len() == 2 && logits.len() == 4 && reg[0] == 4 * n && logits[0] == n;
        if n == 0 || n > MAX_CLASSES || !consistent {
            return Err(WeightsError::Checkpoint {
                origin,
                message: format!(
                    "its heads disagree on the number of classes: `{FC_CLS}` {cls:?} (N + 1 rows), `{FC_REG}` {reg:?} (4N rows), \
                     `{CONV_LOGITS}` {logits:?} (N maps); expected 1..={MAX_CLASSES} classes"
                ),
            });
        }
        Ok(n)
    }

    /// [`Checkpoint::num_classes`]; when the heads do not say it, a mismatch of the keys with `config`'s model (a
    /// ResNet-101 file for a ResNet-50 config, say) is the more useful error, and reported first.
    fn num_classes_for(&self, config: &ModelConfig) -> Result<usize, WeightsError> {
        self.num_classes().map_err(|e| {
            let specs = expected_keys(&MaskRcnn::new(config, config.num_classes(), &Device::flex()));
            let keys_only = specs.iter().map(|s| KeySpec { shape: self.shapes.get(&s.key).cloned().unwrap_or_default(), ..s.clone() }).collect::<Vec<_>>();
            check_keys(&self.origin, &keys_only, self.shapes.iter().map(|(k, s)| (k.as_str(), s.as_slice()))).err().unwrap_or(e)
        })
    }

    /// The class names its metadata gives, if any.
    pub fn classes(&self) -> Option<&[String]> {
        self.classes.as_deref()
    }

    /// The model of `config` sized for this checkpoint's classes, filled with its weights (keys and shapes checked
    /// before any tensor data is read), and the class names: the checkpoint's, else the config's when it has as
    /// many, else `class_0..`.
    pub(crate) fn load_into(self, config: &ModelConfig, device: &Device) -> Result<(MaskRcnn, Vec<String>), WeightsError> {
        let n = self.num_classes_for(config)?;
        let origin = self.origin.clone();
        let classes = match (&self.classes, config.num_classes() == n) {
            (Some(names), _) if names.len() == n => names.clone(),
            (Some(names), _) => {
                return Err(WeightsError::Checkpoint {
                    origin,
                    message: format!("its metadata names {} classes but its heads have {n}", names.len()),
                });
            }
            (None, true) => config.dataset.classes.clone(),
            (None, false) => (0..n).map(|i| format!("class_{i}")).collect(),
        };
        let model = MaskRcnn::new(config, n, device);
        let mut dict = self.read(&expected_keys(&model))?;
        if config.model.conv.weight_standardization {
            standardize_weights(&mut dict, config.model.conv.eps);
        }
        Ok((load_state_dict(model, dict)?, classes))
    }

    /// The tensors of a checkpoint for `config`'s architecture with its own number of classes, keys and shapes
    /// checked before any data is read, and its class names (what the converter writes).
    pub fn into_state_dict(self, config: &ModelConfig) -> Result<StateDict, WeightsError> {
        let n = self.num_classes_for(config)?;
        let classes = self.classes.clone();
        let mut dict = self.read(&expected_keys(&MaskRcnn::new(config, n, &Device::flex())))?;
        dict.classes = classes;
        Ok(dict)
    }

    fn read(self, specs: &[KeySpec]) -> Result<StateDict, WeightsError> {
        match self.source {
            Source::Safetensors(path) => StateDict::from_safetensors_file_for(&path, specs),
            Source::Pth(file) => file.read(Some(specs)),
            Source::Memory(dict) => {
                check_keys(&dict.origin, specs, dict.tensors.iter().map(|(k, t)| (k.as_str(), t.shape.as_slice())))?;
                Ok(dict)
            }
        }
    }
}
