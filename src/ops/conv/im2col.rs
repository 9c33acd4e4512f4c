//! Convolutions that are not Winograd's shape (the 7x7 stem, 1x1 convs, the stride-2 3x3 convs) as GEMMs on
//! host buffers: `out[K, pixels] = W[K, C kh kw] x col[C kh kw, pixels]`, where `col` holds each output
//! pixel's receptive field (im2col). A 1x1 stride-1 conv multiplies the input itself. Output pixels are split
//! into blocks computed in parallel, each with its own `col` of a few MiB (the stem's whole `col` would be 143
//! MB at 800x1216), one single-threaded GEMM each (the `gemm` crate flex itself uses). A grouped conv
//! (ResNeXt's 32 groups of 4-32 channels) builds one group's rows of `col` at a time, one GEMM each.

use std::cell::RefCell;

use gemm::{Parallelism, gemm};
use rayon::prelude::*;

use super::SharedMut;

/// Geometry of one convolution: `[K, C, kh, kw]` filters, stride, padding `(top, left)`, input `[N, C, H, W]`.
#[derive(Debug, Clone, Copy)]
pub struct ConvShape {
    /// Input `[N, C, H, W]`.
    pub input: [usize; 4],
    /// Output channels.
    pub k: usize,
    /// Kernel `(kh, kw)`.
    pub kernel: [usize; 2],
    /// Stride `(sh, sw)`.
    pub stride: [usize; 2],
    /// Padding `(top, left, bottom, right)`.
    pub padding: [usize; 4],
    /// Input channels and filters split into this many independent groups (1: a dense conv).
    pub groups: usize,
}

impl ConvShape {
    /// `(OH, OW)`.
    pub fn output_hw(&self) -> [usize; 2] {
        let [_, _, h, w] = self.input;
        let [top, left, bottom, right] = self.padding;
        [(h + top + bottom - self.kernel[0]) / self.stride[0] + 1, (w + left + right - self.kernel[1]) / self.stride[1] + 1]
    }

    /// Whether the input is the GEMM operand as it is (1x1, stride 1, no padding).
    fn pointwise(&self) -> bool {
        self.kernel == [1, 1] && self.stride == [1, 1] && self.padding == [0; 4] && self.groups == 1
    }
}

thread_local! {
    /// Each worker's `col` block, kept between blocks and calls.
    static COL: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// `x: [N, C, H, W]` (contiguous) convolved with `weight: [K, C / groups, kh, kw]`, plus an optional bias:
/// `[N, K, OH, OW]`. Zero padding, no dilation.
pub fn conv2d(x: &[f32], weight: &[f32], bias: Option<&[f32]>, s: ConvShape) -> Vec<f32> {
    let [n, c, h, w] = s.input;
    let [kh, kw] = s.kernel;
    let rows = c * kh * kw;
    assert!(s.groups > 0 && c % s.groups == 0 && s.k % s.groups == 0, "{s:?}: groups must divide C and K");
    assert_eq!(x.len(), n * c * h * w);
    assert_eq!(weight.len(), s.k * rows / s.groups);
    let [oh, ow] = s.output_hw();
    let pixels = oh * ow;
    // Columns per block: `col` within ~2 MiB (an L2), at least 256 for the GEMM, and enough blocks for every thread.
    // A grouped conv builds one group's rows at a time, so its blocks can be wider (a stage-1 ResNeXt conv 2x
    // faster with 4096 columns than with 455), kept to 4 per thread for the balance (stage 3, 3800 pixels).
    let blocks_per_thread = if s.groups == 1 { 2 } else { 4 };
    let min_blocks = blocks_per_thread * rayon::current_num_threads();
    let per_block = ((1usize << 19) / (rows / s.groups)).clamp(256, 4096).min(pixels.div_ceil(min_blocks).max(64));
    let blocks_per_image = pixels.div_ceil(per_block);
    let len = n * s.k * pixels;
    // Not zeroed: the GEMMs write every element (they do not read the destination: `read_dst` false) before the
    // bias reads it, all through raw pointers; the length is set once all are written.
    let mut out: Vec<f32> = Vec::with_capacity(len);
    let shared = SharedMut(out.as_mut_ptr());
    if s.pointwise() {
        pointwise(x, weight, bias, s, shared);
        // SAFETY: capacity `len`; each image's GEMM wrote its K x pixels block, together all `len` elements.
        unsafe { out.set_len(len) };
        return out;
    }
    (0..n * blocks_per_image).into_par_iter().for_each(|b| {
        let (ni, first) = (b / blocks_per_image, (b % blocks_per_image) * per_block);
        let count = per_block.min(pixels - first);
        let image = &x[ni * c * h * w..][..c * h * w];
        COL.with_borrow_mut(|col| {
            let dst = shared.get().wrapping_add(ni * s.k * pixels + first);
            if s.groups > 1 {
                grouped_gemms(image, weight, col, s, first, count, pixels, dst);
            } else {
                col.resize(rows * count, 0.0);
                im2col(image, s, 0..c, first, count, col);
                // SAFETY: dst is the K x count block of image ni's [K, pixels] output starting at column `first`
                // (row stride `pixels`, unit column stride): inside `out`, and written by this block only (blocks
                // cover disjoint (image, pixel range) pairs). lhs is the K x rows weight (row stride rows); rhs is
                // this thread's rows x count `col` (row stride count).
                unsafe {
                    gemm(
                        s.k, count, rows, dst, 1, pixels as isize, false, weight.as_ptr(), 1, rows as isize,
                        col.as_ptr(), 1, count as isize, 0.0, 1.0, false, false, false, Parallelism::None,
                    );
                }
            }
        });
        if let Some(bias) = bias {
            for (ki, b) in bias.iter().enumerate() {
                for p in first..first + count {
                    // SAFETY: as for the GEMM: this block's own output elements.
                    unsafe { *shared.get().add((ni * s.k + ki) * pixels + p) += b };
                }
            }
        }
    });
    // SAFETY: capacity `len`; the blocks cover every (image, pixel) and each GEMM wrote all K rows of its block.
    unsafe { out.set_len(len) };
    out
}

/// A 1x1 stride-1 conv: per image one GEMM on the input as it is, threaded by the GEMM itself (it splits
/// a large problem better than fixed blocks: measured 175 against 132 GFLOP/s).
fn pointwise(x: &[f32], weight: &[f32], bias: Option<&[f32]>, s: ConvShape, out: SharedMut) {
    let [n, c, h, w] = s.input;
    let pixels = h * w;
    for (ni, image) in x.chunks_exact(c * pixels).enumerate().take(n) {
        let dst = SharedMut(out.get().wrapping_add(ni * s.k * pixels));
        // SAFETY: dst is image ni's K x pixels block of the N*K*pixels output (row stride pixels), weight K x C
        // (row stride C), image C x pixels (row stride pixels), all with unit column strides.
        unsafe {
            gemm(
                s.k, pixels, c, dst.get(), 1, pixels as isize, false, weight.as_ptr(), 1, c as isize,
                image.as_ptr(), 1, pixels as isize, 0.0, 1.0, false, false, false, Parallelism::Rayon(0),
            );
        }
        if let Some(bias) = bias {
            (0..s.k).into_par_iter().for_each(|ki| {
                for p in 0..pixels {
                    // SAFETY: row ki of the block just written; each row is updated by one task only.
                    unsafe { *dst.get().add(ki * pixels + p) += bias[ki] };
                }
            });
        }
    }
}

/// Each group's `out[g] = W[g] x col[g]` for one block, its `col[g]` built just before (so it is still in cache),
/// computed transposed (`out[g]^T = col[g]^T x W[g]^T`): a group has only 4-32 filters, too few rows for the
/// GEMM's 64-row tiles, while the block's pixels fill them.
#[allow(clippy::too_many_arguments)]
fn grouped_gemms(image: &[f32], weight: &[f32], col: &mut Vec<f32>, s: ConvShape, first: usize, count: usize, pixels: usize, dst: *mut f32) {
    let cg = s.input[1] / s.groups;
    let (kg, rows_g) = (s.k / s.groups, cg * s.kernel[0] * s.kernel[1]);
    col.resize(rows_g * count, 0.0);
    for g in 0..s.groups {
        im2col(image, s, g * cg..(g + 1) * cg, first, count, col);
        // SAFETY: dst (the caller's block: column `first` of image ni's [K, pixels] output, inside `out` and
        // written by this block only) offset by group g's first filter row stays inside that block: the count x kg
        // result is written at rows g*kg..(g+1)*kg (column stride `pixels` between filters, unit stride between
        // pixels). lhs is `col` (group g's rows) read as count x rows_g (unit stride between pixels, `count`
        // between rows); rhs is group g's filters, [kg, rows_g] row-major, read as rows_g x kg.
        unsafe {
            gemm(
                count, kg, rows_g, dst.add(g * kg * pixels), pixels as isize, 1, false,
                col.as_ptr(), count as isize, 1, weight.as_ptr().add(g * kg * rows_g),
                rows_g as isize, 1, 0.0, 1.0, false, false, false, Parallelism::None,
            );
        }
    }
}

/// `col[(ci - channels.start, dy, dx), p]` = channel ci's input under tap (dy, dx) of output pixel `first + p`,
/// zero in the padding.
fn im2col(image: &[f32], s: ConvShape, channels: std::ops::Range<usize>, first: usize, count: usize, col: &mut [f32]) {
    let [_, _, h, w] = s.input;
    let [kh, kw] = s.kernel;
    let [sh, sw] = s.stride;
    let [top, left, ..] = s.padding;
    let ow = s.output_hw()[1];
    for (row, ci) in channels.enumerate() {
        let plane = &image[ci * h * w..][..h * w];
        for dy in 0..kh {
            for dx in 0..kw {
                let dst = &mut col[((row * kh + dy) * kw + dx) * count..][..count];
                let mut p = first;
                // One output row at a time: the interior of a row is a strided copy without bounds tests.
                while p < first + count {
                    let (oy, ox0) = (p / ow, p % ow);
                    let run = (ow - ox0).min(first + count - p);
                    let out = &mut dst[p - first..][..run];
                    let iy = (oy * sh + dy).wrapping_sub(top);
                    if iy >= h {
                        out.fill(0.0);
                    } else {
                        // Output columns [lo, hi) read inside the line (ix = ox * sw + dx - left in 0..w); the
                        // rest is padding.
                        let line = &plane[iy * w..][..w];
                        let lo = left.saturating_sub(dx).div_ceil(sw).clamp(ox0, ox0 + run);
                        let hi = (w + left).saturating_sub(dx).div_ceil(sw).clamp(lo, ox0 + run);
                        out[..lo - ox0].fill(0.0);
                        out[hi - ox0..].fill(0.0);
                        if hi > lo {
                            let first_ix = lo * sw + dx - left;
                            let inside = &mut out[lo - ox0..hi - ox0];
                            if sw == 1 {
                                inside.copy_from_slice(&line[first_ix..][..hi - lo]);
                            } else {
                                for (o, v) in inside.iter_mut().zip(line[first_ix..].iter().step_by(sw)) {
                                    *o = *v;
                                }
                            }
                        }
                    }
                    p += run;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct correlation in f64.
    fn direct(x: &[f32], weight: &[f32], bias: &[f32], s: ConvShape) -> Vec<f32> {
        let [n, c, h, w] = s.input;
        let [kh, kw] = s.kernel;
        let [oh, ow] = s.output_hw();
        let mut out = vec![0f32; n * s.k * oh * ow];
        for ni in 0..n {
            for ki in 0..s.k {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut sum = bias[ki] as f64;
                        let (cg, kg) = (c / s.groups, s.k / s.groups);
                        for ci in ki / kg * cg..(ki / kg + 1) * cg {
                            for dy in 0..kh {
                                for dx in 0..kw {
                                    let iy = (oy * s.stride[0] + dy).wrapping_sub(s.padding[0]);
                                    let ix = (ox * s.stride[1] + dx).wrapping_sub(s.padding[1]);
                                    if iy < h && ix < w {
                                        let wi = ((ki * cg + ci % cg) * kh + dy) * kw + dx;
                                        sum += x[((ni * c + ci) * h + iy) * w + ix] as f64 * weight[wi] as f64;
                                    }
                                }
                            }
                        }
                        out[((ni * s.k + ki) * oh + oy) * ow + ox] = sum as f32;
                    }
                }
            }
        }
        out
    }

    #[test]
    fn matches_direct_convolution() {
        // The stem, a strided 3x3, a strided and a plain 1x1, odd sizes, several images, many blocks; grouped 3x3
        // convs (ResNeXt's, plain and strided) and a grouped 1x1.
        let cases = [
            ([1, 3, 23, 30], 8, [7, 7], [2, 2], [3, 3, 3, 3], 1),
            ([2, 6, 11, 9], 5, [3, 3], [2, 2], [1, 1, 1, 1], 1),
            ([2, 16, 9, 13], 7, [1, 1], [2, 2], [0; 4], 1),
            ([3, 20, 40, 37], 9, [1, 1], [1, 1], [0; 4], 1),
            ([1, 4, 5, 6], 3, [3, 2], [1, 2], [1, 0, 2, 1], 1),
            ([2, 32, 30, 27], 32, [3, 3], [1, 1], [1, 1, 1, 1], 8),
            ([1, 24, 17, 22], 12, [3, 3], [2, 2], [1, 1, 1, 1], 4),
            ([1, 12, 9, 8], 6, [1, 1], [1, 1], [0; 4], 3),
        ];
        for (input, k, kernel, stride, padding, groups) in cases {
            let s = ConvShape { input, k, kernel, stride, padding, groups };
            let [n, c, h, w] = input;
            let mut seed = 99u64;
            let mut rnd = || {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((seed >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
            };
            let x: Vec<f32> = (0..n * c * h * w).map(|_| rnd()).collect();
            let weight: Vec<f32> = (0..k * c / groups * kernel[0] * kernel[1]).map(|_| rnd()).collect();
            let bias: Vec<f32> = (0..k).map(|_| rnd()).collect();
            let expect = direct(&x, &weight, &bias, s);
            let got = conv2d(&x, &weight, Some(&bias), s);
            assert_eq!(got.len(), expect.len());
            let max = got.iter().zip(&expect).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(max < 1e-4, "{s:?}: max diff {max}");
        }
    }
}
