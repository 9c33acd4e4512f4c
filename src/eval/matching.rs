//! Matching two detection lists (ours against a reference such as mmdetection's), for parity tests.
//!
//! Near-threshold decisions (score cut, NMS, top-k, mask pixels at 0.5) may flip on float noise, so lists are
//! compared by matching, not by index: same label, box IoU at least a bound, score within a tolerance.

use crate::structures::{BBox, box_iou};

/// The parts of a detection that matching looks at.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetRef {
    /// `[x1, y1, x2, y2]` in pixels.
    pub bbox: BBox,
    /// Confidence in [0, 1].
    pub score: f32,
    /// Class index.
    pub label: usize,
}

/// Greedy one-to-one matching: each reference detection, by decreasing score, takes the unmatched candidate of
/// the same label with the highest box IoU, if that IoU is `>= min_iou` and the scores differ by `<= max_score_diff`.
/// Returns `(reference index, candidate index)` pairs.
pub fn match_detections(reference: &[DetRef], candidates: &[DetRef], min_iou: f32, max_score_diff: f32) -> Vec<(usize, usize)> {
    let mut order: Vec<usize> = (0..reference.len()).collect();
    order.sort_by(|&a, &b| reference[b].score.total_cmp(&reference[a].score));
    let mut taken = vec![false; candidates.len()];
    let mut pairs = Vec::new();
    for r in order {
        let want = &reference[r];
        let best = candidates
            .iter()
            .enumerate()
            .filter(|(j, c)| !taken[*j] && c.label == want.label && (c.score - want.score).abs() <= max_score_diff)
            .map(|(j, c)| (j, box_iou(&want.bbox, &c.bbox)))
            .filter(|(_, iou)| *iou >= min_iou)
            .max_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((j, _)) = best {
            taken[j] = true;
            pairs.push((r, j));
        }
    }
    pairs
}

/// Pixel intersection and union of two same-sized 0/1 masks.
pub fn mask_overlap(a: &[u8], b: &[u8]) -> (u64, u64) {
    a.iter().zip(b).fold((0, 0), |(i, u), (x, y)| {
        let (x, y) = (*x != 0, *y != 0);
        (i + u64::from(x && y), u + u64::from(x || y))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(x: f32, score: f32, label: usize) -> DetRef {
        DetRef { bbox: [x, 0.0, x + 10.0, 10.0], score, label }
    }

    #[test]
    fn matching_needs_label_iou_and_score_and_is_one_to_one() {
        let reference = [det(0.0, 0.9, 1), det(0.5, 0.8, 1), det(100.0, 0.7, 2), det(200.0, 0.6, 3)];
        let ours = [det(0.2, 0.9, 1), det(100.0, 0.7, 5), det(200.0, 0.5, 3)];
        // The second reference cannot reuse ours[0]; label 2 vs 5 fails; 0.6 vs 0.5 fails the score bound.
        assert_eq!(match_detections(&reference, &ours, 0.9, 0.01), vec![(0, 0)]);
        assert_eq!(match_detections(&reference, &ours, 0.9, 0.2), vec![(0, 0), (3, 2)]);
        assert!(match_detections(&reference, &[], 0.5, 1.0).is_empty());
    }

    #[test]
    fn mask_overlap_counts_pixels() {
        assert_eq!(mask_overlap(&[1, 1, 0, 0], &[0, 1, 1, 0]), (1, 3));
        assert_eq!(mask_overlap(&[0, 0], &[0, 0]), (0, 0));
    }
}
