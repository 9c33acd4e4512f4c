//! mmdet's `_do_paste_mask`: each 28x28 mask is `grid_sample`d (bilinear, zero padding, `align_corners=False`)
//! onto the image pixels of its box plus one pixel, then thresholded with `>=`. The host reference ([`host`]) is
//! the flex path; the GPU backends run the same arithmetic as a kernel (`cube`) and read back only packed bits.
//! Pixels outside the window sample below half the mask's value, so they can never reach mmdet's 0.5 threshold:
//! the window loses nothing against mmdet's full-image GPU paste.

mod cube;
pub mod host;

use burn::tensor::Tensor;

use super::dispatch::{Impl, Op, implementation};
use crate::error::{Error, Result};
use crate::structures::{BBox, Mask};

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

/// Where one detection's mask goes: its box in its image's pixels and that image's size (detections of a batch
/// go to different images).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PasteTarget {
    /// `[x1, y1, x2, y2]` in the image's pixels.
    pub bbox: BBox,
    /// The image's width.
    pub image_width: usize,
    /// The image's height.
    pub image_height: usize,
}

impl PasteTarget {
    /// The CPU path's window of this target ([`paste_window`]).
    pub fn window(&self) -> [usize; 4] {
        paste_window(&self.bbox, self.image_width, self.image_height)
    }
}

/// Binary masks of `logits [N, M, M]` (device) pasted at `targets` (every image of a batch at once): on flex the
/// host paste, on the GPU backends one paste kernel for the batch, which reads back only the packed windows.
pub fn paste_masks(logits: Tensor<3>, targets: &[PasteTarget], threshold: f32) -> Result<Vec<Mask>> {
    let [n, ..] = logits.dims();
    if n != targets.len() {
        return Err(Error::internal("mask paste", format!("{n} masks for {} boxes", targets.len())));
    }
    if n == 0 {
        return Ok(Vec::new());
    }
    match implementation(Op::MaskPaste, &logits.device(), logits.dtype()) {
        Impl::Cube => cube::paste_masks_on_device(logits, targets, threshold),
        _ => host::paste_masks(logits, targets, threshold),
    }
}
