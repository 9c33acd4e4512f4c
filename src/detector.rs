//! The inference pipeline: image -> preprocess -> backbone -> neck -> RPN -> RoI heads -> masks -> detections.
//!
//! Tensors stay on the model's device except at three deliberate read-backs, the small sequential parts:
//! the RPN outputs (for top-k, decoding and NMS), the box head outputs (for per-class NMS) and the binary
//! masks (packed bits of each box's window, pasted on the device). RoIAlign and the mask paste run on the device
//! (CubeCL kernels on the GPU backends; on flex the host references, flex tensors being host memory); the boxes
//! go up to them from the host, where NMS left them.

use std::path::Path;
use std::time::{Duration, Instant};

use burn::tensor::{Device, Tensor};

use crate::backbone::BackboneFeatures;
use crate::config::{ModelConfig, TestConfig};
use crate::error::{Error, Result};
use crate::image::BgrImage;
use crate::model::MaskRcnn;
use crate::neck::PyramidFeatures;
use crate::ops::readback::read_f32;
use crate::ops::{RoiAlignConfig, RoiFeatures, roi_align};
use crate::output::Detections;
use crate::postprocess::detector_postprocess;
use crate::precision::Precision;
use crate::preprocess::{ImageMeta, Preprocessed, preprocess};
use crate::roi_heads::{BoxDetections, detect_boxes, mask_rcnn_inference};
use crate::rpn::{Proposals, RpnLevelOutput, proposals};
use crate::structures::BBox;
use crate::weights::{StateDict, load_state_dict};

/// Wall time of each stage of one `predict` (the device is synchronised at each read-back).
#[derive(Debug, Clone, Default)]
pub struct StageTimings {
    /// Resize, normalise, pad, upload.
    pub preprocess: Duration,
    /// Backbone and FPN (device synchronised at the end).
    pub backbone_fpn: Duration,
    /// RPN head, read-back, top-k, decoding, NMS.
    pub rpn: Duration,
    /// RoIAlign, box head, read-back, per-class NMS.
    pub box_head: Duration,
    /// RoIAlign, mask head, paste, read-back.
    pub mask_head: Duration,
}

impl StageTimings {
    /// The sum of the stages.
    pub fn total(&self) -> Duration {
        self.preprocess + self.backbone_fpn + self.rpn + self.box_head + self.mask_head
    }
}

/// A loaded model ready to detect objects. Its architecture and weights are fixed once loaded; the test-time
/// settings ([`TestConfig`]: scale, thresholds) may change ([`Detector::test_config_mut`]).
pub struct Detector {
    model: MaskRcnn,
    config: ModelConfig,
    device: Device,
    precision: Precision,
}

impl Detector {
    /// Builds the model of `config` and fills it from a checkpoint's tensors.
    pub fn new(config: ModelConfig, weights: StateDict, device: Device) -> Result<Self> {
        let model = load_state_dict(MaskRcnn::new(&config, &device), weights)?;
        Ok(Self { model, config, device, precision: Precision::F32 })
    }

    /// Loads a safetensors checkpoint with mmdetection's key names.
    pub fn from_safetensors(config: ModelConfig, path: impl AsRef<Path>, device: Device) -> Result<Self> {
        Self::new(config, StateDict::from_safetensors_file(path)?, device)
    }

    /// The same detector with its weights (and from then on its activations) in `precision`.
    pub fn with_precision(self, precision: Precision) -> Self {
        Self { model: precision.cast_module(self.model), precision, ..self }
    }

    /// The network, for running single stages.
    pub fn model(&self) -> &MaskRcnn {
        &self.model
    }

    /// The config the detector was built from.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The test-time settings, to change on the loaded detector (input scale, proposal and score thresholds).
    pub fn test_config_mut(&mut self) -> &mut TestConfig {
        &mut self.config.test
    }

    /// Where the model runs.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Weights' and activations' precision (f32 unless [`Detector::with_precision`]).
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The network input of one image and its metadata.
    pub fn preprocess(&self, img: &BgrImage) -> Preprocessed {
        preprocess(img, &self.config.model.data, self.config.test.scale)
    }

    /// Backbone and FPN: C2..C5 and P2..P6.
    pub fn features(&self, input: Tensor<4>) -> (BackboneFeatures, PyramidFeatures) {
        let c = self.model.backbone.forward(input);
        let p = self.model.neck.forward(c.clone());
        (c, p)
    }

    /// The RPN head on P2..P6 (device tensors): logits `[1, A, H, W]` and deltas `[1, 4A, H, W]` per level.
    pub fn rpn_head(&self, pyramid: &PyramidFeatures) -> Vec<(Tensor<4>, Tensor<4>)> {
        pyramid.iter().map(|p| self.model.rpn_head.forward(p.clone())).collect()
    }

    /// RPN outputs read back, and the proposals made from them.
    pub fn proposals(&self, pyramid: &PyramidFeatures, meta: &ImageMeta) -> Result<Proposals> {
        let mut levels = Vec::with_capacity(pyramid.len());
        for (cls, reg) in self.rpn_head(pyramid) {
            let [_, _, height, width] = cls.dims();
            levels.push(RpnLevelOutput { cls: read_f32(cls, "rpn")?, reg: read_f32(reg, "rpn")?, height, width });
        }
        Ok(proposals(&levels, &self.config.model.rpn, &self.config.test.rpn, meta.img_shape))
    }

    /// P2..P5 as the RoI extractors see them.
    pub fn roi_features(&self, pyramid: &PyramidFeatures) -> RoiFeatures {
        RoiFeatures::new(pyramid[..4].to_vec(), self.config.model.roi.featmap_strides.clone())
    }

    fn roi_align_config(&self, output_size: usize) -> RoiAlignConfig {
        let r = &self.config.model.roi;
        RoiAlignConfig { output_size, sampling_ratio: r.sampling_ratio, finest_scale: r.finest_scale }
    }

    /// 7x7 RoI features of `rois`: `[N, 256, 7, 7]`.
    pub fn bbox_roi_features(&self, features: &RoiFeatures, rois: &[BBox]) -> Tensor<4> {
        roi_align(features, rois, &self.roi_align_config(self.config.model.roi.bbox_roi_size))
    }

    /// 14x14 RoI features of `rois`: `[N, 256, 14, 14]`.
    pub fn mask_roi_features(&self, features: &RoiFeatures, rois: &[BBox]) -> Tensor<4> {
        roi_align(features, rois, &self.roi_align_config(self.config.model.roi.mask_roi_size))
    }

    /// Box head on the proposals, then per-class NMS: boxes in resized-image coordinates.
    pub fn detect_boxes(&self, features: &RoiFeatures, rois: &[BBox], meta: &ImageMeta) -> Result<BoxDetections> {
        if rois.is_empty() {
            return Ok(BoxDetections::default());
        }
        let (cls, reg) = self.model.roi_head.bbox_head.forward(self.bbox_roi_features(features, rois));
        let (cls, reg) = (read_f32(cls, "box head")?, read_f32(reg, "box head")?);
        Ok(detect_boxes(rois, &cls, &reg, &self.config.model.roi, &self.config.test.rcnn, meta.img_shape))
    }

    /// Mask logits of each detection's own class: `[N, 28, 28]` (device).
    pub fn mask_logits(&self, features: &RoiFeatures, dets: &BoxDetections) -> Tensor<3> {
        let logits = self.model.roi_head.mask_head.forward(self.mask_roi_features(features, &dets.boxes));
        mask_rcnn_inference(logits, &dets.labels)
    }

    /// Masks pasted into the original image, boxes rescaled to it: the final detections.
    pub fn finish(&self, features: &RoiFeatures, dets: BoxDetections, meta: &ImageMeta) -> Result<Detections> {
        let logits = self.mask_logits(features, &dets);
        detector_postprocess(dets, logits, meta, &self.config.dataset.classes, self.config.test.rcnn.mask_thr_binary)
    }

    /// Detects objects in one image.
    pub fn predict(&self, img: &BgrImage) -> Result<Detections> {
        self.predict_timed(img).map(|(d, _)| d)
    }

    /// Decodes and detects objects in one image file.
    pub fn predict_path(&self, path: impl AsRef<Path>) -> Result<Detections> {
        self.predict(&BgrImage::open(path)?)
    }

    /// [`predict`](Self::predict) with the wall time of each stage.
    pub fn predict_timed(&self, img: &BgrImage) -> Result<(Detections, StageTimings)> {
        let mut t = StageTimings::default();
        let mut clock = Instant::now();
        let mut lap = |slot: &mut Duration| {
            *slot = clock.elapsed();
            clock = Instant::now();
        };
        let pre = self.preprocess(img);
        let input = self.precision.cast(pre.to_tensor(&self.device));
        lap(&mut t.preprocess);
        let (_, pyramid) = self.features(input);
        self.device.sync().map_err(|e| Error::backend("backbone", e))?;
        lap(&mut t.backbone_fpn);
        let props = self.proposals(&pyramid, &pre.meta)?;
        lap(&mut t.rpn);
        let features = self.roi_features(&pyramid);
        let dets = self.detect_boxes(&features, &props.boxes, &pre.meta)?;
        lap(&mut t.box_head);
        let out = self.finish(&features, dets, &pre.meta)?;
        lap(&mut t.mask_head);
        Ok((out, t))
    }
}
