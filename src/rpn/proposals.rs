//! mmdet `RPNHead.predict_by_feat` on the host, from each level's top-k anchors (`ops::top_k`): decode, drop
//! empty boxes, NMS per level, top-k.

use super::anchors::{base_anchors, grid_anchors};
use crate::config::{RpnConfig, RpnTestConfig};
use crate::ops::{TopAnchors, batched_nms};
use crate::structures::{BBox, DeltaCoder};

/// The anchors of one level that proposals are made from: the `nms_pre` best by objectness, with their deltas.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct LevelCandidates {
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

impl LevelCandidates {
    /// A level's chosen anchors ([`top_k_anchors`](crate::ops::top_k_anchors)) and its size.
    pub(super) fn new(anchors: TopAnchors, height: usize, width: usize) -> Self {
        let TopAnchors { index, score, delta } = anchors;
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

/// At most `max_per_img` proposals from each level's candidates of P2..P6: decode, drop empty boxes, NMS per level. `img_shape` is `(h, w)` unpadded.
pub(super) fn proposals(levels: &[LevelCandidates], cfg: &RpnConfig, test: &RpnTestConfig, img_shape: (usize, usize)) -> Proposals {
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
