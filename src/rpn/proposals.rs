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

impl RpnLevelOutput {
    /// The level's [`top_anchors`] with their deltas gathered from `reg`.
    pub fn candidates(&self, anchors_per_location: usize, nms_pre: usize) -> LevelCandidates {
        let (a, hw) = (anchors_per_location, self.height * self.width);
        let (index, score) = top_anchors(&self.cls, a, nms_pre);
        let delta = index.iter().map(|&i| std::array::from_fn(|c| self.reg[((i % a) * 4 + c) * hw + i / a])).collect();
        LevelCandidates { index, score, delta, height: self.height, width: self.width }
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

/// Turns the RPN outputs of P2..P6 into at most `max_per_img` proposals. `img_shape` is `(h, w)` unpadded.
pub fn proposals(levels: &[RpnLevelOutput], cfg: &RpnConfig, test: &RpnTestConfig, img_shape: (usize, usize)) -> Proposals {
    let a = cfg.anchor_ratios.len() * cfg.anchor_scales.len();
    let candidates: Vec<LevelCandidates> = levels.iter().map(|l| l.candidates(a, test.nms_pre)).collect();
    proposals_from_candidates(&candidates, cfg, test, img_shape)
}

/// [`proposals`] from each level's candidates (chosen on the host from every logit, wherever the deltas were
/// gathered): decode, drop empty boxes, NMS per level, keep `max_per_img`.
pub fn proposals_from_candidates(levels: &[LevelCandidates], cfg: &RpnConfig, test: &RpnTestConfig, img_shape: (usize, usize)) -> Proposals {
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
