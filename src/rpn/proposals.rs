//! mmdet `RPNHead.predict_by_feat` on the host: top-k per level, decode, drop empty boxes, NMS per level, top-k.

use super::anchors::{base_anchors, grid_anchors};
use crate::config::{RpnConfig, RpnTestConfig};
use crate::ops::{batched_nms, sigmoid};
use crate::structures::{BBox, DeltaCoder};

/// The RPN head's raw output for one level, read back to the host.
#[derive(Debug, Clone)]
pub struct RpnLevelOutput {
    /// Objectness logits `[A, H, W]`.
    pub cls: Vec<f32>,
    /// Deltas `[4A, H, W]`.
    pub reg: Vec<f32>,
    /// Height in pixels.
    pub height: usize,
    /// Width in pixels.
    pub width: usize,
}

/// Proposals in resized-image coordinates, by decreasing score.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Proposals {
    /// Boxes `[x1, y1, x2, y2]`.
    pub boxes: Vec<BBox>,
    /// Their scores.
    pub scores: Vec<f32>,
}

/// Turns the RPN outputs of P2..P6 into at most `max_per_img` proposals. `img_shape` is `(h, w)` unpadded.
pub fn proposals(levels: &[RpnLevelOutput], cfg: &RpnConfig, test: &RpnTestConfig, img_shape: (usize, usize)) -> Proposals {
    let a = cfg.anchor_ratios.len() * cfg.anchor_scales.len();
    let coder = DeltaCoder::new(cfg.target_stds, cfg.wh_ratio_clip, img_shape);
    let (mut boxes, mut scores, mut level_ids) = (Vec::new(), Vec::new(), Vec::new());
    for (lvl, (out, &stride)) in levels.iter().zip(&cfg.anchor_strides).enumerate() {
        let hw = out.height * out.width;
        // Flatten in (y, x, a) order: cls.permute(1, 2, 0).reshape(-1).
        let level_scores: Vec<f32> = (0..hw * a).map(|i| sigmoid(out.cls[(i % a) * hw + i / a])).collect();
        let mut order: Vec<usize> = (0..level_scores.len()).collect();
        if test.nms_pre > 0 && test.nms_pre < order.len() {
            order.sort_by(|&i, &j| level_scores[j].total_cmp(&level_scores[i]));
            order.truncate(test.nms_pre);
        }
        let anchors = grid_anchors(&base_anchors(stride, &cfg.anchor_ratios, &cfg.anchor_scales), stride, out.height, out.width);
        for i in order {
            let (pos, k) = (i / a, i % a);
            let delta: [f32; 4] = std::array::from_fn(|c| out.reg[(k * 4 + c) * hw + pos]);
            let b = coder.decode(&anchors[i], &delta);
            if b[2] - b[0] > test.min_bbox_size && b[3] - b[1] > test.min_bbox_size {
                boxes.push(b);
                scores.push(level_scores[i]);
                level_ids.push(lvl);
            }
        }
    }
    let mut keep = batched_nms(&boxes, &scores, &level_ids, test.nms_iou);
    keep.truncate(test.max_per_img);
    Proposals { boxes: keep.iter().map(|&i| boxes[i]).collect(), scores: keep.iter().map(|&i| scores[i]).collect() }
}
