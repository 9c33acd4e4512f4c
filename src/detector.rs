//! The inference pipeline: image -> preprocess -> backbone -> neck -> RPN -> RoI heads -> masks -> detections.
//!
//! Tensors stay on the model's device except at three deliberate read-backs, the small sequential parts:
//! the RPN's chosen anchors with their logits and deltas (for decoding and NMS), the box head outputs (for per-class NMS) and the binary
//! masks (packed bits of each box's window, pasted on the device). RoIAlign and the mask paste run on the device
//! (CubeCL kernels on the GPU backends; on flex the host references, flex tensors being host memory); the boxes
//! go up to them from the host, where NMS left them.

use std::path::Path;
use std::time::{Duration, Instant};

use burn::tensor::{Device, Tensor, TensorData};

use crate::backbone::BackboneFeatures;
use crate::config::{ModelConfig, TestConfig};
use crate::error::{Error, Result};
use crate::image::BgrImage;
use crate::model::MaskRcnn;
use crate::neck::PyramidFeatures;
use crate::ops::readback::read_f32;
use crate::ops::{RoiAlignConfig, RoiFeatures, roi_align, top_k_anchors};
use crate::output::Detections;
use crate::postprocess::detector_postprocess;
use crate::precision::Precision;
use crate::preprocess::{ImageMeta, Preprocessed, preprocess};
use crate::roi_heads::{BoxDetections, detect_boxes};
use crate::rpn::{LevelCandidates, Proposals, proposals};
use crate::structures::BBox;
use crate::weights::{StateDict, expected_keys, load_state_dict};

/// Wall time of each stage of one `predict` (the device is synchronised at each read-back).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
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

impl std::ops::AddAssign for StageTimings {
    fn add_assign(&mut self, other: Self) {
        self.preprocess += other.preprocess;
        self.backbone_fpn += other.backbone_fpn;
        self.rpn += other.rpn;
        self.box_head += other.box_head;
        self.mask_head += other.mask_head;
    }
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

    /// Loads a safetensors checkpoint with mmdetection's key names. The file's size, keys and shapes are checked
    /// against the model before its tensors are decoded. On flex its f32 tensors are the parameters, read in
    /// place from the mapped file (no copy, no fresh memory): the file must not be truncated or rewritten in
    /// place while the detector lives (replacing it by a rename is fine).
    pub fn from_safetensors(config: ModelConfig, path: impl AsRef<Path>, device: Device) -> Result<Self> {
        let model = MaskRcnn::new(&config, &device);
        let weights = StateDict::from_safetensors_file_for(path, &expected_keys(&model))?;
        let model = load_state_dict(model, weights)?;
        Ok(Self { model, config, device, precision: Precision::F32 })
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

    /// The RPN head on P2..P6 (device tensors): logits `[N, A, H, W]` and deltas `[N, 4A, H, W]` per level.
    pub fn rpn_head(&self, pyramid: &PyramidFeatures) -> Vec<(Tensor<4>, Tensor<4>)> {
        self.model.rpn_head.forward_levels(pyramid)
    }

    /// RPN outputs read back, and the proposals made from them (one image).
    pub fn proposals(&self, pyramid: &PyramidFeatures, meta: &ImageMeta) -> Result<Proposals> {
        Ok(self.proposals_batch(pyramid, &[meta])?.remove(0))
    }

    /// Each image's proposals from the RPN outputs of a batch, level by level: the `nms_pre` best anchors of each
    /// level are chosen where the outputs are ([`top_k_anchors`]: on a GPU only they and their deltas are read
    /// back), then decoded and suppressed on the host.
    fn proposals_batch(&self, pyramid: &PyramidFeatures, metas: &[&ImageMeta]) -> Result<Vec<Proposals>> {
        let (arch, test) = (&self.config.model.rpn, &self.config.test.rpn);
        let mut levels: Vec<Vec<LevelCandidates>> = vec![Vec::with_capacity(pyramid.len()); metas.len()];
        for (cls, reg) in self.rpn_head(pyramid) {
            let [_, _, height, width] = cls.dims();
            for (image, anchors) in levels.iter_mut().zip(top_k_anchors(cls, reg, test.nms_pre)?) {
                image.push(LevelCandidates::new(anchors, height, width));
            }
        }
        Ok(levels.iter().zip(metas).map(|(l, meta)| proposals(l, arch, test, meta.img_shape)).collect())
    }

    /// P2..P5 as the RoI extractors see them (one image).
    pub fn roi_features(&self, pyramid: &PyramidFeatures) -> RoiFeatures {
        RoiFeatures::new(pyramid[..4].to_vec(), self.config.model.roi.featmap_strides.clone())
    }

    /// Image `i`'s P2..P5 of a batch of `n`.
    fn roi_features_of(&self, pyramid: &PyramidFeatures, i: usize, n: usize) -> RoiFeatures {
        if n == 1 {
            return self.roi_features(pyramid);
        }
        let levels = pyramid[..4].iter().map(|p| p.clone().slice([i..i + 1])).collect();
        RoiFeatures::new(levels, self.config.model.roi.featmap_strides.clone())
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

    /// Box head on the proposals, then per-class NMS: boxes in resized-image coordinates (one image).
    pub fn detect_boxes(&self, features: &RoiFeatures, rois: &[BBox], meta: &ImageMeta) -> Result<BoxDetections> {
        Ok(self.detect_boxes_batch(std::slice::from_ref(features), &[rois], &[meta])?.remove(0))
    }

    /// The box head on every image's RoIs, batched across images in chunks that fit one GPU buffer (RoIs are
    /// independent samples, so batching changes no value), then each image's per-class NMS.
    fn detect_boxes_batch(&self, features: &[RoiFeatures], rois: &[&[BBox]], metas: &[&ImageMeta]) -> Result<Vec<BoxDetections>> {
        let per_roi = 256 * 7 * 7 * self.precision.dtype().size();
        let (mut cls, mut reg, mut widths) = (Vec::new(), Vec::new(), (0, 0));
        for chunk in roi_chunks(rois, self.rows_per_buffer(per_roi)) {
            let parts = chunk.iter().map(|(i, r)| self.bbox_roi_features(&features[*i], &rois[*i][r.clone()])).collect();
            let (c, d) = self.model.roi_head.bbox_head.forward(cat(parts));
            widths = (c.dims()[1], d.dims()[1]);
            cls.extend(read_f32(c, "box head")?);
            reg.extend(read_f32(d, "box head")?);
        }
        let (classes, deltas) = widths;
        let mut start = 0;
        let mut out = Vec::with_capacity(metas.len());
        for (r, meta) in rois.iter().zip(metas) {
            let (c, d) = (&cls[start * classes..(start + r.len()) * classes], &reg[start * deltas..(start + r.len()) * deltas]);
            out.push(detect_boxes(r, c, d, &self.config.model.roi, &self.config.test.rcnn, meta.img_shape));
            start += r.len();
        }
        Ok(out)
    }

    /// How many RoIs (or images) of `bytes_per_row` fit one GPU buffer: wgpu caps a storage buffer binding, at
    /// 128 MiB by WebGPU's default (lavapipe's limit too), so the heads and batches are split to stay under it;
    /// unlimited on flex.
    fn rows_per_buffer(&self, bytes_per_row: usize) -> usize {
        const MAX_GPU_BUFFER: usize = 128 << 20;
        if self.device == Device::flex() { usize::MAX } else { (MAX_GPU_BUFFER / bytes_per_row.max(1)).max(1) }
    }

    /// Mask logits of each detection's own class: `[N, 28, 28]` (device).
    pub fn mask_logits(&self, features: &RoiFeatures, dets: &BoxDetections) -> Tensor<3> {
        self.model.roi_head.mask_head.forward_own_class(self.mask_roi_features(features, &dets.boxes), &dets.labels)
    }

    /// Masks pasted into the original image, boxes rescaled to it: the final detections (one image).
    pub fn finish(&self, features: &RoiFeatures, dets: BoxDetections, meta: &ImageMeta) -> Result<Detections> {
        Ok(self.finish_batch(std::slice::from_ref(features), vec![dets], &[meta])?.remove(0))
    }

    /// The mask head on every image's detections (in chunks that fit one GPU buffer), then each image's paste.
    fn finish_batch(&self, features: &[RoiFeatures], dets: Vec<BoxDetections>, metas: &[&ImageMeta]) -> Result<Vec<Detections>> {
        let boxes: Vec<&[BBox]> = dets.iter().map(|d| d.boxes.as_slice()).collect();
        // The largest activation per detection: the upsampled 256 x 28 x 28 map.
        let per_det = 256 * 28 * 28 * self.precision.dtype().size();
        let mut logits = Vec::new();
        for chunk in roi_chunks(&boxes, self.rows_per_buffer(per_det)) {
            let parts = chunk.iter().map(|(i, r)| self.mask_roi_features(&features[*i], &boxes[*i][r.clone()])).collect();
            let labels: Vec<usize> = chunk.iter().flat_map(|(i, r)| dets[*i].labels[r.clone()].iter().copied()).collect();
            logits.push(self.model.roi_head.mask_head.forward_own_class(cat(parts), &labels));
        }
        let mut logits = if logits.is_empty() { None } else { Some(cat(logits)) };
        let whole = dets.iter().filter(|d| !d.boxes.is_empty()).count() == 1;
        let mut start = 0;
        let mut out = Vec::with_capacity(dets.len());
        for (d, meta) in dets.into_iter().zip(metas) {
            let n = d.boxes.len();
            if n == 0 {
                let (height, width) = meta.ori_shape;
                out.push(Detections { image_width: width, image_height: height, items: Vec::new() });
                continue;
            }
            // One image with detections takes the whole tensor; several take their rows.
            let mine = match (whole, logits.as_ref()) {
                (true, _) => logits.take(),
                (false, Some(all)) => Some(all.clone().slice([start..start + n])),
                (false, None) => None,
            }
            .expect("logits exist where detections do");
            out.push(detector_postprocess(d, mine, meta, &self.config.dataset.classes, self.config.test.rcnn.mask_thr_binary)?);
            start += n;
        }
        Ok(out)
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
        let (mut out, timings) = self.predict_preprocessed(&[&self.preprocess(img)])?;
        Ok((out.remove(0), timings))
    }

    /// Detects objects in several images: images of the same padded input shape (mmdetection pads each image
    /// alone to a multiple of 32, and GroupNorm normalises each image over its own padded map) go through the
    /// network as one batch; proposals, RoIs and NMS stay per image. Each image's result is the one
    /// [`predict`](Self::predict) gives it alone (mmdetection's published AP was computed at batch size 1).
    pub fn predict_batch(&self, images: &[BgrImage]) -> Result<Vec<Detections>> {
        let pre: Vec<Preprocessed> = images.iter().map(|img| self.preprocess(img)).collect();
        let mut out: Vec<Option<Detections>> = vec![None; images.len()];
        let mut shapes: Vec<(usize, usize)> = pre.iter().map(|p| p.meta.pad_shape).collect();
        shapes.sort_unstable();
        shapes.dedup();
        for shape in shapes {
            let members: Vec<usize> = (0..pre.len()).filter(|&i| pre[i].meta.pad_shape == shape).collect();
            let batch: Vec<&Preprocessed> = members.iter().map(|&i| &pre[i]).collect();
            for (&i, d) in members.iter().zip(self.predict_preprocessed(&batch)?.0) {
                out[i] = Some(d);
            }
        }
        Ok(out.into_iter().map(|d| d.expect("every image is in one shape group")).collect())
    }

    /// The pipeline on preprocessed images that share one padded shape, as one batch, split where one GPU buffer
    /// could not hold the batch's backbone activations (the dataset runner's batches too); with the stage times
    /// summed over the parts.
    pub fn predict_preprocessed(&self, batch: &[&Preprocessed]) -> Result<(Vec<Detections>, StageTimings)> {
        // The backbone's largest activations (the stem's output, layer1's) are 256 x H/4 x W/4 per image.
        let Some(first) = batch.first() else { return self.predict_group(batch) };
        let per_image = 16 * first.meta.pad_shape.0 * first.meta.pad_shape.1 * self.precision.dtype().size();
        let (mut out, mut t) = (Vec::with_capacity(batch.len()), StageTimings::default());
        for part in batch.chunks(self.rows_per_buffer(per_image)) {
            let (dets, part_t) = self.predict_group(part)?;
            out.extend(dets);
            t += part_t;
        }
        Ok((out, t))
    }

    /// [`Detector::predict_preprocessed`] on a batch that fits the device's buffers.
    fn predict_group(&self, batch: &[&Preprocessed]) -> Result<(Vec<Detections>, StageTimings)> {
        let mut t = StageTimings::default();
        let mut clock = Instant::now();
        let mut lap = |slot: &mut Duration| {
            *slot = clock.elapsed();
            clock = Instant::now();
        };
        let metas: Vec<&ImageMeta> = batch.iter().map(|p| &p.meta).collect();
        let input = self.precision.cast(stack(batch, &self.device)?);
        lap(&mut t.preprocess);
        // C2..C5 go into the FPN by value, so each is freed after its lateral conv (`features` keeps them: +88 MB
        // of peak memory at 800x1216).
        let pyramid = self.model.neck.forward(self.model.backbone.forward(input));
        self.device.sync().map_err(|e| Error::backend("backbone", e))?;
        lap(&mut t.backbone_fpn);
        let props = self.proposals_batch(&pyramid, &metas)?;
        lap(&mut t.rpn);
        let features: Vec<RoiFeatures> = (0..batch.len()).map(|i| self.roi_features_of(&pyramid, i, batch.len())).collect();
        // Where RoIAlign runs on the host, `features` holds its own copies: the pyramid goes now, not after the heads.
        drop(pyramid);
        let rois: Vec<&[BBox]> = props.iter().map(|p| p.boxes.as_slice()).collect();
        let dets = self.detect_boxes_batch(&features, &rois, &metas)?;
        lap(&mut t.box_head);
        let out = self.finish_batch(&features, dets, &metas)?;
        lap(&mut t.mask_head);
        Ok((out, t))
    }
}

/// The network inputs of a batch as one `[N, 3, H, W]` tensor; every input must have the same padded shape.
fn stack(batch: &[&Preprocessed], device: &Device) -> Result<Tensor<4>> {
    let (h, w) = batch.first().map(|p| p.meta.pad_shape).ok_or_else(|| Error::backend("preprocess", "an empty batch"))?;
    if let Some(p) = batch.iter().find(|p| p.meta.pad_shape != (h, w)) {
        return Err(Error::backend("preprocess", format!("a batch mixes padded shapes {:?} and {:?}", (h, w), p.meta.pad_shape)));
    }
    if let [one] = batch {
        return Ok(one.to_tensor(device));
    }
    let values: Vec<f32> = batch.iter().flat_map(|p| p.input.iter().copied()).collect();
    Ok(Tensor::from_data(TensorData::new(values, [batch.len(), 3, h, w]), device))
}

/// The RoIs of every image (`rois[image]`) in chunks of at most `per_chunk`, in order: each chunk lists
/// `(image, range of its RoIs)`; images share a chunk when they fit.
fn roi_chunks(rois: &[&[BBox]], per_chunk: usize) -> Vec<Vec<(usize, std::ops::Range<usize>)>> {
    let (mut chunks, mut current, mut room) = (Vec::new(), Vec::new(), per_chunk);
    for (image, r) in rois.iter().enumerate() {
        let mut start = 0;
        while start < r.len() {
            let take = room.min(r.len() - start);
            current.push((image, start..start + take));
            (start, room) = (start + take, room - take);
            if room == 0 {
                chunks.push(std::mem::take(&mut current));
                room = per_chunk;
            }
        }
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

/// Tensors joined along dim 0 (one part is returned as it is).
fn cat<const D: usize>(mut parts: Vec<Tensor<D>>) -> Tensor<D> {
    if parts.len() == 1 { parts.remove(0) } else { Tensor::cat(parts, 0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roi_chunks_split_and_share_images_in_order() {
        let b = [0.0f32; 4];
        let (a, none, c) = (vec![b; 5], vec![], vec![b; 2]);
        let chunks = roi_chunks(&[&a, &none, &c], 3);
        assert_eq!(chunks, vec![vec![(0, 0..3)], vec![(0, 3..5), (2, 0..1)], vec![(2, 1..2)]]);
        assert_eq!(roi_chunks(&[&a], usize::MAX), vec![vec![(0, 0..5)]]);
        assert!(roi_chunks(&[&none], 4).is_empty());
    }
}
