//! Boxes rescaled to the original image, masks pasted there and thresholded, class names attached.

use burn::tensor::Tensor;

use crate::error::Result;
use crate::ops::paste_masks;
use crate::output::{Detection, Detections};
use crate::preprocess::ImageMeta;
use crate::roi_heads::BoxDetections;
use crate::structures::BBox;

/// The final detections of one image from its box detections (resized-image coordinates) and each one's mask
/// logits `[N, M, M]` (device): boxes divided by mmdetection's separate x/y scale factors, masks pasted at the
/// original resolution with `mask_thr`, labels named by `classes`.
pub fn detector_postprocess(dets: BoxDetections, mask_logits: Tensor<3>, meta: &ImageMeta, classes: &[String], mask_thr: f32) -> Result<Detections> {
    let (height, width) = meta.ori_shape;
    let (sx, sy) = (meta.scale_factor.0 as f32, meta.scale_factor.1 as f32);
    let boxes: Vec<BBox> = dets.boxes.iter().map(|b| [b[0] / sx, b[1] / sy, b[2] / sx, b[3] / sy]).collect();
    let masks = paste_masks(mask_logits, &boxes, width, height, mask_thr)?;
    let items = boxes
        .into_iter()
        .zip(masks)
        .zip(dets.scores.into_iter().zip(dets.labels))
        .map(|((bbox, mask), (score, label))| Detection { bbox, score, label, class_name: classes[label].clone(), mask })
        .collect();
    Ok(Detections { image_width: width, image_height: height, items })
}
