//! 3x3 convolutions (stride 1, padding 1) by Winograd's minimal filtering, F(m x m, 3 x 3) (Lavin & Gray 2016):
//! each m x m output tile costs (m + 2)^2 multiplies per channel pair instead of 9 m^2, which is where most of
//! this model's FLOPs are (every 3x3 conv of the backbone, FPN, RPN and the two heads).
//!
//! Tiles are processed in blocks that stay in cache: input transform `V = Bt d B` per (tile, channel), then for
//! each of the (m + 2)^2 transformed positions one GEMM `[K x C] x [C x tiles]` (the `gemm` crate that flex itself
//! uses), then the output transform `Y = At M A`. Blocks run in parallel, each GEMM on one thread.

use gemm::{Parallelism, gemm};
use rayon::prelude::*;

/// One Winograd variant: output tile side `M`, input tile side `A = M + 2`, and its transform matrices
/// (row-major): `BT` is A x A, `G` is A x 3, `AT` is M x A.
pub trait Tiling: Sync {
    const M: usize;
    const A: usize = Self::M + 2;
    const BT: &'static [f64];
    const G: &'static [f64];
    const AT: &'static [f64];
}

/// F(2x2, 3x3): 16 multiplies per tile (2.25x fewer), transform constants 0, +-1, 1/2.
pub struct F2;
impl Tiling for F2 {
    const M: usize = 2;
    const BT: &'static [f64] = &[1., 0., -1., 0., 0., 1., 1., 0., 0., -1., 1., 0., 0., 1., 0., -1.];
    const G: &'static [f64] = &[1., 0., 0., 0.5, 0.5, 0.5, 0.5, -0.5, 0.5, 0., 0., 1.];
    const AT: &'static [f64] = &[1., 1., 1., 0., 0., 1., -1., -1.];
}

/// F(4x4, 3x3): 36 multiplies per tile (4x fewer), at the cost of larger transform constants.
pub struct F4;
impl Tiling for F4 {
    const M: usize = 4;
    #[rustfmt::skip]
    const BT: &'static [f64] = &[
        4., 0., -5., 0., 1., 0.,
        0., -4., -4., 1., 1., 0.,
        0., 4., -4., -1., 1., 0.,
        0., -2., -1., 2., 1., 0.,
        0., 2., -1., -2., 1., 0.,
        0., 4., 0., -5., 0., 1.,
    ];
    #[rustfmt::skip]
    const G: &'static [f64] = &[
        1. / 4., 0., 0.,
        -1. / 6., -1. / 6., -1. / 6.,
        -1. / 6., 1. / 6., -1. / 6.,
        1. / 24., 1. / 12., 1. / 6.,
        1. / 24., -1. / 12., 1. / 6.,
        0., 0., 1.,
    ];
    #[rustfmt::skip]
    const AT: &'static [f64] = &[
        1., 1., 1., 1., 1., 0.,
        0., 1., -1., 2., -2., 0.,
        0., 1., 1., 4., 4., 0.,
        0., 1., -1., 8., -8., 1.,
    ];
}

/// Filters `[K, C, 3, 3]` -> `U = G g Gt` laid out `[A*A, K, C]` (one GEMM operand per position), in f64.
pub fn transform_filters<T: Tiling>(weight: &[f32], k: usize, c: usize) -> Vec<f32> {
    let a = T::A;
    let mut u = vec![0f32; a * a * k * c];
    for kc in 0..k * c {
        let g = &weight[kc * 9..kc * 9 + 9];
        let mut tmp = [0f64; 18]; // G g: A x 3
        for i in 0..a {
            for j in 0..3 {
                tmp[i * 3 + j] = (0..3).map(|l| T::G[i * 3 + l] * g[l * 3 + j] as f64).sum();
            }
        }
        for i in 0..a {
            for j in 0..a {
                let v: f64 = (0..3).map(|l| tmp[i * 3 + l] * T::G[j * 3 + l]).sum();
                u[(i * a + j) * k * c + kc] = v as f32;
            }
        }
    }
    u
}

/// The output written from parallel blocks. Each block writes only the pixels of its own tiles.
struct SharedOut(*mut f32);
// SAFETY: the pointer is only used inside `conv3x3`'s parallel loop, during which the buffer it points to is
// alive and not otherwise accessed; concurrent writes through it go to disjoint elements (see `output_transform`).
unsafe impl Sync for SharedOut {}

/// `x: [N, C, H, W]` (contiguous) convolved with filters already transformed by [`transform_filters`] (`K`
/// outputs), plus an optional bias: `[N, K, H, W]`.
pub fn conv3x3<T: Tiling>(x: &[f32], [n, c, h, w]: [usize; 4], u: &[f32], k: usize, bias: Option<&[f32]>) -> Vec<f32> {
    let (m, a) = (T::M, T::A);
    assert_eq!(x.len(), n * c * h * w);
    assert_eq!(u.len(), a * a * k * c);
    let grid = Grid { c, h, w, th: h.div_ceil(m), tw: w.div_ceil(m) };
    let tiles = n * grid.th * grid.tw;
    let block = block_tiles(a, c.max(k));
    let mut out = vec![0f32; n * k * h * w];
    let shared = SharedOut(out.as_mut_ptr());
    (0..tiles.div_ceil(block)).into_par_iter().for_each_init(
        || (Vec::new(), Vec::new()),
        |(v, o), b| {
            let first = b * block;
            let count = block.min(tiles - first);
            v.resize(a * a * c * count, 0.0);
            o.resize(a * a * k * count, 0.0);
            input_transform::<T>(x, &grid, first, count, v);
            for xi in 0..a * a {
                let lhs = &u[xi * k * c..(xi + 1) * k * c];
                let rhs = &v[xi * c * count..(xi + 1) * c * count];
                let dst = &mut o[xi * k * count..(xi + 1) * k * count];
                // SAFETY: dst is K x count (row stride count), lhs K x C (row stride C), rhs C x count (row
                // stride count), all unit column strides: every index the GEMM touches lies in the slices above.
                unsafe {
                    gemm(
                        k, count, c, dst.as_mut_ptr(), 1, count as isize, false, lhs.as_ptr(), 1, c as isize,
                        rhs.as_ptr(), 1, count as isize, 0.0, 1.0, false, false, false, Parallelism::None,
                    );
                }
            }
            output_transform::<T>(o, &grid, k, first, count, bias, &shared);
        },
    );
    out
}

/// Input geometry and its tiling (`th x tw` tiles per image).
struct Grid {
    c: usize,
    h: usize,
    w: usize,
    th: usize,
    tw: usize,
}

impl Grid {
    /// Image index and top-left output pixel of tile `t`.
    fn tile(&self, t: usize, m: usize) -> (usize, usize, usize) {
        let per_image = self.th * self.tw;
        let r = t % per_image;
        (t / per_image, (r / self.tw) * m, (r % self.tw) * m)
    }
}

/// Tiles per block: the transformed block (`A*A x channels x tiles` floats) near 1 MiB, so a block's operands
/// stay in L2 while its GEMMs run.
fn block_tiles(a: usize, channels: usize) -> usize {
    ((1usize << 18) / (a * a * channels)).clamp(16, 256)
}

/// `v[xi, ci, t] = (Bt d B)[xi]` for each tile `t` of the block and channel `ci`, `d` the tile's A x A input
/// window (top-left at the output tile's corner minus the padding), zero outside the image.
fn input_transform<T: Tiling>(x: &[f32], g: &Grid, first: usize, count: usize, v: &mut [f32]) {
    let (m, a) = (T::M, T::A);
    let bt: Vec<f32> = T::BT.iter().map(|&b| b as f32).collect();
    let mut d = [0f32; 36];
    let mut tmp = [0f32; 36];
    for ci in 0..g.c {
        for t in 0..count {
            let (ni, oy, ox) = g.tile(first + t, m);
            let plane = &x[(ni * g.c + ci) * g.h * g.w..][..g.h * g.w];
            for i in 0..a {
                let y = (oy + i).wrapping_sub(1);
                for j in 0..a {
                    let xx = (ox + j).wrapping_sub(1);
                    d[i * a + j] = if y < g.h && xx < g.w { plane[y * g.w + xx] } else { 0.0 };
                }
            }
            for i in 0..a {
                for j in 0..a {
                    tmp[i * a + j] = (0..a).map(|l| bt[i * a + l] * d[l * a + j]).sum();
                }
            }
            for i in 0..a {
                for j in 0..a {
                    let val: f32 = (0..a).map(|l| tmp[i * a + l] * bt[j * a + l]).sum();
                    v[((i * a + j) * g.c + ci) * count + t] = val;
                }
            }
        }
    }
}

/// `Y = At M A` (+ bias) for each tile of the block and output channel, written to the tile's pixels.
fn output_transform<T: Tiling>(
    o: &[f32],
    g: &Grid,
    k: usize,
    first: usize,
    count: usize,
    bias: Option<&[f32]>,
    out: &SharedOut,
) {
    let (m, a) = (T::M, T::A);
    let at: Vec<f32> = T::AT.iter().map(|&b| b as f32).collect();
    let mut mm = [0f32; 36];
    let mut tmp = [0f32; 24];
    for ki in 0..k {
        let b = bias.map_or(0.0, |b| b[ki]);
        for t in 0..count {
            for (xi, slot) in mm[..a * a].iter_mut().enumerate() {
                *slot = o[(xi * k + ki) * count + t];
            }
            for i in 0..m {
                for j in 0..a {
                    tmp[i * a + j] = (0..a).map(|l| at[i * a + l] * mm[l * a + j]).sum();
                }
            }
            let (ni, oy, ox) = g.tile(first + t, m);
            let base = (ni * k + ki) * g.h * g.w;
            for i in 0..m.min(g.h - oy) {
                for j in 0..m.min(g.w - ox) {
                    let val: f32 = (0..a).map(|l| tmp[i * a + l] * at[j * a + l]).sum::<f32>() + b;
                    // SAFETY: oy + i < h, ox + j < w, ni < N and ki < K, so the index is inside the N*K*H*W
                    // output. Pixel (oy + i, ox + j) of (ni, ki) belongs to tile `first + t` only, and each tile
                    // to exactly one block, handled by one call: no other thread writes this element.
                    unsafe { out.0.add(base + (oy + i) * g.w + ox + j).write(val) };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct 3x3 correlation with zero padding 1, in f64.
    fn direct(x: &[f32], [n, c, h, w]: [usize; 4], wt: &[f32], k: usize, bias: &[f32]) -> Vec<f32> {
        let mut out = vec![0f32; n * k * h * w];
        for ni in 0..n {
            for ki in 0..k {
                for y in 0..h {
                    for xx in 0..w {
                        let mut s = bias[ki] as f64;
                        for ci in 0..c {
                            for dy in 0..3 {
                                for dx in 0..3 {
                                    let (sy, sx) = ((y + dy).wrapping_sub(1), (xx + dx).wrapping_sub(1));
                                    if sy < h && sx < w {
                                        s += x[((ni * c + ci) * h + sy) * w + sx] as f64 * wt[((ki * c + ci) * 3 + dy) * 3 + dx] as f64;
                                    }
                                }
                            }
                        }
                        out[((ni * k + ki) * h + y) * w + xx] = s as f32;
                    }
                }
            }
        }
        out
    }

    fn check<T: Tiling>(shape: [usize; 4], k: usize) -> f64 {
        let [n, c, h, w] = shape;
        let mut seed = 12345u64;
        let mut rnd = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((seed >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
        };
        let x: Vec<f32> = (0..n * c * h * w).map(|_| rnd()).collect();
        let wt: Vec<f32> = (0..k * c * 9).map(|_| rnd() * 0.1).collect();
        let bias: Vec<f32> = (0..k).map(|_| rnd()).collect();
        let expect = direct(&x, shape, &wt, k, &bias);
        let got = conv3x3::<T>(&x, shape, &transform_filters::<T>(&wt, k, c), k, Some(&bias));
        let num: f64 = got.iter().zip(&expect).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum();
        let den: f64 = expect.iter().map(|b| (*b as f64).powi(2)).sum();
        (num / den).sqrt()
    }

    #[test]
    fn f2_matches_direct_convolution() {
        // Odd sizes (partial edge tiles), several images, one single-pixel map.
        for (shape, k) in [([2, 5, 7, 9], 3), ([1, 64, 13, 6], 17), ([3, 8, 1, 1], 4)] {
            let rel = check::<F2>(shape, k);
            eprintln!("F2 {shape:?}: rel L2 {rel:.2e}");
            assert!(rel < 1e-6, "{shape:?}: rel L2 {rel}");
        }
    }

    #[test]
    fn f4_matches_direct_convolution() {
        // F(4x4) rounds more than F(2x2) (transform constants up to 8): measured 3e-7..1.2e-6 here, where
        // Burn's own direct f32 conv is ~1e-7 from this f64 reference.
        for (shape, k) in [([2, 5, 7, 9], 3), ([1, 64, 13, 6], 17), ([3, 8, 1, 1], 4), ([1, 256, 9, 7], 8)] {
            let rel = check::<F4>(shape, k);
            eprintln!("F4 {shape:?}: rel L2 {rel:.2e}");
            assert!(rel < 4e-6, "{shape:?}: rel L2 {rel}");
        }
    }
}
