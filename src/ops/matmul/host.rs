//! The mask head's 2x2, stride-2 transposed conv on host buffers: output windows do not overlap, so per RoI
//! it is one GEMM `[4K x C] x [C x HW]` (rows `(k, dy, dx)`) whose rows are then scattered to their pixels, or
//! (fused with the ReLU and the RoI's own-class 1x1 conv) projected to one logit map while still in cache.
//! RoIs run in parallel, each GEMM on one thread (the `gemm` crate flex itself uses).

use std::cell::RefCell;

use gemm::{Parallelism, gemm};
use rayon::prelude::*;

thread_local! {
    /// Each worker's `[4K, HW]` GEMM result, kept between RoIs and calls.
    static ROWS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// `x: [N, C, H, W]` through a transposed conv with `weight: [C, K, 2, 2]` (PyTorch's layout), stride 2, no
/// padding, plus an optional bias: `[N, K, 2H, 2W]`.
pub fn conv_transpose_2x2(x: &[f32], [n, c, h, w]: [usize; 4], weight: &[f32], k: usize, bias: Option<&[f32]>) -> Vec<f32> {
    let pixels = h * w;
    assert_eq!(x.len(), n * c * pixels);
    let mut out = vec![0f32; n * k * 4 * pixels];
    if out.is_empty() {
        return out;
    }
    out.par_chunks_mut(k * 4 * pixels).zip(x.par_chunks(c * pixels)).for_each(|(dst, image)| {
        with_rows(image, [c, h, w], weight, k, |rows| {
            for ki in 0..k {
                let b = bias.map_or(0.0, |b| b[ki]);
                let plane = &mut dst[ki * 4 * pixels..][..4 * pixels];
                for (tap, src) in rows[ki * 4 * pixels..][..4 * pixels].chunks_exact(pixels).enumerate() {
                    scatter_tap(src, tap, w, plane, |v| v + b);
                }
            }
        });
    });
    out
}

/// The mask head's transposed conv, its ReLU and each RoI's own 1x1 projection in one pass per RoI:
/// `out[n, oy, ox] = project_bias[n] + sum_k project[n, k] * relu(deconv(x)[n, k, oy, ox])`, `[N, 2H, 2W]`,
/// with `project: [N, K]`. The `[N, K, 2H, 2W]` map (80 MB for 100 RoIs) is never written: each RoI's GEMM
/// result is projected while it is in cache.
pub fn conv_transpose_2x2_relu_project(
    x: &[f32],
    [n, c, h, w]: [usize; 4],
    (weight, k, bias): (&[f32], usize, Option<&[f32]>),
    project: &[f32],
    project_bias: Option<&[f32]>,
) -> Vec<f32> {
    let pixels = h * w;
    assert_eq!(x.len(), n * c * pixels);
    assert_eq!(project.len(), n * k, "one projection row per RoI");
    assert!(project_bias.is_none_or(|b| b.len() == n), "one projection bias per RoI");
    let mut out = vec![0f32; n * 4 * pixels];
    if out.is_empty() {
        return out;
    }
    out.par_chunks_mut(4 * pixels).zip(x.par_chunks(c * pixels)).enumerate().for_each(|(ni, (dst, image))| {
        with_rows(image, [c, h, w], weight, k, |rows| {
            // Per tap, the projected sum over K, pixel by pixel (vectorised over the HW pixels).
            let mut acc = vec![0f32; 4 * pixels];
            for (ki, &p) in project[ni * k..][..k].iter().enumerate() {
                let b = bias.map_or(0.0, |b| b[ki]);
                for (a, r) in acc.iter_mut().zip(&rows[ki * 4 * pixels..][..4 * pixels]) {
                    *a += p * (r + b).max(0.0);
                }
            }
            let pb = project_bias.map_or(0.0, |pb| pb[ni]);
            for (tap, src) in acc.chunks_exact(pixels).enumerate() {
                scatter_tap(src, tap, w, dst, |v| v + pb);
            }
        });
    });
    out
}

/// `f` on one RoI's `[4K, HW]` GEMM result, rows `(k, dy, dx)`: `weight` read as `4K x C` times the RoI's
/// `C x HW` input, in this worker's kept buffer.
fn with_rows(image: &[f32], [c, h, w]: [usize; 3], weight: &[f32], k: usize, f: impl FnOnce(&[f32])) {
    let pixels = h * w;
    assert_eq!(image.len(), c * pixels);
    assert_eq!(weight.len(), c * k * 4);
    ROWS.with_borrow_mut(|rows| {
        rows.resize(4 * k * pixels, 0.0);
        // SAFETY: rows is 4K x HW (row stride HW); lhs is the weight read as 4K x C (element (r, ci) at
        // ci * 4K + r: row stride 1, column stride 4K); rhs is this RoI's C x HW input (row stride HW): every
        // index lies inside the three slices (asserted above).
        unsafe {
            gemm(
                4 * k, pixels, c, rows.as_mut_ptr(), 1, pixels as isize, false, weight.as_ptr(), (4 * k) as isize, 1,
                image.as_ptr(), 1, pixels as isize, 0.0, 1.0, false, false, false, Parallelism::None,
            );
        }
        f(rows);
    });
}

/// Tap `(dy, dx) = (tap / 2, tap % 2)` of a `[H, W]` map to its pixels of a `[2H, 2W]` plane, through `f`.
fn scatter_tap(src: &[f32], tap: usize, w: usize, plane: &mut [f32], f: impl Fn(f32) -> f32) {
    let (dy, dx) = (tap / 2, tap % 2);
    for (y, line) in src.chunks_exact(w).enumerate() {
        let out_row = &mut plane[(2 * y + dy) * 2 * w..][..2 * w];
        for (xx, &v) in line.iter().enumerate() {
            out_row[2 * xx + dx] = f(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_definition() {
        let ([n, c, h, w], k) = ([3, 5, 4, 6], 7);
        let val = |i: usize| ((i * 7919) % 113) as f32 / 56.0 - 1.0;
        let x: Vec<f32> = (0..n * c * h * w).map(val).collect();
        let weight: Vec<f32> = (0..c * k * 4).map(|i| val(i + 5)).collect();
        let bias: Vec<f32> = (0..k).map(|i| val(i + 11)).collect();
        let got = conv_transpose_2x2(&x, [n, c, h, w], &weight, k, Some(&bias));
        for ni in 0..n {
            for ki in 0..k {
                for oy in 0..2 * h {
                    for ox in 0..2 * w {
                        // out[n, k, oy, ox] = b[k] + sum_c x[n, c, oy / 2, ox / 2] * weight[c, k, oy % 2, ox % 2]
                        let mut want = bias[ki] as f64;
                        for ci in 0..c {
                            want += x[((ni * c + ci) * h + oy / 2) * w + ox / 2] as f64
                                * weight[((ci * k + ki) * 2 + oy % 2) * 2 + ox % 2] as f64;
                        }
                        let v = got[((ni * k + ki) * 2 * h + oy) * 2 * w + ox];
                        assert!((v as f64 - want).abs() < 1e-5, "({ni}, {ki}, {oy}, {ox}): {v} vs {want}");
                    }
                }
            }
        }
        // The fused pass equals the projection of the ReLU of that output, RoI by RoI.
        let project: Vec<f32> = (0..n * k).map(|i| val(i + 17)).collect();
        let project_bias: Vec<f32> = (0..n).map(|i| val(i + 23)).collect();
        let fused = conv_transpose_2x2_relu_project(&x, [n, c, h, w], (&weight, k, Some(&bias)), &project, Some(&project_bias));
        assert_eq!(fused.len(), n * 4 * h * w);
        for ni in 0..n {
            for p in 0..4 * h * w {
                let want = project_bias[ni] as f64
                    + (0..k).map(|ki| project[ni * k + ki] as f64 * (got[(ni * k + ki) * 4 * h * w + p] as f64).max(0.0)).sum::<f64>();
                let v = fused[ni * 4 * h * w + p];
                assert!((v as f64 - want).abs() < 1e-5, "({ni}, {p}): {v} vs {want}");
            }
        }
        assert!(conv_transpose_2x2_relu_project(&[], [0, c, h, w], (&weight, k, None), &[], None).is_empty());
    }
}
