//! The ResNet stem's 3x3, stride-2, padding-1 max pool: on flex in f32 a host pass over the planes (Burn's
//! generic pooling took ~55 ms of a 2 s R-50 image on [1, 64, 400, 608]); elsewhere Burn's `max_pool2d`.

use burn::tensor::module::max_pool2d;
use burn::tensor::ops::MaxPoolOptions;
use burn::tensor::Tensor;
use rayon::prelude::*;

use super::dispatch::{Impl, Op, implementation};
use super::flex;

/// `F.max_pool2d(x, 3, stride=2, padding=1)` for `x: [N, C, H, W]`: `[N, C, (H - 1) / 2 + 1, (W - 1) / 2 + 1]`
/// (PyTorch's floor mode; padding never wins, and a NaN in a window is that window's maximum, as in PyTorch; an
/// empty map, which PyTorch refuses, gives an empty one).
pub fn max_pool_3x3_s2(x: Tensor<4>) -> Tensor<4> {
    if implementation(Op::MaxPool, &x.device(), x.dtype()) != Impl::Host {
        return max_pool2d(x, MaxPoolOptions::new([3, 3]).with_stride([2, 2]).with_padding([1, 1]));
    }
    let device = x.device();
    let [n, c, h, w] = x.dims();
    let (oh, ow) = (pooled(h), pooled(w));
    let values = flex::host_values(x);
    let mut out = vec![0f32; n * c * oh * ow];
    if oh * ow > 0 {
        out.par_chunks_mut(ow).enumerate().for_each_init(
            || vec![0f32; w],
            |column_max, (row, dst)| {
                let (plane, oy) = (row / oh, row % oh);
                let src = &values[plane * h * w..][..h * w];
                pool_row(src, w, oy, column_max, dst);
            },
        );
    }
    flex::from_host(out, [n, c, oh, ow], &device)
}

/// Output size of a 3-wide, stride-2 window with one padding on each side (0 for an empty input).
fn pooled(size: usize) -> usize {
    if size == 0 { 0 } else { (size - 1) / 2 + 1 }
}

/// The larger of two values, NaN winning (PyTorch's pooling propagates NaN).
#[inline(always)]
fn max_nan(a: f32, b: f32) -> f32 {
    if b > a || b.is_nan() { b } else { a }
}

/// Output row `oy` of one `[H, W]` plane (`plane.len() / w` rows): the maximum over input rows `2 oy - 1 ..=
/// 2 oy + 1` per column into `column_max`, then over columns `2 ox - 1 ..= 2 ox + 1`.
fn pool_row(plane: &[f32], w: usize, oy: usize, column_max: &mut [f32], dst: &mut [f32]) {
    let h = plane.len() / w;
    let rows = (2 * oy).saturating_sub(1)..(2 * oy + 2).min(h);
    column_max.copy_from_slice(&plane[rows.start * w..][..w]);
    for y in rows.start + 1..rows.end {
        for (m, &v) in column_max.iter_mut().zip(&plane[y * w..][..w]) {
            *m = max_nan(*m, v);
        }
    }
    for (ox, d) in dst.iter_mut().enumerate() {
        let cols = &column_max[(2 * ox).saturating_sub(1)..(2 * ox + 2).min(w)];
        *d = cols[1..].iter().fold(cols[0], |m, &v| max_nan(m, v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};

    /// Equal to Burn's pooling on odd and even sizes, and on a single row or column.
    #[test]
    fn host_pool_equals_burns() {
        let device = Device::flex();
        for shape in [[2, 3, 9, 12], [1, 2, 8, 7], [1, 1, 1, 5], [1, 1, 4, 1], [1, 4, 2, 2]] {
            let x = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
            let want = max_pool2d(x.clone(), MaxPoolOptions::new([3, 3]).with_stride([2, 2]).with_padding([1, 1]));
            let got = max_pool_3x3_s2(x);
            assert_eq!(got.dims(), want.dims(), "{shape:?}");
            assert_eq!(got.into_data().try_to_vec::<f32>().unwrap(), want.into_data().try_to_vec::<f32>().unwrap(), "{shape:?}");
        }
    }

    /// A NaN is its windows' maximum, first in a window or not: at input (1, 1) it is the last row and column of
    /// output (0, 0)'s window and the first of (1, 1)'s.
    #[test]
    fn nan_propagates() {
        let mut plane = vec![1f32; 5 * 5];
        plane[5 + 1] = f32::NAN;
        let (mut column_max, mut row) = (vec![0f32; 5], vec![0f32; 3]);
        for oy in 0..3 {
            pool_row(&plane, 5, oy, &mut column_max, &mut row);
            for (ox, v) in row.iter().enumerate() {
                assert_eq!(v.is_nan(), oy < 2 && ox < 2, "({oy}, {ox}): {v}");
            }
        }
    }
}
