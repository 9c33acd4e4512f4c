//! The host paste (mmdet's CPU path): the reference the kernel is checked against, and the flex path.

use burn::tensor::Tensor;
use rayon::prelude::*;

use super::{PasteTarget, paste_window};
use crate::error::Result;
use crate::ops::readback::read_f32;
use crate::ops::sigmoid;
use crate::structures::{BBox, Mask};

/// The pasted probability of every pixel of `window` (row-major), from one `m x m` mask of probabilities.
pub fn paste_probabilities(probs: &[f32], m: usize, bbox: &BBox, window: [usize; 4]) -> Vec<f32> {
    let [bx0, by0, bx1, by1] = *bbox;
    let [x0, y0, x1, y1] = window;
    // Normalised sampling coordinates of pixel centres; an infinite one (empty box) becomes 0, as mmdet does.
    let normalise = |p: usize, lo: f32, hi: f32| {
        let v = (p as f32 + 0.5 - lo) / (hi - lo) * 2.0 - 1.0;
        if v.is_infinite() { 0.0 } else { v }
    };
    let gx: Vec<f32> = (x0..x1).map(|x| normalise(x, bx0, bx1)).collect();
    let gy: Vec<f32> = (y0..y1).map(|y| normalise(y, by0, by1)).collect();
    let half = m as f32 * 0.5;
    let mut out = Vec::with_capacity(gx.len() * gy.len());
    for &ny in &gy {
        for &nx in &gx {
            out.push(bilinear_zero_pad(probs, m, (nx + 1.0) * half - 0.5, (ny + 1.0) * half - 0.5));
        }
    }
    out
}

/// Pastes one mask of probabilities (`m x m`, after sigmoid) into an `image_width x image_height` image.
/// `bbox` is in original-image pixels.
pub fn paste_mask(probs: &[f32], m: usize, bbox: &BBox, image_width: usize, image_height: usize, threshold: f32) -> Mask {
    let [x0, y0, x1, y1] = paste_window(bbox, image_width, image_height);
    let window = paste_probabilities(probs, m, bbox, [x0, y0, x1, y1]).into_iter().map(|v| u8::from(v >= threshold)).collect();
    Mask { image_width, image_height, x0, y0, x1, y1, window }
}

/// Every detection's mask pasted on the host (the logits are read back: free on flex, whose memory is the host's).
pub(super) fn paste_masks(logits: Tensor<3>, targets: &[PasteTarget], threshold: f32) -> Result<Vec<Mask>> {
    let [_, m, _] = logits.dims();
    let logits = read_f32(logits, "mask head")?;
    Ok(targets
        .par_iter()
        .zip(logits.par_chunks(m * m))
        .map(|(t, l)| {
            let probs: Vec<f32> = l.iter().map(|v| sigmoid(*v)).collect();
            paste_mask(&probs, m, &t.bbox, t.image_width, t.image_height, threshold)
        })
        .collect())
}

/// torch's CPU `grid_sample` bilinear tap with zero padding at unnormalised `(x, y)`; NaN reads as 0.
fn bilinear_zero_pad(img: &[f32], m: usize, x: f32, y: f32) -> f32 {
    if !(x.is_finite() && y.is_finite()) {
        return 0.0;
    }
    let (xw, yn) = (x.floor(), y.floor());
    let (w, n) = (x - xw, y - yn);
    let (e, s) = (1.0 - w, 1.0 - n);
    let at = |xi: f32, yi: f32| -> f32 {
        if xi > -1.0 && xi < m as f32 && yi > -1.0 && yi < m as f32 { img[yi as usize * m + xi as usize] } else { 0.0 }
    };
    at(xw, yn) * (s * e) + at(xw + 1.0, yn) * (s * w) + at(xw, yn + 1.0) * (n * e) + at(xw + 1.0, yn + 1.0) * (n * w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_mask_fills_its_box() {
        let probs = vec![1.0f32; 28 * 28];
        let mask = paste_mask(&probs, 28, &[10.0, 20.0, 40.0, 30.0], 64, 48, 0.5);
        assert_eq!((mask.x0, mask.y0, mask.x1, mask.y1), (9, 19, 41, 31));
        // Pixel centres inside the box are 1; the border pixels sample half-outside (zero padding).
        assert!(mask.get(10, 20) && mask.get(39, 29));
        assert!(!mask.get(9, 25) && !mask.get(40, 25) && !mask.get(25, 30));
        assert_eq!(mask.area(), 30 * 10);
        assert_eq!(mask.to_dense().iter().filter(|v| **v == 1).count(), 300);
    }

    #[test]
    fn boxes_at_and_beyond_the_border_stay_inside_the_image() {
        let probs = vec![0.9f32; 28 * 28];
        let mask = paste_mask(&probs, 28, &[-5.0, -5.0, 70.0, 60.0], 64, 48, 0.5);
        assert_eq!((mask.x0, mask.y0, mask.x1, mask.y1), (0, 0, 64, 48));
        let empty = paste_mask(&probs, 28, &[5.0, 5.0, 5.0, 5.0], 64, 48, 0.5);
        assert!(empty.area() <= 9);
    }
}
