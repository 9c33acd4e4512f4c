//! The host reference: every logit and delta read back (free on flex), the stable sort, the gather.

use std::cmp::Ordering;

use burn::tensor::Tensor;

use super::TopAnchors;
use crate::error::Result;
use crate::ops::readback::read_f32;
use crate::ops::sigmoid;

/// The anchors of one level's logits `[A, H, W]` that proposals are made from, with their scores: the `k` best
/// by a stable sort (ties keep index order), or all of them in index order when there are no more.
pub fn top_anchors(cls: &[f32], anchors_per_location: usize, k: usize) -> (Vec<usize>, Vec<f32>) {
    let a = anchors_per_location;
    if a == 0 {
        return (Vec::new(), Vec::new());
    }
    let hw = cls.len() / a;
    let scores: Vec<f32> = (0..hw * a).map(|i| sigmoid(cls[(i % a) * hw + i / a])).collect();
    let mut order: Vec<usize> = (0..scores.len()).collect();
    if k > 0 && k < order.len() {
        // The comparison is a total order (ties broken by index), so selecting the k best first and sorting only
        // them gives exactly the full sort's first k (182,400 logits on P2 at 800x1216, k = 1000).
        let by = |&i: &usize, &j: &usize| by_score(scores[i], i, scores[j], j);
        order.select_nth_unstable_by(k - 1, by);
        order.truncate(k);
        order.sort_unstable_by(by);
    }
    let picked = order.iter().map(|&i| scores[i]).collect();
    (order, picked)
}

/// The order of the choice: higher score first (`total_cmp`), then lower index, which is what a stable sort by
/// decreasing score gives.
pub(super) fn by_score(score_i: f32, i: usize, score_j: f32, j: usize) -> Ordering {
    score_j.total_cmp(&score_i).then(i.cmp(&j))
}

/// Reads every logit and delta and chooses on the host.
pub(super) fn top_k_anchors(cls: Tensor<4>, reg: Tensor<4>, k: usize) -> Result<Vec<TopAnchors>> {
    let [n, a, h, w] = cls.dims();
    let hw = h * w;
    let (cls, reg) = (read_f32(cls, "rpn")?, read_f32(reg, "rpn")?);
    let (cls_len, reg_len) = (a * hw, 4 * a * hw);
    Ok((0..n)
        .map(|i| {
            let (cls, reg) = (&cls[i * cls_len..(i + 1) * cls_len], &reg[i * reg_len..(i + 1) * reg_len]);
            let (index, score) = top_anchors(cls, a, k);
            let delta = index.iter().map(|&i| std::array::from_fn(|c| reg[((i % a) * 4 + c) * hw + i / a])).collect();
            TopAnchors { index, score, delta }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_equals_a_stable_sort() {
        // Logits on a coarse grid and saturated ones: many equal scores, whose order must be the index order.
        let (a, hw) = (3, 2000);
        let cls: Vec<f32> = (0..a * hw).map(|i| if i % 13 == 0 { 20.0 + (i % 7) as f32 } else { ((i * 7919) % 61) as f32 / 4.0 - 7.5 }).collect();
        let scores: Vec<f32> = (0..a * hw).map(|i| sigmoid(cls[(i % a) * hw + i / a])).collect();
        let mut stable: Vec<usize> = (0..scores.len()).collect();
        stable.sort_by(|&i, &j| scores[j].total_cmp(&scores[i]));
        for k in [1, 7, 460, 1000, a * hw - 1, a * hw, a * hw + 5] {
            let (index, score) = top_anchors(&cls, a, k);
            let want = &stable[..k.min(a * hw)];
            if k < a * hw {
                assert_eq!(index, want, "k {k}");
            } else {
                assert_eq!(index, (0..a * hw).collect::<Vec<_>>(), "k {k}: every anchor in index order");
            }
            assert!(index.iter().zip(&score).all(|(&i, &s)| s.to_bits() == scores[i].to_bits()));
        }
    }
}
