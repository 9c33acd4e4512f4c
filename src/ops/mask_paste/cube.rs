//! The mask paste as a CubeCL kernel for the GPU backends: the arithmetic of the host reference ([`super::host`]:
//! sigmoid, `grid_sample` bilinear with zero padding, `>=` threshold) on the device, so only
//! the binary windows come back, packed 32 pixels to a `u32` (a 100-detection image reads back tens of KB).
//!
//! Each detection owns a window (its box plus one pixel, clipped to the image, computed on the host where the
//! boxes already are) and a run of output words starting at `first_word`; one invocation fills one word.

use burn::backend::cubecl::dtype_to_storage_type;
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Backend, Dispatch, backend_extension};
use burn::tensor::{DType, Int, Shape, Tensor, TensorData};
use burn_cubecl::CubeBackend;

use crate::ops::launch;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_dtype;
use cubecl::{CubeCount, CubeDim};

use super::PasteTarget;
use crate::error::{Error, Result};
use crate::ops::readback::read_u32;
use crate::structures::Mask;

#[backend_extension(Cube, Fusion)]
pub trait MaskPasteOps: Backend {
    /// `logits [N, M, M]`, `boxes [N, 4]` (f32, image pixels), `windows [N, 5]` (`x0, y0, width, height,
    /// first_word`) -> `[total_words]` u32 words, bit `b` of word `first_word + k` = window pixel `32k + b`
    /// (row-major) at or above `threshold` after the sigmoid.
    #[fusion(dtype = DType::U32, shape = Shape::from(vec![*total_words as usize]))]
    fn paste_masks(
        logits: FloatTensor<Self>,
        boxes: FloatTensor<Self>,
        windows: IntTensor<Self>,
        total_words: u32,
        max_window_words: u32,
        threshold: f32,
    ) -> IntTensor<Self>;
}

/// wgpu allows at most 65535 cubes along an axis: detections are launched in chunks of that many.
const MAX_CUBES: usize = 65535;
const UNITS: u32 = 256;

mod kernel {
    use cubecl::prelude::*;

    /// torch's `grid_sample` tap of the sigmoid of `logits` (one `m x m` plane at `base`), zero outside.
    #[cube]
    fn tap<F: Float>(logits: &Tensor<F>, base: usize, m: u32, xi: f32, yi: f32) -> f32 {
        let size = f32::cast_from(m);
        let mut p = 0.0f32;
        if xi > -1.0f32 && xi < size && yi > -1.0f32 && yi < size {
            let v = f32::cast_from(logits[base + (u32::cast_from(yi) * m + u32::cast_from(xi)) as usize]);
            p = 1.0f32 / (1.0f32 + f32::exp(-v));
        }
        p
    }

    /// Pixel centre `p` of box side `[lo, hi)` in unnormalised mask coordinates, through the normalised
    /// `grid_sample` value as the host computes it. An empty side (`hi == lo`) gives an infinite normalised value,
    /// which mmdet maps to the centre (0), or 0/0 for the pixel at `lo`: NaN, which samples zero, so it goes
    /// far outside the mask.
    #[cube]
    fn mask_coord(p: u32, lo: f32, hi: f32, half: f32) -> f32 {
        let num = f32::cast_from(p) + 0.5f32 - lo;
        let den = hi - lo;
        let mut g = 0.0f32;
        if den != 0.0f32 {
            g = num / den * 2.0f32 - 1.0f32;
        }
        let mut c = (g + 1.0f32) * half - 0.5f32;
        if den == 0.0f32 && num == 0.0f32 {
            c = -1.0e30f32;
        }
        c
    }

    #[cube(launch)]
    pub fn paste_masks_kernel<F: Float, I: Int>(
        logits: &Tensor<F>,
        boxes: &Tensor<f32>,
        windows: &Tensor<I>,
        out: &mut Tensor<u32>,
        first_det: u32,
        threshold: f32,
        #[define(F)] _float: ElemType,
        #[define(I)] _int: ElemType,
    ) {
        let det = (first_det + CUBE_POS_Y) as usize;
        let m = u32::cast_from(logits.shape(1));
        let half = f32::cast_from(m) * 0.5f32;
        let base = det * (m * m) as usize;
        let x0 = u32::cast_from(windows[det * 5]);
        let y0 = u32::cast_from(windows[det * 5 + 1]);
        let width = u32::cast_from(windows[det * 5 + 2]);
        let height = u32::cast_from(windows[det * 5 + 3]);
        let first_word = u32::cast_from(windows[det * 5 + 4]);
        let (bx0, by0, bx1, by1) = (boxes[det * 4], boxes[det * 4 + 1], boxes[det * 4 + 2], boxes[det * 4 + 3]);
        let pixels = width * height;
        let words = (pixels + 31) / 32;
        let step = CUBE_COUNT_X * CUBE_DIM_X;
        for word in range_stepped(CUBE_POS_X * CUBE_DIM_X + UNIT_POS_X, words, step) {
            let mut bits = 0u32;
            for b in 0..32u32 {
                let p = word * 32 + b;
                if p < pixels {
                    let x = mask_coord(x0 + p % width, bx0, bx1, half);
                    let y = mask_coord(y0 + p / width, by0, by1, half);
                    let (xw, yn) = (f32::floor(x), f32::floor(y));
                    let (w, n) = (x - xw, y - yn);
                    let (e, s) = (1.0f32 - w, 1.0f32 - n);
                    let v = tap::<F>(logits, base, m, xw, yn) * (s * e)
                        + tap::<F>(logits, base, m, xw + 1.0f32, yn) * (s * w)
                        + tap::<F>(logits, base, m, xw, yn + 1.0f32) * (n * e)
                        + tap::<F>(logits, base, m, xw + 1.0f32, yn + 1.0f32) * (n * w);
                    if v >= threshold {
                        bits |= 1u32 << b;
                    }
                }
            }
            out[(first_word + word) as usize] = bits;
        }
    }
}

impl MaskPasteOps for CubeBackend {
    fn paste_masks(
        logits: FloatTensor<Self>,
        boxes: FloatTensor<Self>,
        windows: IntTensor<Self>,
        total_words: u32,
        max_window_words: u32,
        threshold: f32,
    ) -> IntTensor<Self> {
        let (logits, boxes, windows) = (into_contiguous(logits), into_contiguous(boxes), into_contiguous(windows));
        let out = empty_device_dtype(logits.client.clone(), logits.device.clone(), Shape::from(vec![total_words as usize]), DType::U32);
        let dets = logits.meta.shape()[0];
        if total_words == 0 || dets == 0 {
            return out;
        }
        // A word per unit across the largest window (units loop where the axis limit caps the cubes).
        let cubes_x = (max_window_words.div_ceil(UNITS) as usize).clamp(1, MAX_CUBES) as u32;
        let (fdt, idt) = (logits.dtype, windows.dtype);
        for first in (0..dets).step_by(MAX_CUBES) {
            let chunk = (dets - first).min(MAX_CUBES) as u32;
            launch::counted();
            kernel::paste_masks_kernel::launch(
                &out.client,
                CubeCount::new_2d(cubes_x, chunk),
                CubeDim::new_1d(UNITS),
                logits.clone().into_tensor_arg(),
                boxes.clone().into_tensor_arg(),
                windows.clone().into_tensor_arg(),
                out.clone().into_tensor_arg(),
                first as u32,
                threshold,
                dtype_to_storage_type(fdt),
                dtype_to_storage_type(idt),
            );
        }
        out
    }
}

/// [`MaskPasteOps::paste_masks`] on Burn tensors.
pub fn paste_masks_packed(
    logits: Tensor<3>,
    boxes: Tensor<2>,
    windows: Tensor<2, Int>,
    total_words: usize,
    max_window_words: usize,
    threshold: f32,
) -> Tensor<1, Int> {
    Tensor::from_dispatch(<Dispatch as MaskPasteOps>::paste_masks(
        logits.into_dispatch(),
        boxes.into_dispatch(),
        windows.into_dispatch(),
        total_words as u32,
        max_window_words as u32,
        threshold,
    ))
}

/// The GPU path: windows and their word offsets laid out on the host, the kernel fills the words (every image's
/// detections in one pass), and the packed bits are read back and unpacked into [`Mask`] windows.
pub(super) fn paste_masks_on_device(logits: Tensor<3>, targets: &[PasteTarget], threshold: f32) -> Result<Vec<Mask>> {
    let device = logits.device();
    let windows: Vec<[usize; 4]> = targets.iter().map(PasteTarget::window).collect();
    let words = |w: &[usize; 4]| ((w[2] - w[0]) * (w[3] - w[1])).div_ceil(32);
    let (mut table, mut total, mut widest) = (Vec::with_capacity(targets.len() * 5), 0usize, 0usize);
    for w in &windows {
        table.extend([w[0], w[1], w[2] - w[0], w[3] - w[1], total].map(|v| v as i64));
        total += words(w);
        widest = widest.max(words(w));
    }
    if total > u32::MAX as usize {
        return Err(Error::invalid_argument(format!("{total} mask words exceed the paste kernel's u32 indexing: paste fewer detections at once")));
    }
    let mut masks: Vec<Mask> = windows
        .iter()
        .zip(targets)
        .map(|(&[x0, y0, x1, y1], t)| Mask {
            image_width: t.image_width,
            image_height: t.image_height,
            x0,
            y0,
            x1,
            y1,
            window: vec![0; (x1 - x0) * (y1 - y0)],
        })
        .collect();
    if total == 0 {
        return Ok(masks);
    }
    let coords: Vec<f32> = targets.iter().flat_map(|t| t.bbox).collect();
    let boxes = Tensor::<2>::from_data(TensorData::new(coords, [targets.len(), 4]), &device);
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
