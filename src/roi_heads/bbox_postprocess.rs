//! mmdet `BBoxHead.predict_by_feat` + `multiclass_nms` on the host: softmax (background last), class-specific
//! decoding, `score > score_thr`, NMS per class, top `max_per_img`.

use crate::config::{RcnnTestConfig, RoiConfig};
use crate::ops::batched_nms;
use crate::structures::{BBox, DeltaCoder};

/// Final boxes in resized-image coordinates, by decreasing score.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BoxDetections {
    /// Boxes `[x1, y1, x2, y2]`.
    pub boxes: Vec<BBox>,
    /// Their scores.
    pub scores: Vec<f32>,
    /// Their class indices.
    pub labels: Vec<usize>,
}

/// torch's CPU softmax over the last dim: `exp(x - max) * (1 / sum)`.
fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|v| (v - max).exp()).collect();
    let inv = 1.0 / exps.iter().sum::<f32>();
    exps.into_iter().map(|e| e * inv).collect()
}

/// `cls`: `[N, C + 1]` logits, `deltas`: `[N, 4C]`, row-major; `rois`: the N proposals.
pub fn detect_boxes(rois: &[BBox], cls: &[f32], deltas: &[f32], cfg: &RoiConfig, test: &RcnnTestConfig, img_shape: (usize, usize)) -> BoxDetections {
    let n = rois.len();
    if n == 0 {
        return BoxDetections::default();
    }
    let classes = cls.len() / n - 1;
    let coder = DeltaCoder::new(cfg.target_stds, cfg.wh_ratio_clip, img_shape);
    let (mut boxes, mut scores, mut labels) = (Vec::new(), Vec::new(), Vec::new());
    // Candidates in (roi, class) order, as multiclass_nms flattens them.
    for (i, roi) in rois.iter().enumerate() {
        let probs = softmax(&cls[i * (classes + 1)..(i + 1) * (classes + 1)]);
        for (c, &p) in probs[..classes].iter().enumerate() {
            if p > test.score_thr {
                boxes.push(coder.decode(roi, &deltas[(i * classes + c) * 4..(i * classes + c + 1) * 4]));
                scores.push(p);
                labels.push(c);
            }
        }
    }
    let mut keep = batched_nms(&boxes, &scores, &labels, test.nms_iou);
    keep.truncate(test.max_per_img);
    BoxDetections {
        boxes: keep.iter().map(|&i| boxes[i]).collect(),
        scores: keep.iter().map(|&i| scores[i]).collect(),
        labels: keep.iter().map(|&i| labels[i]).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ModelConfig;

    #[test]
    fn background_is_the_last_logit_and_low_scores_are_dropped() {
        let config = ModelConfig::named("r50-2x").unwrap();
        let (cfg, test) = (config.model.roi, config.test.rcnn);
        let rois = [[10.0, 10.0, 50.0, 50.0]];
        let mut cls = vec![0.0f32; 81];
        cls[80] = 20.0; // background wins: nothing passes 0.05
        assert!(detect_boxes(&rois, &cls, &[0.0; 320], &cfg, &test, (100, 100)).boxes.is_empty());
        cls[80] = 0.0;
        cls[3] = 10.0;
        let d = detect_boxes(&rois, &cls, &[0.0; 320], &cfg, &test, (100, 100));
        assert_eq!(d.labels, vec![3]);
        assert_eq!(d.boxes, vec![[10.0, 10.0, 50.0, 50.0]]);
        assert!(d.scores[0] > 0.99);
    }
}
