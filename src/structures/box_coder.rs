//! mmdet `DeltaXYWHBBoxCoder.decode` (`delta2bbox`), in f32 with mmdetection's order of operations.

use super::BBox;

/// Decoding settings: de-normalisation stds (means are 0 in every published config), the dw/dh clamp and the
/// image the boxes are clipped to.
#[derive(Debug, Clone, Copy)]
pub struct DeltaCoder {
    /// De-normalisation stds of the deltas (means are 0).
    pub stds: [f32; 4],
    /// `|ln(wh_ratio_clip)|` as an f32, as torch's clamp sees it.
    pub max_ratio: f32,
    /// `(h, w)` of the resized, unpadded image: x is clipped to `[0, w]`, y to `[0, h]`.
    pub max_shape: (usize, usize),
}

impl DeltaCoder {
    /// A coder clipping to `max_shape` `(h, w)`; dw, dh clamped to `|ln(wh_ratio_clip)|`.
    pub fn new(stds: [f32; 4], wh_ratio_clip: f64, max_shape: (usize, usize)) -> Self {
        Self { stds, max_ratio: wh_ratio_clip.ln().abs() as f32, max_shape }
    }

    /// Applies `delta` to `roi`: no +1 in widths, dw/dh clamped on both sides, clipped to the image.
    pub fn decode(&self, roi: &BBox, delta: &[f32]) -> BBox {
        let s = &self.stds;
        let (dx, dy) = (delta[0] * s[0] + 0.0, delta[1] * s[1] + 0.0);
        let dw = (delta[2] * s[2] + 0.0).clamp(-self.max_ratio, self.max_ratio);
        let dh = (delta[3] * s[3] + 0.0).clamp(-self.max_ratio, self.max_ratio);
        let (px, py) = ((roi[0] + roi[2]) * 0.5, (roi[1] + roi[3]) * 0.5);
        let (pw, ph) = (roi[2] - roi[0], roi[3] - roi[1]);
        let (gx, gy) = (px + pw * dx, py + ph * dy);
        let (gw, gh) = (pw * dw.exp(), ph * dh.exp());
        let (w, h) = (self.max_shape.1 as f32, self.max_shape.0 as f32);
        [
            (gx - gw * 0.5).clamp(0.0, w),
            (gy - gh * 0.5).clamp(0.0, h),
            (gx + gw * 0.5).clamp(0.0, w),
            (gy + gh * 0.5).clamp(0.0, h),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_delta_is_identity_and_clamps_apply() {
        let c = DeltaCoder::new([0.1, 0.1, 0.2, 0.2], 0.016, (100, 200));
        assert_eq!(c.decode(&[10.0, 20.0, 50.0, 60.0], &[0.0; 4]), [10.0, 20.0, 50.0, 60.0]);
        // Clipped to the image.
        assert_eq!(c.decode(&[-5.0, -5.0, 250.0, 150.0], &[0.0; 4]), [0.0, 0.0, 200.0, 100.0]);
        // A huge dw is clamped to |ln 0.016| = 4.135: width 10 * e^4.135 = 625.
        let b = DeltaCoder::new([1.0; 4], 0.016, (10_000, 10_000)).decode(&[1000.0, 1000.0, 1010.0, 1010.0], &[0.0, 0.0, 50.0, -50.0]);
        assert!(((b[2] - b[0]) - 625.0).abs() < 0.1, "{b:?}");
        assert!(((b[3] - b[1]) - 0.16).abs() < 1e-3, "{b:?}");
    }
}
