//! mmdet `AnchorGenerator` (scales `[8]`, ratios `[0.5, 1, 2]`, strides 4..64): float anchors centred on grid points.

use crate::structures::BBox;

/// The `A` base anchors of one level, ratio-major, in f32 as torch computes them.
pub(super) fn base_anchors(stride: usize, ratios: &[f32], scales: &[f32]) -> Vec<BBox> {
    let size = stride as f32;
    let mut out = Vec::with_capacity(ratios.len() * scales.len());
    for &r in ratios {
        let h_ratio = r.sqrt();
        let w_ratio = 1.0 / h_ratio;
        for &s in scales {
            let (ws, hs) = (size * w_ratio * s, size * h_ratio * s);
            out.push([-0.5 * ws, -0.5 * hs, 0.5 * ws, 0.5 * hs]);
        }
    }
    out
}

/// Anchors of a `height x width` feature map, ordered (y, x, a) with the anchor index fastest, matching
/// `cls_score.permute(1, 2, 0).reshape(-1)`.
pub(super) fn grid_anchors(base: &[BBox], stride: usize, height: usize, width: usize) -> Vec<BBox> {
    let mut out = Vec::with_capacity(height * width * base.len());
    for y in 0..height {
        let sy = (y * stride) as f32;
        for x in 0..width {
            let sx = (x * stride) as f32;
            out.extend(base.iter().map(|b| [b[0] + sx, b[1] + sy, b[2] + sx, b[3] + sy]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_anchor_sizes_follow_mmdet() {
        let a = base_anchors(4, &[0.5, 1.0, 2.0], &[8.0]);
        assert_eq!(a[1], [-16.0, -16.0, 16.0, 16.0]);
        // ratio 0.5: h = 32 * sqrt(0.5), w = 32 / sqrt(0.5)
        assert!((a[0][2] - a[0][0] - 45.254834).abs() < 1e-4 && (a[0][3] - a[0][1] - 22.627417).abs() < 1e-4);
        let g = grid_anchors(&a, 4, 2, 3);
        assert_eq!(g.len(), 18);
        assert_eq!(g[3 * 4 + 1], [-16.0 + 4.0, -16.0 + 4.0, 16.0 + 4.0, 16.0 + 4.0]); // y=1, x=1, a=1
    }
}
