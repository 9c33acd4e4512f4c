//! The RPN's choice of anchors per level: the `k` best by objectness (sigmoid of the logit, a stable sort, so
//! ties keep index order, as mmdet's `scores.sort(descending=True)` on the CPU) with their deltas.
//!
//! On flex (`host`) every logit is host memory already and the choice is that sort. On a GPU (`cube`) a radix
//! select finds the k-th largest logit on the device and only the anchors that can tie with it or beat it come
//! back, with their deltas; the host then sorts them with the same comparison, so the choice is identical to the
//! host's while an 800x1216 image reads ~110 KB instead of every logit (~1 MB).

mod cube;
mod host;

use burn::tensor::Tensor;

use super::dispatch::{Impl, Op, implementation};
use crate::error::Result;


/// One image's chosen anchors of one level, by decreasing score (index order when the level has at most `k`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TopAnchors {
    /// Flat anchor indices in `(y, x, a)` order (mmdet's `cls.permute(1, 2, 0).reshape(-1)`).
    pub index: Vec<usize>,
    /// Their objectness (sigmoid of the logit, computed on the host).
    pub score: Vec<f32>,
    /// Their deltas `[dx, dy, dw, dh]`.
    pub delta: Vec<[f32; 4]>,
}

/// Each image's `k` best anchors of one level from its logits `[N, A, H, W]` and deltas `[N, 4A, H, W]`, with
/// their deltas (all anchors, in index order, when a level has no more than `k`).
pub fn top_k_anchors(cls: Tensor<4>, reg: Tensor<4>, k: usize) -> Result<Vec<TopAnchors>> {
    match implementation(Op::RpnTopK, &cls.device(), cls.dtype()) {
        Impl::Cube => cube::top_k_anchors(cls, reg, k),
        _ => host::top_k_anchors(cls, reg, k),
    }
}
