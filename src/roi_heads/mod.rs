//! RoI heads (mmdet `StandardRoIHead`, torchvision's `RoIHeads`): the pyramid and each image's proposals in,
//! each image's detections and their masks' logits out. Box branch: RoIAlign -> box head -> per-class NMS; mask
//! branch: RoIAlign -> mask head -> each detection's own class. RoIs of every image of a batch go through
//! RoIAlign and the heads together (each tagged with its image), split only where one GPU buffer could not hold
//! a chunk's activations.

mod bbox_head;
mod bbox_postprocess;
mod mask_head;

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, Tensor};

pub use bbox_head::{BBoxHead, BBoxHeadConfig};
pub use bbox_postprocess::{BoxDetections, detect_boxes};
pub use mask_head::{MaskHead, MaskHeadConfig, mask_rcnn_inference};

use crate::config::{RcnnTestConfig, RoiConfig};
use crate::device::DeviceProfile;
use crate::error::Result;
use crate::ops::readback::read_f32;
use crate::ops::{ImageRoi, RoiAlignConfig, RoiFeatures, roi_align};
use crate::rpn::Proposals;
use crate::timing::{Stage, StageClock};

/// mmdet `StandardRoIHead`: keys `bbox_head.…`, `mask_head.…`.
#[derive(Module, Debug)]
pub struct RoiHead {
    /// The box branch.
    pub bbox_head: BBoxHead,
    /// The mask branch.
    pub mask_head: MaskHead,
    /// The RoI extractors' levels, level mapping and sampling, and the box coder: fixed by the checkpoint.
    #[module(skip)]
    pub roi: RoiConfig,
}

/// mmdet `StandardRoIHead` with GN heads: the extractors' settings, and each head's config (their RoI sizes
/// are the extractors' output sizes).
#[derive(Config, Debug)]
pub struct RoiHeadConfig {
    /// Levels, finest scale, sampling ratio, box coder; its RoI sizes are the heads' inputs.
    #[config(default = "RoiConfig::default()")]
    pub roi: RoiConfig,
    /// The box head (its `roi_size` is set from `roi`).
    #[config(default = "BBoxHeadConfig::new()")]
    pub bbox_head: BBoxHeadConfig,
    /// The mask head (its `roi_size` is set from `roi`).
    #[config(default = "MaskHeadConfig::new()")]
    pub mask_head: MaskHeadConfig,
}

impl RoiHeadConfig {
    /// Both heads, their parameters uninitialised until weights are loaded.
    pub fn init(&self, device: &Device) -> RoiHead {
        RoiHead {
            bbox_head: self.bbox_head.clone().with_roi_size(self.roi.bbox_roi_size).init(device),
            mask_head: self.mask_head.clone().with_roi_size(self.roi.mask_roi_size).init(device),
            roi: self.roi.clone(),
        }
    }
}

/// What the RoI heads give for a batch: each image's detections (boxes in its resized-image frame) and the mask
/// logits of every detection of every image, in image order, `[D, M, M]` on the device.
pub struct RoiOutput {
    /// Each image's boxes, scores and labels.
    pub detections: Vec<BoxDetections>,
    /// Each detection's own-class mask logits, all images' in order.
    pub mask_logits: Tensor<3>,
}

impl RoiHead {
    /// The pyramid levels RoIs are pooled from (the first `featmap_strides.len()` of `pyramid`), taken by value so
    /// that the host path's channels-last copies are the only ones left once the caller drops the rest.
    pub fn features(&self, pyramid: Vec<Tensor<4>>) -> RoiFeatures {
        let levels = pyramid.into_iter().take(self.roi.featmap_strides.len()).collect();
        RoiFeatures::new(levels, self.roi.featmap_strides.clone())
    }

    fn align(&self, output_size: usize) -> RoiAlignConfig {
        RoiAlignConfig { output_size, sampling_ratio: self.roi.sampling_ratio, finest_scale: self.roi.finest_scale }
    }

    /// Box-branch RoI features of `rois`: `[K, C, S, S]`.
    pub fn bbox_roi_features(&self, features: &RoiFeatures, rois: &[ImageRoi]) -> Tensor<4> {
        roi_align(features, rois, &self.align(self.bbox_head.roi_size))
    }

    /// Mask-branch RoI features of `rois`: `[K, C, S, S]`.
    pub fn mask_roi_features(&self, features: &RoiFeatures, rois: &[ImageRoi]) -> Tensor<4> {
        roi_align(features, rois, &self.align(self.mask_head.roi_size))
    }

    /// mmdet `StandardRoIHead.predict`: each image's detections and their mask logits (`img_shapes[i]`: image
    /// `i`'s resized, unpadded `(h, w)`, the frame boxes are clipped to).
    pub(crate) fn predict(
        &self,
        features: &RoiFeatures,
        proposals: &[Proposals],
        img_shapes: &[(usize, usize)],
        test: &RcnnTestConfig,
        clock: &mut StageClock,
    ) -> Result<RoiOutput> {
        let detections = self.predict_boxes(features, proposals, img_shapes, test)?;
        clock.lap(Stage::BoxHead);
        let mask_logits = self.predict_mask_logits(features, &detections);
        Ok(RoiOutput { detections, mask_logits })
    }

    /// The box head on every image's proposals (in chunks that fit one buffer of the device: RoIs are independent
    /// samples, so chunking changes no value), then each image's per-class NMS.
    pub fn predict_boxes(&self, features: &RoiFeatures, proposals: &[Proposals], img_shapes: &[(usize, usize)], test: &RcnnTestConfig) -> Result<Vec<BoxDetections>> {
        let rois: Vec<ImageRoi> = proposals.iter().enumerate().flat_map(|(i, p)| p.boxes.iter().map(move |b| (i, *b))).collect();
        let profile = DeviceProfile::of(&features.device());
        let per_chunk = profile.rows_per_binding(self.bbox_head.activation_per_roi() * features.dtype().size());
        let (mut cls, mut reg) = (Vec::new(), Vec::new());
        for chunk in rois.chunks(per_chunk) {
            let (c, d) = self.bbox_head.forward(self.bbox_roi_features(features, chunk));
            cls.extend(read_f32(c, "box head")?);
            reg.extend(read_f32(d, "box head")?);
        }
        let (classes, deltas) = (self.bbox_head.num_classes() + 1, self.bbox_head.num_classes() * 4);
        let mut start = 0;
        let mut out = Vec::with_capacity(proposals.len());
        for (p, &shape) in proposals.iter().zip(img_shapes) {
            let n = p.boxes.len();
            let (c, d) = (&cls[start * classes..(start + n) * classes], &reg[start * deltas..(start + n) * deltas]);
            out.push(detect_boxes(&p.boxes, c, d, &self.roi, test, shape));
            start += n;
        }
        Ok(out)
    }

    /// The mask head on every image's detections (in chunks that fit one buffer of the device), each detection's
    /// own class only: `[D, M, M]`, all images' detections in order.
    pub fn predict_mask_logits(&self, features: &RoiFeatures, detections: &[BoxDetections]) -> Tensor<3> {
        let rois: Vec<ImageRoi> = detections.iter().enumerate().flat_map(|(i, d)| d.boxes.iter().map(move |b| (i, *b))).collect();
        let labels: Vec<usize> = detections.iter().flat_map(|d| d.labels.iter().copied()).collect();
        let profile = DeviceProfile::of(&features.device());
        let per_chunk = profile.rows_per_binding(self.mask_head.activation_per_roi() * features.dtype().size());
        let mut parts: Vec<Tensor<3>> = rois
            .chunks(per_chunk)
            .zip(labels.chunks(per_chunk))
            .map(|(r, l)| self.mask_head.forward_own_class(self.mask_roi_features(features, r), l))
            .collect();
        match parts.len() {
            0 => self.mask_head.forward_own_class(self.mask_roi_features(features, &[]), &[]),
            1 => parts.remove(0),
            _ => Tensor::cat(parts, 0),
        }
    }
}
