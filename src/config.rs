//! Model configurations: one TOML file per published model in `configs/`, named after mmdetection's config.
//!
//! A file may name a `base` file whose tables it overrides key by key, as mmdetection's `_base_` does; the six
//! published configs are built in, so `ModelConfig::named("r50-2x")` needs no file on disk.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::ConfigError;

/// The published configs, by file name (without `.toml`), and the short aliases the CLI accepts.
const BUILTIN: [(&str, &str, &str); 6] = [
    ("mask-rcnn_r50_fpn_gn-all_2x_coco", "r50-2x", include_str!("../configs/mask-rcnn_r50_fpn_gn-all_2x_coco.toml")),
    ("mask-rcnn_r50_fpn_gn-all_3x_coco", "r50-3x", include_str!("../configs/mask-rcnn_r50_fpn_gn-all_3x_coco.toml")),
    ("mask-rcnn_r101_fpn_gn-all_2x_coco", "r101-2x", include_str!("../configs/mask-rcnn_r101_fpn_gn-all_2x_coco.toml")),
    ("mask-rcnn_r101_fpn_gn-all_3x_coco", "r101-3x", include_str!("../configs/mask-rcnn_r101_fpn_gn-all_3x_coco.toml")),
    (
        "mask-rcnn_r50-contrib_fpn_gn-all_2x_coco",
        "r50c-2x",
        include_str!("../configs/mask-rcnn_r50-contrib_fpn_gn-all_2x_coco.toml"),
    ),
    (
        "mask-rcnn_r50-contrib_fpn_gn-all_3x_coco",
        "r50c-3x",
        include_str!("../configs/mask-rcnn_r50-contrib_fpn_gn-all_3x_coco.toml"),
    ),
];

const MAX_BASE_DEPTH: usize = 8;

/// Everything the model and its pre/post-processing read; no setting lives in code.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub name: String,
    pub checkpoint: CheckpointConfig,
    pub backbone: BackboneConfig,
    pub norm: NormConfig,
    pub preprocess: PreprocessConfig,
    pub rpn: RpnConfig,
    pub rcnn: RcnnConfig,
    pub dataset: DatasetConfig,
}

/// The official checkpoint of a config and the accuracy mmdetection publishes for it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointConfig {
    /// File name; its `-xxxxxxxx.pth` suffix is the start of the file's sha256.
    pub file: String,
    pub url: String,
    pub box_ap: f64,
    pub mask_ap: f64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackboneConfig {
    /// 50 or 101.
    pub depth: usize,
}

/// GroupNorm settings, shared by backbone, FPN and both heads.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NormConfig {
    pub num_groups: usize,
    pub eps: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelOrder {
    /// Caffe/Detectron style: the network sees B, G, R.
    Bgr,
    /// torchvision style: the network sees R, G, B.
    Rgb,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreprocessConfig {
    /// Per input channel, in the network's channel order.
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub channel_order: ChannelOrder,
    /// mmdetection's `Resize(scale=(long, short), keep_ratio=True)`.
    pub scale: [u32; 2],
    pub pad_size_divisor: usize,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RpnConfig {
    pub anchor_scales: Vec<f32>,
    pub anchor_ratios: Vec<f32>,
    /// One stride per FPN output P2..P6.
    pub anchor_strides: Vec<usize>,
    pub target_stds: [f32; 4],
    /// Bound on the decoded width/height ratio change: dw, dh are clamped to `|ln(wh_ratio_clip)|`.
    pub wh_ratio_clip: f64,
    pub nms_pre: usize,
    pub max_per_img: usize,
    pub nms_iou: f32,
    pub min_bbox_size: f32,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RcnnConfig {
    /// Strides of the pyramid levels RoIs are pooled from (P2..P5).
    pub featmap_strides: Vec<usize>,
    pub finest_scale: f32,
    pub bbox_roi_size: usize,
    pub mask_roi_size: usize,
    /// 0 = adaptive, `ceil(roi_size / bins)` samples per bin, as mmcv.
    pub sampling_ratio: usize,
    pub target_stds: [f32; 4],
    pub wh_ratio_clip: f64,
    pub score_thr: f32,
    pub nms_iou: f32,
    pub max_per_img: usize,
    pub mask_thr_binary: f32,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetConfig {
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

    /// Number of object classes (background excluded).
    pub fn num_classes(&self) -> usize {
        self.dataset.classes.len()
    }

    /// Blocks per ResNet stage.
    pub fn stage_blocks(&self) -> [usize; 4] {
        match self.backbone.depth {
            101 => [3, 4, 23, 3],
            _ => [3, 4, 6, 3],
        }
    }

    /// Anchors per location: one per (ratio, scale).
    pub fn num_anchors(&self) -> usize {
        self.rpn.anchor_ratios.len() * self.rpn.anchor_scales.len()
    }

    /// The first eight hex digits of the checkpoint's sha256, from its file name (`..._20200206-8eee02a6.pth`).
    pub fn checkpoint_hash_prefix(&self) -> Option<&str> {
        let stem = self.checkpoint.file.strip_suffix(".pth")?;
        let (_, hash) = stem.rsplit_once('-')?;
        (hash.len() >= 8 && hash.chars().all(|c| c.is_ascii_hexdigit())).then_some(hash)
    }

    fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let invalid = |field: &'static str, reason: String| {
            Err(ConfigError::Invalid { origin: origin.to_string(), field, reason })
        };
        let p = &self.preprocess;
        let (rpn, rcnn) = (&self.rpn, &self.rcnn);
        let unit = |x: f32| (0.0..=1.0).contains(&x);
        if !matches!(self.backbone.depth, 50 | 101) {
            return invalid("backbone.depth", format!("is {}; only ResNet-50 and ResNet-101 exist", self.backbone.depth));
        }
        // GN must divide every normalised width: 64 (stem, layer1) .. 2048 (layer4 out) and 256 (FPN, heads).
        if self.norm.num_groups == 0 || 64 % self.norm.num_groups != 0 {
            return invalid("norm.num_groups", format!("is {}; it must divide 64", self.norm.num_groups));
        }
        if !(self.norm.eps > 0.0 && self.norm.eps < 1.0) {
            return invalid("norm.eps", format!("is {}; it must be in (0, 1)", self.norm.eps));
        }
        if p.std.iter().any(|s| !(*s > 0.0 && s.is_finite())) || p.mean.iter().any(|m| !m.is_finite()) {
            return invalid("preprocess.std", format!("must be finite and > 0 (mean {:?}, std {:?})", p.mean, p.std));
        }
        if p.scale.contains(&0) {
            return invalid("preprocess.scale", format!("is {:?}; both sides must be > 0", p.scale));
        }
        if p.pad_size_divisor == 0 || p.pad_size_divisor % 32 != 0 {
            return invalid(
                "preprocess.pad_size_divisor",
                format!("is {}; the FPN needs a multiple of 32 (its coarsest stride)", p.pad_size_divisor),
            );
        }
        if rpn.anchor_strides != [4, 8, 16, 32, 64] {
            return invalid(
                "rpn.anchor_strides",
                format!("is {:?}; the FPN outputs P2..P6 have strides [4, 8, 16, 32, 64]", rpn.anchor_strides),
            );
        }
        if self.num_anchors() != 3 {
            return invalid(
                "rpn.anchor_ratios",
                format!("give {} anchors per location; the published rpn_cls has 3", self.num_anchors()),
            );
        }
        if rpn.anchor_ratios.iter().chain(&rpn.anchor_scales).any(|v| !(*v > 0.0)) {
            return invalid("rpn.anchor_ratios", "and anchor_scales must be > 0".to_string());
        }
        let ratio_ok = |r: f64| r > 0.0 && r < 1.0;
        if rpn.nms_pre == 0 || rpn.max_per_img == 0 || !unit(rpn.nms_iou) || !(rpn.min_bbox_size >= 0.0) || !ratio_ok(rpn.wh_ratio_clip) {
            return invalid(
                "rpn",
                "needs nms_pre > 0, max_per_img > 0, nms_iou in [0, 1], min_bbox_size >= 0, wh_ratio_clip in (0, 1)"
                    .to_string(),
            );
        }
        if rcnn.featmap_strides != [4, 8, 16, 32] {
            return invalid(
                "rcnn.featmap_strides",
                format!("is {:?}; RoIs are pooled from P2..P5, strides [4, 8, 16, 32]", rcnn.featmap_strides),
            );
        }
        if rcnn.bbox_roi_size != 7 || rcnn.mask_roi_size != 14 {
            return invalid(
                "rcnn.bbox_roi_size",
                format!(
                    "and mask_roi_size are {} and {}; the published heads take 7 and 14",
                    rcnn.bbox_roi_size, rcnn.mask_roi_size
                ),
            );
        }
        if !(rcnn.finest_scale > 0.0) || !ratio_ok(rcnn.wh_ratio_clip) {
            return invalid("rcnn.finest_scale", "must be > 0 and wh_ratio_clip in (0, 1)".to_string());
        }
        if !unit(rcnn.score_thr) || !unit(rcnn.nms_iou) || !unit(rcnn.mask_thr_binary) || rcnn.max_per_img == 0 {
            return invalid(
                "rcnn",
                "needs score_thr, nms_iou and mask_thr_binary in [0, 1] and max_per_img > 0".to_string(),
            );
        }
        if self.dataset.classes.len() != 80 {
            return invalid(
                "dataset.classes",
                format!("has {} names; the published heads have 80 classes", self.dataset.classes.len()),
            );
        }
        if self.dataset.category_ids.len() != self.dataset.classes.len() {
            return invalid(
                "dataset.category_ids",
                format!("has {} ids for {} classes", self.dataset.category_ids.len(), self.dataset.classes.len()),
            );
        }
        if self.checkpoint_hash_prefix().is_none() {
            return invalid(
                "checkpoint.file",
                format!("is `{}`; expected `<name>-<sha256 prefix>.pth`", self.checkpoint.file),
            );
        }
        Ok(())
    }
}

enum Source {
    Builtin(&'static str),
    File(PathBuf),
}

fn load_table(source: Source, depth: usize) -> Result<(toml::Table, String), ConfigError> {
    let (text, origin, dir) = match source {
        Source::Builtin(file) => {
            let (_, _, text) = BUILTIN.iter().find(|(f, _, _)| *f == file).expect("built-in config exists");
            (text.to_string(), format!("{file}.toml (built in)"), None)
        }
        Source::File(path) => {
            let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Io { path: path.clone(), source })?;
            let dir = path.parent().map(Path::to_path_buf);
            (text, path.display().to_string(), dir)
        }
    };
    let table = parse(&text, &origin)?;
    Ok((resolve_base(table, dir.as_deref(), &origin, depth)?, origin))
}

fn parse(text: &str, origin: &str) -> Result<toml::Table, ConfigError> {
    text.parse::<toml::Table>().map_err(|e| ConfigError::Parse { origin: origin.to_string(), message: e.to_string() })
}

/// Replaces `base = "file.toml"` by the base's tables overridden with this file's keys.
fn resolve_base(mut table: toml::Table, dir: Option<&Path>, origin: &str, depth: usize) -> Result<toml::Table, ConfigError> {
    let Some(base) = table.remove("base") else {
        return Ok(table);
    };
    if depth >= MAX_BASE_DEPTH {
        return Err(ConfigError::BaseTooDeep { origin: origin.to_string(), max: MAX_BASE_DEPTH });
    }
    let base = base.as_str().ok_or_else(|| ConfigError::Invalid {
        origin: origin.to_string(),
        field: "base",
        reason: "must be a file name string".to_string(),
    })?;
    let beside = dir.map(|d| d.join(base)).filter(|p| p.is_file());
    let source = match beside {
        Some(path) => Source::File(path),
        None => {
            let stem = base.strip_suffix(".toml").unwrap_or(base);
            let (file, _, _) = BUILTIN.iter().find(|(f, _, _)| *f == stem).ok_or_else(|| ConfigError::Invalid {
                origin: origin.to_string(),
                field: "base",
                reason: format!("`{base}` is neither beside this file nor a built-in config"),
            })?;
            Source::Builtin(file)
        }
    };
    let (mut merged, _) = load_table(source, depth + 1)?;
    merge(&mut merged, table);
    Ok(merged)
}

fn merge(into: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (into.get_mut(&key), value) {
            (Some(toml::Value::Table(a)), toml::Value::Table(b)) => merge(a, b),
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}

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
        assert_eq!((r50.backbone.depth, r101.backbone.depth), (50, 101));
        assert_eq!(r101.checkpoint.box_ap, 42.1);
        assert_eq!(r50.preprocess.channel_order, ChannelOrder::Bgr);
        assert_eq!(c.preprocess.channel_order, ChannelOrder::Rgb);
        assert_eq!(c.preprocess.std, [58.395, 57.12, 57.375]);
        assert_eq!(c.preprocess.scale, [1333, 800]);
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
        let e = ModelConfig::from_toml_str("base = \"mask-rcnn_r50_fpn_gn-all_2x_coco.toml\"\n[rpn]\nnms_thr = 0.7\n")
            .unwrap_err();
        assert!(e.to_string().contains("nms_thr"), "{e}");
        let e = ModelConfig::from_toml_str("base = \"mask-rcnn_r50_fpn_gn-all_2x_coco.toml\"\n[backbone]\ndepth = 34\n")
            .unwrap_err();
        assert!(matches!(e, ConfigError::Invalid { field: "backbone.depth", .. }), "{e}");
        let e = ModelConfig::from_toml_str(
            "base = \"mask-rcnn_r50_fpn_gn-all_2x_coco.toml\"\n[preprocess]\npad_size_divisor = 16\n",
        )
        .unwrap_err();
        assert!(matches!(e, ConfigError::Invalid { field: "preprocess.pad_size_divisor", .. }), "{e}");
        let e = ModelConfig::from_toml_str("base = \"mask-rcnn_r50_fpn_gn-all_2x_coco.toml\"\n[preprocess]\nstd = [1.0, 0.0, 1.0]\n")
            .unwrap_err();
        assert!(matches!(e, ConfigError::Invalid { field: "preprocess.std", .. }), "{e}");
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
        std::fs::write(dir.join("mine.toml"), "base = \"mask-rcnn_r101_fpn_gn-all_2x_coco.toml\"\nname = \"mine\"\n[rcnn]\nscore_thr = 0.3\n").unwrap();
        let c = ModelConfig::from_file(dir.join("mine.toml")).unwrap();
        assert_eq!((c.name.as_str(), c.backbone.depth, c.rcnn.score_thr), ("mine", 101, 0.3));
        let e = ModelConfig::from_file(dir.join("absent.toml")).unwrap_err();
        assert!(matches!(e, ConfigError::Io { .. }), "{e}");
        std::fs::remove_dir_all(dir).ok();
    }
}
