//! Boxes rescaled to each original image, every image's masks pasted there in one pass and thresholded, class
//! names attached.

use crate::error::Result;
use crate::ops::{PasteTarget, paste_masks};
use crate::output::{Detection, Detections};
use crate::preprocess::ImageMeta;
use crate::roi_heads::RoiOutput;
use crate::structures::BBox;

/// Each image's final detections from the RoI heads' output for a batch (`metas[i]`: image `i`'s): boxes divided
/// by mmdetection's separate x/y scale factors, masks pasted at the original resolution with `mask_thr`, labels
/// named by `classes`.
pub fn detector_postprocess(out: RoiOutput, metas: &[ImageMeta], classes: &[String], mask_thr: f32) -> Result<Vec<Detections>> {
    let mut targets = Vec::new();
    for (dets, meta) in out.detections.iter().zip(metas) {
        let (height, width) = meta.ori_shape;
        let (sx, sy) = (meta.scale_factor.0 as f32, meta.scale_factor.1 as f32);
        let rescale = |b: &BBox| [b[0] / sx, b[1] / sy, b[2] / sx, b[3] / sy];
        targets.extend(dets.boxes.iter().map(|b| PasteTarget { bbox: rescale(b), image_width: width, image_height: height }));
    }
    let mut masks = paste_masks(out.mask_logits, &targets, mask_thr)?.into_iter().zip(targets);
    let name = |label: usize| classes.get(label).cloned().unwrap_or_else(|| format!("class_{label}"));
    Ok(out
        .detections
        .into_iter()
        .zip(metas)
        .map(|(dets, meta)| {
            let (image_height, image_width) = meta.ori_shape;
            let items = dets
                .scores
                .into_iter()
                .zip(dets.labels)
                .zip(masks.by_ref())
                .map(|((score, label), (mask, target))| Detection { bbox: target.bbox, score, label, class_name: name(label), mask })
                .collect();
            Detections { image_width, image_height, items }
        })
        .collect())
}
