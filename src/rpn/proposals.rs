//! mmdet `RPNHead.predict_by_feat` on the host: top-k per level, decode, drop empty boxes, NMS per level, top-k.

use super::anchors::{base_anchors, grid_anchors};
use crate::config::{RpnConfig, RpnTestConfig};
use crate::ops::{batched_nms, sigmoid};
use crate::structures::{BBox, DeltaCoder};

/// The anchors of one level that proposals are made from: the `nms_pre` best by objectness, with their deltas.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LevelCandidates {
    /// Flat anchor indices in `(y, x, a)` order (mmdet's `cls.permute(1, 2, 0).reshape(-1)`).
    pub index: Vec<usize>,
    /// Their objectness (sigmoid of the logit).
    pub score: Vec<f32>,
    /// Their deltas `[dx, dy, dw, dh]`.
    pub delta: Vec<[f32; 4]>,
    /// The level's height in pixels.
    pub height: usize,
    /// The level's width in pixels.
    pub width: usize,
}

/// The anchors of one level's logits `[A, H, W]` that proposals are made from, with their scores: the `nms_pre`
/// best by a stable sort (ties keep index order), or all of them in index order when there are no more.
pub fn top_anchors(cls: &[f32], anchors_per_location: usize, nms_pre: usize) -> (Vec<usize>, Vec<f32>) {
    let a = anchors_per_location;
    if a == 0 {
        return (Vec::new(), Vec::new());
    }
    let hw = cls.len() / a;
    let scores: Vec<f32> = (0..hw * a).map(|i| sigmoid(cls[(i % a) * hw + i / a])).collect();
    let mut order: Vec<usize> = (0..scores.len()).collect();
    if nms_pre > 0 && nms_pre < order.len() {
        order.sort_by(|&i, &j| scores[j].total_cmp(&scores[i]));
        order.truncate(nms_pre);
    }
    let picked = order.iter().map(|&i| scores[i]).collect();
    (order, picked)
}

impl LevelCandidates {
    /// A level's [`top_anchors`] with their deltas gathered on the host from `reg` (`[4A, H, W]`, one image).
    pub fn gather(cls: &[f32], reg: &[f32], anchors_per_location: usize, height: usize, width: usize, nms_pre: usize) -> Self {
        let (a, hw) = (anchors_per_location, height * width);
        let (index, score) = top_anchors(cls, a, nms_pre);
        let delta = index.iter().map(|&i| std::array::from_fn(|c| reg[((i % a) * 4 + c) * hw + i / a])).collect();
        Self { index, score, delta, height, width }
    }
}

/// Proposals in resized-image coordinates, by decreasing score.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Proposals {
    /// Boxes `[x1, y1, x2, y2]`.
    pub boxes: Vec<BBox>,
    /// Their scores.
    pub scores: Vec<f32>,
}

/// At most `max_per_img` proposals from each level's candidates of P2..P6 (chosen on the host from every logit,
/// wherever the deltas were gathered): decode, drop empty boxes, NMS per level. `img_shape` is `(h, w)` unpadded.
pub fn proposals(levels: &[LevelCandidates], cfg: &RpnConfig, test: &RpnTestConfig, img_shape: (usize, usize)) -> Proposals {
    let coder = DeltaCoder::new(cfg.target_stds, cfg.wh_ratio_clip, img_shape);
    let (mut boxes, mut scores, mut level_ids) = (Vec::new(), Vec::new(), Vec::new());
    for (lvl, (level, &stride)) in levels.iter().zip(&cfg.anchor_strides).enumerate() {
        let anchors = grid_anchors(&base_anchors(stride, &cfg.anchor_ratios, &cfg.anchor_scales), stride, level.height, level.width);
        for ((&i, &score), delta) in level.index.iter().zip(&level.score).zip(&level.delta) {
            let b = coder.decode(&anchors[i], delta);
            if b[2] - b[0] > test.min_bbox_size && b[3] - b[1] > test.min_bbox_size {
                boxes.push(b);
                scores.push(score);
                level_ids.push(lvl);
            }
        }
    }
    let mut keep = batched_nms(&boxes, &scores, &level_ids, test.nms_iou);
    keep.truncate(test.max_per_img);
    Proposals { boxes: keep.iter().map(|&i| boxes[i]).collect(), scores: keep.iter().map(|&i| scores[i]).collect() }
}
