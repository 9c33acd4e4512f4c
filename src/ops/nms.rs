//! Non-maximum suppression exactly as mmcv's CPU `nms` and `batched_nms` (the code that made the fixtures).
//!
//! Written here rather than taken from `burn::vision::Nms` because the decisions must match mmcv bit for bit:
//! [`box_iou`] (areas without +1, f32, mmcv's order of operations), suppression when strictly above the
//! threshold, and `batched_nms`'s coordinate offsets per class (which shift boxes in f32 and so round).

use crate::structures::{BBox, box_iou};

/// Above this many boxes mmcv's `batched_nms` runs one NMS per class instead of offsetting boxes.
const SPLIT_THR: usize = 10_000;

/// Indices of the kept boxes, by decreasing score.
pub fn nms(boxes: &[BBox], scores: &[f32], iou_thr: f32) -> Vec<usize> {
    let mut order: Vec<usize> = (0..boxes.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut suppressed = vec![false; boxes.len()];
    let mut keep = Vec::new();
    for (oi, &i) in order.iter().enumerate() {
        if suppressed[i] {
            continue;
        }
        keep.push(i);
        let bi = &boxes[i];
        for &j in &order[oi + 1..] {
            if suppressed[j] {
                continue;
            }
            if box_iou(bi, &boxes[j]) > iou_thr {
                suppressed[j] = true;
            }
        }
    }
    keep
}

/// NMS within each group (`idxs`: RPN level or class), mmcv's `batched_nms`; indices by decreasing score.
pub fn batched_nms(boxes: &[BBox], scores: &[f32], idxs: &[usize], iou_thr: f32) -> Vec<usize> {
    if boxes.is_empty() {
        return Vec::new();
    }
    // Shift each group by idx * (max coordinate + 1) so groups cannot overlap.
    let max_coordinate = boxes.iter().flatten().copied().fold(f32::NEG_INFINITY, f32::max);
    let shifted: Vec<BBox> = boxes
        .iter()
        .zip(idxs)
        .map(|(b, &g)| {
            let off = g as f32 * (max_coordinate + 1.0);
            [b[0] + off, b[1] + off, b[2] + off, b[3] + off]
        })
        .collect();
    if boxes.len() < SPLIT_THR && !offsets_separate_groups(boxes, idxs, max_coordinate) {
        return nms(&shifted, scores, iou_thr);
    }
    // One NMS per group on the shifted boxes: the same IoUs within a group, and (see `offsets_separate_groups`,
    // or mmcv's own split above SPLIT_THR) none across groups, so the same decisions for far fewer pairs (the
    // RPN's ~4700 proposals are 5 levels of <= 1000).
    let mut groups: Vec<usize> = idxs.to_vec();
    groups.sort_unstable();
    groups.dedup();
    let mut keep = Vec::new();
    for g in groups {
        let members: Vec<usize> = (0..boxes.len()).filter(|&i| idxs[i] == g).collect();
        let b: Vec<BBox> = members.iter().map(|&i| shifted[i]).collect();
        let s: Vec<f32> = members.iter().map(|&i| scores[i]).collect();
        keep.extend(nms(&b, &s, iou_thr).into_iter().map(|k| members[k]));
    }
    // Kept indices in index order, then sorted by score (stable for ties).
    keep.sort_unstable();
    keep.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    keep
}

/// Whether the offset boxes of different groups provably never intersect, so that NMS per group decides as the
/// single offset NMS does: no coordinate is negative, and the offsets are small enough for f32 to keep the
/// `max_coordinate + 1` gap between groups (rounding is monotone; ulp below 0.5 under 2^22). Then box `i` of
/// group g ends at or before `g (max + 1) + max` and box `j` of group h > g starts at or after `h (max + 1)`:
/// their intersection is empty and their IoU 0, which never suppresses.
fn offsets_separate_groups(boxes: &[BBox], idxs: &[usize], max_coordinate: f32) -> bool {
    let min_coordinate = boxes.iter().flatten().copied().fold(f32::INFINITY, f32::min);
    let groups = idxs.iter().copied().max().unwrap_or(0) as f64 + 1.0;
    min_coordinate >= 0.0 && groups * (max_coordinate as f64 + 1.0) < (1u64 << 22) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suppresses_strictly_above_threshold() {
        let boxes = [[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 5.0], [20.0, 20.0, 30.0, 30.0]];
        // IoU of the first two is exactly 0.5: kept at threshold 0.5, suppressed below.
        assert_eq!(nms(&boxes, &[0.9, 0.8, 0.7], 0.5), vec![0, 1, 2]);
        assert_eq!(nms(&boxes, &[0.9, 0.8, 0.7], 0.49), vec![0, 2]);
        assert_eq!(nms(&boxes, &[0.1, 0.8, 0.7], 0.49), vec![1, 2]);
        assert!(nms(&[], &[], 0.5).is_empty());
    }

    #[test]
    fn groups_do_not_suppress_each_other() {
        let boxes = [[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0]];
        assert_eq!(batched_nms(&boxes, &[0.5, 0.9, 0.7], &[0, 1, 0], 0.5), vec![1, 2]);
    }

    #[test]
    fn per_group_path_equals_one_offset_nms() {
        // Groups whose boxes overlap in image space (the offsets separate them), with equal scores across groups.
        let n = 3000;
        let boxes: Vec<BBox> = (0..n)
            .map(|i| {
                let x = (i % 37) as f32 * 2.5;
                let y = (i / 37 % 11) as f32 * 3.0;
                [x, y, x + 6.0 + (i % 5) as f32, y + 5.0 + (i % 3) as f32]
            })
            .collect();
        let scores: Vec<f32> = (0..n).map(|i| ((i * 7919) % 101) as f32 / 101.0).collect();
        let idxs: Vec<usize> = (0..n).map(|i| (i * 31) % 5).collect();
        assert!(offsets_separate_groups(&boxes, &idxs, 200.0));
        let max_coordinate = boxes.iter().flatten().copied().fold(f32::NEG_INFINITY, f32::max);
        let shifted: Vec<BBox> = boxes.iter().zip(&idxs).map(|(b, &g)| b.map(|v| v + g as f32 * (max_coordinate + 1.0))).collect();
        let one = nms(&shifted, &scores, 0.5);
        assert_eq!(batched_nms(&boxes, &scores, &idxs, 0.5), one);
        assert!(one.len() > 100 && one.len() < n);
        // A negative coordinate keeps the single offset NMS (and its result).
        let mut negative = boxes.clone();
        negative[0][0] = -1.0;
        assert!(!offsets_separate_groups(&negative, &idxs, max_coordinate));
    }

    #[test]
    fn split_path_equals_offset_path_on_separable_groups() {
        // 10 000+ boxes take the per-group loop; it must agree with the single offset NMS.
        let n = SPLIT_THR + 10;
        let boxes: Vec<BBox> = (0..n)
            .map(|i| {
                let x = (i % 97) as f32 * 3.0;
                let y = (i / 97 % 13) as f32 * 2.0;
                [x, y, x + 8.0 + (i % 5) as f32, y + 6.0 + (i % 7) as f32]
            })
            .collect();
        let scores: Vec<f32> = (0..n).map(|i| ((i * 7919) % 10007) as f32 / 10007.0).collect();
        let idxs: Vec<usize> = (0..n).map(|i| i % 4).collect();
        let split = batched_nms(&boxes, &scores, &idxs, 0.5);
        let mut one = Vec::new();
        for g in 0..4 {
            let m: Vec<usize> = (0..n).filter(|&i| idxs[i] == g).collect();
            let b: Vec<BBox> = m.iter().map(|&i| boxes[i]).collect();
            let s: Vec<f32> = m.iter().map(|&i| scores[i]).collect();
            one.extend(nms(&b, &s, 0.5).into_iter().map(|k| m[k]));
        }
        let (mut split_sorted, mut one_sorted) = (split.clone(), one);
        split_sorted.sort_unstable();
        one_sorted.sort_unstable();
        assert_eq!(split_sorted, one_sorted);
        assert!(split.len() > 100);
        assert!(split.windows(2).all(|w| scores[w[0]] >= scores[w[1]]));
    }
}
