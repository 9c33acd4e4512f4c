//! Model configurations: one TOML file per published model in `configs/`, named after mmdetection's config.
//!
//! A file may name a `base` file whose tables it overrides key by key, as mmdetection's `_base_` does; the six
//! published configs are built in, so `ModelConfig::named("r50-2x")` needs no file on disk.

mod load;

use std::path::Path;

use serde::{Deserialize, Serialize};

pub use crate::layers::NormConfig;
use crate::error::ConfigError;
use load::{BUILTIN, Source, load_table, parse, resolve_base};

/// Everything the model and its pre/post-processing read; no setting lives in code. Split as mmdetection's
/// configs are: what the checkpoint fixes ([`ModelConfig::model`]) and what a user may change at test time
/// ([`ModelConfig::test`]).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// mmdetection's config name, e.g. `mask-rcnn_r50_fpn_gn-all_2x_coco`.
    pub name: String,
    /// The official checkpoint and its published accuracy.
    pub checkpoint: CheckpointConfig,
    /// The architecture and input normalisation the checkpoint was trained with.
    pub model: ArchitectureConfig,
    /// Test-time settings: input scale, proposal and detection thresholds.
    pub test: TestConfig,
    /// Class names and dataset category ids.
    pub dataset: DatasetConfig,
}

/// The official checkpoint of a config and the accuracy mmdetection publishes for it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointConfig {
    /// File name; its `-xxxxxxxx.pth` suffix is the start of the file's sha256.
    pub file: String,
    /// Where mmdetection publishes it.
    pub url: String,
    /// COCO val2017 box AP.
    pub box_ap: f64,
    /// COCO val2017 mask AP.
    pub mask_ap: f64,
}

/// What the checkpoint fixes (mmdetection's `model`): changing any of it breaks the weights or what they learnt.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchitectureConfig {
    /// The ResNet.
    pub backbone: BackboneConfig,
    /// GroupNorm, shared by backbone, FPN and both heads.
    pub norm: NormConfig,
    /// Weight standardisation of the normalised convs (gn+ws models); none by default.
    #[serde(default)]
    pub conv: ConvConfig,
    /// Input normalisation (mmdetection's `data_preprocessor`).
    pub data: DataConfig,
    /// Anchors and the RPN's box coder.
    pub rpn: RpnConfig,
    /// RoI pooling and the box head's coder.
    pub roi: RoiConfig,
}

/// The backbone: ResNet or ResNeXt, 50 or 101 layers.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BackboneConfig {
    /// 50 or 101.
    pub depth: usize,
    /// Groups of the bottlenecks' 3x3 convs: 1 for ResNet, 32 for ResNeXt 32x4d (mmdet `ResNeXt.groups`).
    #[serde(default = "one")]
    pub groups: usize,
    /// With `groups` > 1, the width of each group at the first stage (mmdet `ResNeXt.base_width`: 4 in 32x4d);
    /// 64 for ResNet.
    #[serde(default = "sixty_four")]
    pub base_width: usize,
}

fn one() -> usize {
    1
}

fn sixty_four() -> usize {
    64
}

/// How the convolutions followed by a GroupNorm use their weights (mmdetection's `conv_cfg`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConvConfig {
    /// mmcv `ConvWS2d` (the gn+ws models): each filter standardised to zero mean and unit (unbiased) std over
    /// its fan-in before use, `(w - mean) / (std + eps)`; folded into the weights once at load.
    #[serde(default)]
    pub weight_standardization: bool,
    /// `ConvWS2d`'s eps, added to the std.
    #[serde(default = "ws_eps")]
    pub eps: f64,
}

fn ws_eps() -> f64 {
    1e-5
}

impl Default for ConvConfig {
    /// Plain convolutions (the GN models); `ConvWS2d`'s eps where standardisation is switched on.
    fn default() -> Self {
        Self { weight_standardization: false, eps: ws_eps() }
    }
}

/// Which channel order the network sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelOrder {
    /// Caffe/Detectron style: the network sees B, G, R.
    Bgr,
    /// torchvision style: the network sees R, G, B.
    Rgb,
}

/// mmdetection's `DetDataPreprocessor`: `(x - mean) / std`, zero-padded bottom/right.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Per input channel, in the network's channel order.
    pub mean: [f32; 3],
    /// Per input channel, in the network's channel order.
    pub std: [f32; 3],
    /// The order the network sees the channels in.
    pub channel_order: ChannelOrder,
    /// The padded input's sides are multiples of this.
    pub pad_size_divisor: usize,
}

/// Anchors (mmdet `AnchorGenerator`) and the RPN's `DeltaXYWHBBoxCoder`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RpnConfig {
    /// Anchor sizes in units of the level's stride.
    pub anchor_scales: Vec<f32>,
    /// Anchor height/width ratios.
    pub anchor_ratios: Vec<f32>,
    /// One stride per FPN output P2..P6.
    pub anchor_strides: Vec<usize>,
    /// The coder's de-normalisation stds (means are 0).
    pub target_stds: [f32; 4],
    /// Bound on the decoded width/height ratio change: dw, dh are clamped to `|ln(wh_ratio_clip)|`.
    pub wh_ratio_clip: f64,
}

/// RoI pooling (mmdet `SingleRoIExtractor` with mmcv `RoIAlign`) and the box head's coder.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RoiConfig {
    /// Strides of the pyramid levels RoIs are pooled from (P2..P5).
    pub featmap_strides: Vec<usize>,
    /// A RoI of scale `s = sqrt(area)` goes to level `floor(log2(s / finest_scale + 1e-6))`.
    pub finest_scale: f32,
    /// Output side of the box branch's RoIAlign.
    pub bbox_roi_size: usize,
    /// Output side of the mask branch's RoIAlign.
    pub mask_roi_size: usize,
    /// 0 = adaptive, `ceil(roi_size / bins)` samples per bin, as mmcv.
    pub sampling_ratio: usize,
    /// The box coder's de-normalisation stds.
    pub target_stds: [f32; 4],
    /// As [`RpnConfig::wh_ratio_clip`].
    pub wh_ratio_clip: f64,
}

impl Default for RpnConfig {
    /// mmdetection's GN Mask R-CNN: scales `[8]`, ratios `[0.5, 1, 2]`, strides 4..64, stds 1, clip 0.016.
    fn default() -> Self {
        Self {
            anchor_scales: vec![8.0],
            anchor_ratios: vec![0.5, 1.0, 2.0],
            anchor_strides: vec![4, 8, 16, 32, 64],
            target_stds: [1.0; 4],
            wh_ratio_clip: 16.0 / 1000.0,
        }
    }
}

impl RpnConfig {
    /// Anchors per location: one per (ratio, scale).
    pub fn num_anchors(&self) -> usize {
        self.anchor_ratios.len() * self.anchor_scales.len()
    }
}

impl Default for RoiConfig {
    /// mmdetection's GN Mask R-CNN: P2..P5, finest scale 56, 7x7 boxes, 14x14 masks, adaptive sampling, stds
    /// `[0.1, 0.1, 0.2, 0.2]`.
    fn default() -> Self {
        Self {
            featmap_strides: vec![4, 8, 16, 32],
            finest_scale: 56.0,
            bbox_roi_size: 7,
            mask_roi_size: 14,
            sampling_ratio: 0,
            target_stds: [0.1, 0.1, 0.2, 0.2],
            wh_ratio_clip: 16.0 / 1000.0,
        }
    }
}

/// Test-time settings (mmdetection's test pipeline and `test_cfg`): safe to change on a loaded detector.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestConfig {
    /// mmdetection's `Resize(scale=(long, short), keep_ratio=True)`.
    pub scale: [u32; 2],
    /// Proposals.
    pub rpn: RpnTestConfig,
    /// Final detections.
    pub rcnn: RcnnTestConfig,
}

/// mmdet `test_cfg.rpn`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RpnTestConfig {
    /// Top-scoring anchors kept per level before NMS.
    pub nms_pre: usize,
    /// Proposals kept per image after NMS.
    pub max_per_img: usize,
    /// NMS IoU threshold.
    pub nms_iou: f32,
    /// Proposals must be wider and taller than this.
    pub min_bbox_size: f32,
}

/// mmdet `test_cfg.rcnn`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RcnnTestConfig {
    /// Class scores must exceed this.
    pub score_thr: f32,
    /// Per-class NMS IoU threshold.
    pub nms_iou: f32,
    /// Detections kept per image.
    pub max_per_img: usize,
    /// Pasted mask probabilities at or above this are object.
    pub mask_thr_binary: f32,
}

/// Class names and their dataset ids.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetConfig {
    /// The dataset's name (`coco`).
    pub name: String,
    /// Class names in label order.
    pub classes: Vec<String>,
    /// The dataset's category id of each label (COCO's have gaps).
    pub category_ids: Vec<u32>,
}

impl ModelConfig {
    /// A built-in config by alias (`r50-2x`, `r101-3x`, `r50c-2x`...) or file name (with or without `.toml`).
    pub fn named(name: &str) -> Result<Self, ConfigError> {
        let stem = name.strip_suffix(".toml").unwrap_or(name);
        let (file, _, _) = BUILTIN
            .iter()
            .find(|(file, alias, _)| *file == stem || *alias == stem)
            .ok_or_else(|| ConfigError::UnknownName {
                name: name.to_string(),
                known: Self::builtin_names().join(", "),
            })?;
        load_table(Source::Builtin(file), 0).and_then(|(table, origin)| Self::from_table(table, &origin))
    }

    /// The aliases of the built-in configs, in the order of the model zoo.
    pub fn builtin_names() -> Vec<&'static str> {
        BUILTIN.iter().map(|(_, alias, _)| *alias).collect()
    }

    /// A config file on disk; its `base`, if any, is looked up beside it, then among the built-in ones.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        load_table(Source::File(path.as_ref().to_path_buf()), 0)
            .and_then(|(table, origin)| Self::from_table(table, &origin))
    }

    /// A config given as TOML text (no `base` lookup on disk; built-in bases only).
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let origin = "<string>".to_string();
        let table = parse(text, &origin)?;
        let table = resolve_base(table, None, &origin, 0)?;
        Self::from_table(table, &origin)
    }

    /// A built-in alias or file name, else a path to a TOML file.
    pub fn from_name_or_file(spec: &str) -> Result<Self, ConfigError> {
        match Self::named(spec) {
            Err(ConfigError::UnknownName { .. }) if Path::new(spec).is_file() => Self::from_file(spec),
            other => other,
        }
    }

    fn from_table(table: toml::Table, origin: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| ConfigError::Parse {
            origin: origin.to_string(),
            message: e.message().to_string(),
        })?;
        config.validate(origin)?;
        Ok(config)
    }

    /// Number of object classes of the config's dataset (background excluded); a checkpoint may have others.
    pub fn num_classes(&self) -> usize {
        self.dataset.classes.len()
    }

    /// The first eight hex digits of the checkpoint's sha256, from its file name (`..._20200206-8eee02a6.pth`).
    pub fn checkpoint_hash_prefix(&self) -> Option<&str> {
        let stem = self.checkpoint.file.strip_suffix(".pth")?;
        let (_, hash) = stem.rsplit_once('-')?;
        (hash.len() >= 8 && hash.chars().all(|c| c.is_ascii_hexdigit())).then_some(hash)
    }

    fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let invalid = |field: &'static str, reason: String| Err(ConfigError::Invalid { origin: origin.to_string(), field, reason });
        let (m, t) = (&self.model, &self.test);
        let (data, rpn, roi) = (&m.data, &m.rpn, &m.roi);
        let unit = |x: f32| (0.0..=1.0).contains(&x);
        let ratio_ok = |r: f64| r > 0.0 && r < 1.0;
        if !matches!(m.backbone.depth, 50 | 101) {
            return invalid("model.backbone.depth", format!("is {}; only ResNet-50 and ResNet-101 exist", m.backbone.depth));
        }
        let (groups, width) = (m.backbone.groups, m.backbone.base_width);
        // Every stage's 3x3 conv has groups * base_width * 2^stage channels, which GroupNorm must divide.
        if groups == 0 || width == 0 || groups > 64 || width > 64 || (groups * width) % m.norm.num_groups.max(1) != 0 {
            return invalid(
                "model.backbone.groups",
                format!("and base_width are {groups} and {width}; both in 1..=64 with groups * base_width a multiple of model.norm.num_groups"),
            );
        }
        if groups == 1 && width != 64 {
            return invalid("model.backbone.base_width", format!("is {width}; a ResNet (groups = 1) has 64"));
        }
        if !(m.conv.eps > 0.0 && m.conv.eps < 1.0) {
            return invalid("model.conv.eps", format!("is {}; it must be in (0, 1)", m.conv.eps));
        }
        // GN must divide every normalised width: 64 (stem, layer1) .. 2048 (layer4 out) and 256 (FPN, heads).
        if m.norm.num_groups == 0 || 64 % m.norm.num_groups != 0 {
            return invalid("model.norm.num_groups", format!("is {}; it must divide 64", m.norm.num_groups));
        }
        if !(m.norm.eps > 0.0 && m.norm.eps < 1.0) {
            return invalid("model.norm.eps", format!("is {}; it must be in (0, 1)", m.norm.eps));
        }
        if data.std.iter().any(|s| !(*s > 0.0 && s.is_finite())) || data.mean.iter().any(|m| !m.is_finite()) {
            return invalid("model.data.std", format!("must be finite and > 0 (mean {:?}, std {:?})", data.mean, data.std));
        }
        if data.pad_size_divisor == 0 || data.pad_size_divisor % 32 != 0 {
            return invalid(
                "model.data.pad_size_divisor",
                format!("is {}; the FPN needs a multiple of 32 (its coarsest stride)", data.pad_size_divisor),
            );
        }
        if rpn.anchor_strides != [4, 8, 16, 32, 64] {
            return invalid(
                "model.rpn.anchor_strides",
                format!("is {:?}; the FPN outputs P2..P6 have strides [4, 8, 16, 32, 64]", rpn.anchor_strides),
            );
        }
        if rpn.num_anchors() == 0 || rpn.num_anchors() > 64 {
            return invalid("model.rpn.anchor_ratios", format!("give {} anchors per location; expected 1..=64", rpn.num_anchors()));
        }
        if rpn.anchor_ratios.iter().chain(&rpn.anchor_scales).any(|v| !(*v > 0.0)) || !ratio_ok(rpn.wh_ratio_clip) {
            return invalid("model.rpn", "needs anchor_ratios and anchor_scales > 0 and wh_ratio_clip in (0, 1)".to_string());
        }
        if roi.featmap_strides != [4, 8, 16, 32] {
            return invalid(
                "model.roi.featmap_strides",
                format!("is {:?}; RoIs are pooled from P2..P5, strides [4, 8, 16, 32]", roi.featmap_strides),
            );
        }
        if roi.bbox_roi_size != 7 || roi.mask_roi_size != 14 {
            return invalid(
                "model.roi.bbox_roi_size",
                format!("and mask_roi_size are {} and {}; the published heads take 7 and 14", roi.bbox_roi_size, roi.mask_roi_size),
            );
        }
        if !(roi.finest_scale > 0.0) || !ratio_ok(roi.wh_ratio_clip) {
            return invalid("model.roi.finest_scale", "must be > 0 and wh_ratio_clip in (0, 1)".to_string());
        }
        if t.scale.contains(&0) || t.scale.iter().any(|&s| s > MAX_SCALE) {
            return invalid("test.scale", format!("is {:?}; both sides must be in 1..={MAX_SCALE}", t.scale));
        }
        let r = &t.rpn;
        if r.nms_pre == 0 || r.max_per_img == 0 || !unit(r.nms_iou) || !(r.min_bbox_size >= 0.0) {
            return invalid("test.rpn", "needs nms_pre > 0, max_per_img > 0, nms_iou in [0, 1], min_bbox_size >= 0".to_string());
        }
        let r = &t.rcnn;
        if !unit(r.score_thr) || !unit(r.nms_iou) || !unit(r.mask_thr_binary) || r.max_per_img == 0 {
            return invalid("test.rcnn", "needs score_thr, nms_iou and mask_thr_binary in [0, 1] and max_per_img > 0".to_string());
        }
        if self.dataset.classes.is_empty() || self.dataset.classes.len() > MAX_CLASSES {
            return invalid("dataset.classes", format!("has {} names; expected 1..={MAX_CLASSES}", self.dataset.classes.len()));
        }
        if self.dataset.category_ids.len() != self.dataset.classes.len() {
            return invalid(
                "dataset.category_ids",
                format!("has {} ids for {} classes", self.dataset.category_ids.len(), self.dataset.classes.len()),
            );
        }
        if self.checkpoint_hash_prefix().is_none() {
            return invalid("checkpoint.file", format!("is `{}`; expected `<name>-<sha256 prefix>.pth`", self.checkpoint.file));
        }
        Ok(())
    }
}

/// The most classes a model may have (LVIS has 1203; a head that wide is 5 MB of fc weights).
pub const MAX_CLASSES: usize = 10_000;

/// The largest test scale side accepted: 8x mmdetection's 1333, far past any useful input, and a bound on the
/// network input's memory (a 10000 x 10000 input is 1.2 GB as f32 before the first conv).
const MAX_SCALE: u32 = 10_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_builtin_configs_load_and_differ_where_they_should() {
        for alias in ModelConfig::builtin_names() {
            let c = ModelConfig::named(alias).unwrap();
            assert_eq!(c.num_classes(), 80, "{alias}");
            assert!(c.checkpoint.url.ends_with(&c.checkpoint.file), "{alias}");
        }
        let r50 = ModelConfig::named("r50-2x").unwrap();
        let r101 = ModelConfig::named("mask-rcnn_r101_fpn_gn-all_3x_coco.toml").unwrap();
        let c = ModelConfig::named("r50c-3x").unwrap();
        assert_eq!((r50.model.backbone.depth, r101.model.backbone.depth), (50, 101));
        assert_eq!(r101.checkpoint.box_ap, 42.1);
        assert_eq!(r50.model.data.channel_order, ChannelOrder::Bgr);
        assert_eq!(c.model.data.channel_order, ChannelOrder::Rgb);
        assert_eq!(c.model.data.std, [58.395, 57.12, 57.375]);
        assert_eq!(c.test.scale, [1333, 800]);
        assert_eq!(r50.checkpoint_hash_prefix(), Some("8eee02a6"));
    }

    #[test]
    fn unknown_name_lists_the_known_ones() {
        let e = ModelConfig::named("r152-1x").unwrap_err();
        assert!(matches!(e, ConfigError::UnknownName { .. }));
        assert!(e.to_string().contains("r50-2x"), "{e}");
    }

    #[test]
    fn unknown_and_inconsistent_fields_are_rejected() {
        let e = ModelConfig::from_toml_str("base = \"mask-rcnn_r50_fpn_gn-all_2x_coco.toml\"\n[test.rpn]\nnms_thr = 0.7\n")
            .unwrap_err();
        assert!(e.to_string().contains("nms_thr"), "{e}");
        let e = ModelConfig::from_toml_str("base = \"mask-rcnn_r50_fpn_gn-all_2x_coco.toml\"\n[model.backbone]\ndepth = 34\n")
            .unwrap_err();
        assert!(matches!(e, ConfigError::Invalid { field: "model.backbone.depth", .. }), "{e}");
        let e = ModelConfig::from_toml_str(
            "base = \"mask-rcnn_r50_fpn_gn-all_2x_coco.toml\"\n[model.data]\npad_size_divisor = 16\n",
        )
        .unwrap_err();
        assert!(matches!(e, ConfigError::Invalid { field: "model.data.pad_size_divisor", .. }), "{e}");
        let e = ModelConfig::from_toml_str("base = \"mask-rcnn_r50_fpn_gn-all_2x_coco.toml\"\n[model.data]\nstd = [1.0, 0.0, 1.0]\n")
            .unwrap_err();
        assert!(matches!(e, ConfigError::Invalid { field: "model.data.std", .. }), "{e}");
        let e = ModelConfig::from_toml_str("name = \"x\"\n").unwrap_err();
        assert!(matches!(e, ConfigError::Parse { .. }), "{e}");
        let e = ModelConfig::from_toml_str("base = \"nope.toml\"\n").unwrap_err();
        assert!(matches!(e, ConfigError::Invalid { field: "base", .. }), "{e}");
        let e = ModelConfig::from_toml_str("depth = [").unwrap_err();
        assert!(matches!(e, ConfigError::Parse { .. }), "{e}");
    }

    #[test]
    fn a_file_can_derive_from_a_file_beside_it() {
        let dir = std::env::temp_dir().join(format!("mrb-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("mine.toml"), "base = \"mask-rcnn_r101_fpn_gn-all_2x_coco.toml\"\nname = \"mine\"\n[test.rcnn]\nscore_thr = 0.3\n").unwrap();
        let c = ModelConfig::from_file(dir.join("mine.toml")).unwrap();
        assert_eq!((c.name.as_str(), c.model.backbone.depth, c.test.rcnn.score_thr), ("mine", 101, 0.3));
        let e = ModelConfig::from_file(dir.join("absent.toml")).unwrap_err();
        assert!(matches!(e, ConfigError::Io { .. }), "{e}");
        std::fs::remove_dir_all(dir).ok();
    }
}
