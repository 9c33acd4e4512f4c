//! mmdet `_do_paste_mask` on the CPU: each 28x28 mask is `grid_sample`d (bilinear, zero padding,
//! `align_corners=False`) onto the image pixels of its box plus one pixel, then thresholded with `>=`.
//! This host version is the reference (and the flex path); the GPU backends run the same arithmetic as a
//! kernel (`mask_paste_cube.rs`). Pixels outside the window sample below half the mask's value, so they can
//! never reach mmdet's 0.5 threshold: the window loses nothing against mmdet's full-image GPU paste.

use burn::tensor::{Device, Int, Tensor, TensorData};
use rayon::prelude::*;

use super::box_coder::BBox;
use super::mask_paste_cube::paste_masks_packed;
use crate::readback::{read_f32, read_u32};
use crate::error::{Error, Result};
use crate::output::Mask;

/// The CPU path's `skip_empty` window of `bbox`: its pixels plus one, clipped to the image, as
/// `[x0, y0, x1, y1)`.
pub fn paste_window(bbox: &BBox, image_width: usize, image_height: usize) -> [usize; 4] {
    let [bx0, by0, bx1, by1] = *bbox;
    let x0 = ((bx0.floor() - 1.0).max(0.0) as usize).min(image_width);
    let y0 = ((by0.floor() - 1.0).max(0.0) as usize).min(image_height);
    let x1 = ((bx1.ceil() + 1.0).min(image_width as f32).max(0.0) as usize).max(x0);
    let y1 = ((by1.ceil() + 1.0).min(image_height as f32).max(0.0) as usize).max(y0);
    [x0, y0, x1, y1]
}

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

/// The logistic function as the host paste applies it to mask logits.
pub fn sigmoid(v: f32) -> f32 {
    1.0 / (1.0 + (-v).exp())
}

/// Binary masks of `logits [N, M, M]` (device) pasted into an `image_width x image_height` image at `boxes`
/// (original-image pixels). On flex the logits are host memory and the host paste runs; on the GPU backends
/// the paste kernel (`mask_paste_cube.rs`) runs on the device and only the packed windows are read back.
pub fn paste_masks(logits: Tensor<3>, boxes: &[BBox], image_width: usize, image_height: usize, threshold: f32) -> Result<Vec<Mask>> {
    let [n, m, _] = logits.dims();
    if n != boxes.len() {
        return Err(Error::Backend { stage: "mask paste", message: format!("{n} masks for {} boxes", boxes.len()) });
    }
    if n == 0 {
        return Ok(Vec::new());
    }
    if logits.device() != Device::flex() {
        return paste_masks_on_device(logits, boxes, image_width, image_height, threshold);
    }
    let logits = read_f32(logits, "mask head")?;
    Ok(boxes
        .par_iter()
        .zip(logits.par_chunks(m * m))
        .map(|(b, l)| {
            let probs: Vec<f32> = l.iter().map(|v| sigmoid(*v)).collect();
            paste_mask(&probs, m, b, image_width, image_height, threshold)
        })
        .collect())
}

/// The GPU path: windows and their word offsets laid out on the host, the kernel fills the words, and the
/// packed bits are read back and unpacked into [`Mask`] windows.
fn paste_masks_on_device(logits: Tensor<3>, boxes: &[BBox], image_width: usize, image_height: usize, threshold: f32) -> Result<Vec<Mask>> {
    let device = logits.device();
    let windows: Vec<[usize; 4]> = boxes.iter().map(|b| paste_window(b, image_width, image_height)).collect();
    let words = |w: &[usize; 4]| ((w[2] - w[0]) * (w[3] - w[1])).div_ceil(32);
    let (mut table, mut total, mut widest) = (Vec::with_capacity(boxes.len() * 5), 0usize, 0usize);
    for w in &windows {
        table.extend([w[0], w[1], w[2] - w[0], w[3] - w[1], total].map(|v| v as i64));
        total += words(w);
        widest = widest.max(words(w));
    }
    if total > u32::MAX as usize {
        return Err(Error::Backend { stage: "mask paste", message: format!("{total} mask words exceed the kernel's u32 indexing") });
    }
    let mut masks: Vec<Mask> = windows
        .iter()
        .map(|&[x0, y0, x1, y1]| Mask { image_width, image_height, x0, y0, x1, y1, window: vec![0; (x1 - x0) * (y1 - y0)] })
        .collect();
    if total == 0 {
        return Ok(masks);
    }
    let coords: Vec<f32> = boxes.iter().flatten().copied().collect();
    let boxes = Tensor::<2>::from_data(TensorData::new(coords, [boxes.len(), 4]), &device);
    let table = Tensor::<2, Int>::from_data(TensorData::new(table, [windows.len(), 5]), &device);
    let packed = paste_masks_packed(logits, boxes, table, total, widest, threshold);
    let bits = read_u32(packed, "mask paste")?;
    let mut offset = 0;
    for mask in &mut masks {
        for (p, v) in mask.window.iter_mut().enumerate() {
            *v = ((bits[offset + p / 32] >> (p % 32)) & 1) as u8;
        }
        offset += mask.window.len().div_ceil(32);
    }
    Ok(masks)
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
