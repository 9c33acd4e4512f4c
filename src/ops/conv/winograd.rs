//! 3x3 convolutions (stride 1, padding 1) by Winograd's minimal filtering F(4x4, 3x3) (Lavin & Gray 2016):
//! a 4x4 output tile costs 36 multiplies per channel pair instead of 144. Most of this model's FLOPs are such
//! convs (every 3x3 conv of the backbone, FPN, RPN and both heads).
//!
//! Tiles are processed in blocks: input transform `V = Bt d B` per (tile, channel), then for each of the 36
//! transformed positions one GEMM `[K x C] x [C x tiles]` (the `gemm` crate that flex itself uses), then the
//! output transform `Y = At M A`. The transforms work on `LANES` tiles at once so they vectorise; blocks run in
//! parallel, each GEMM on one thread. Accuracy: ~1e-6 relative L2 from an f64 direct convolution (tests below).

use std::cell::RefCell;

use gemm::{Parallelism, gemm};
use rayon::prelude::*;

/// Output tile side, and input tile side (output + 2 for the 3x3 support).
const M: usize = 4;
const A: usize = 6;
/// Tiles (or filters) transformed together, one per SIMD lane.
const LANES: usize = 16;
type Lanes = [f32; LANES];
const ZERO: Lanes = [0.0; LANES];

/// `Bt d` for one column (or row) of 6.
#[inline(always)]
fn bt([d0, d1, d2, d3, d4, d5]: [f32; A]) -> [f32; A] {
    [
        4.0 * d0 - 5.0 * d2 + d4,
        -4.0 * (d1 + d2) + d3 + d4,
        4.0 * (d1 - d2) - d3 + d4,
        2.0 * (d3 - d1) - d2 + d4,
        2.0 * (d1 - d3) - d2 + d4,
        4.0 * d1 - 5.0 * d3 + d5,
    ]
}

/// `At m` for one column (or row) of 6.
#[inline(always)]
fn at([m0, m1, m2, m3, m4, m5]: [f32; A]) -> [f32; M] {
    let (s12, d12, s34, d34) = (m1 + m2, m1 - m2, m3 + m4, m3 - m4);
    [m0 + s12 + s34, d12 + 2.0 * d34, s12 + 4.0 * s34, d12 + 8.0 * d34 + m5]
}

/// `out = Bt d B` on `LANES` 6x6 tiles (`[row][col][lane]`); by reference, so nothing large is moved.
#[inline(always)]
fn input_tile(d: &[[Lanes; A]; A], tmp: &mut [[Lanes; A]; A], out: &mut [[Lanes; A]; A]) {
    for j in 0..A {
        for l in 0..LANES {
            let r = bt(std::array::from_fn(|i| d[i][j][l]));
            for (i, v) in r.into_iter().enumerate() {
                tmp[i][j][l] = v;
            }
        }
    }
    for i in 0..A {
        for l in 0..LANES {
            let r = bt(std::array::from_fn(|j| tmp[i][j][l]));
            for (j, v) in r.into_iter().enumerate() {
                out[i][j][l] = v;
            }
        }
    }
}

/// `y = At m A` on `LANES` tiles.
#[inline(always)]
fn output_tile(m: &[[Lanes; A]; A], tmp: &mut [[Lanes; A]; M], y: &mut [[Lanes; M]; M]) {
    for j in 0..A {
        for l in 0..LANES {
            let r = at(std::array::from_fn(|i| m[i][j][l]));
            for (i, v) in r.into_iter().enumerate() {
                tmp[i][j][l] = v;
            }
        }
    }
    for i in 0..M {
        for l in 0..LANES {
            let r = at(std::array::from_fn(|j| tmp[i][j][l]));
            for (j, v) in r.into_iter().enumerate() {
                y[i][j][l] = v;
            }
        }
    }
}

/// Filters `[K, C, 3, 3]` -> `U = G g Gt`, laid out `[36, K, C]` (one GEMM operand per position); f64 inside.
pub fn transform_filters(weight: &[f32], k: usize, c: usize) -> Vec<f32> {
    const F: usize = 8;
    let g_col = |g: [[f64; F]; 3]| -> [[f64; F]; A] {
        let mut r = [[0.0; F]; A];
        for l in 0..F {
            let [g0, g1, g2] = [g[0][l], g[1][l], g[2][l]];
            r[0][l] = g0 / 4.0;
            r[1][l] = -(g0 + g1 + g2) / 6.0;
            r[2][l] = -(g0 - g1 + g2) / 6.0;
            r[3][l] = g0 / 24.0 + g1 / 12.0 + g2 / 6.0;
            r[4][l] = g0 / 24.0 - g1 / 12.0 + g2 / 6.0;
            r[5][l] = g2;
        }
        r
    };
    let n = k * c;
    let mut u = vec![0f32; A * A * n];
    for first in (0..n).step_by(F) {
        let count = F.min(n - first);
        let mut g = [[[0f64; F]; 3]; 3];
        for l in 0..count {
            for (i, row) in g.iter_mut().enumerate() {
                for (j, v) in row.iter_mut().enumerate() {
                    v[l] = weight[(first + l) * 9 + i * 3 + j] as f64;
                }
            }
        }
        // Columns: (G g) is 6 x 3; then rows: (G g) Gt is 6 x 6.
        let cols: [[[f64; F]; A]; 3] = std::array::from_fn(|j| g_col([g[0][j], g[1][j], g[2][j]]));
        for i in 0..A {
            let row = g_col([cols[0][i], cols[1][i], cols[2][i]]);
            for (j, v) in row.iter().enumerate() {
                for l in 0..count {
                    u[(i * A + j) * n + first + l] = v[l] as f32;
                }
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
pub fn conv3x3(x: &[f32], [n, c, h, w]: [usize; 4], u: &[f32], k: usize, bias: Option<&[f32]>) -> Vec<f32> {
    assert_eq!(x.len(), n * c * h * w);
    assert_eq!(u.len(), A * A * k * c);
    let grid = Grid { c, h, w, th: h.div_ceil(M), tw: w.div_ceil(M) };
    let tiles = n * grid.th * grid.tw;
    let block = block_tiles(c.max(k));
    let mut out = vec![0f32; n * k * h * w];
    let shared = SharedOut(out.as_mut_ptr());
    (0..tiles.div_ceil(block)).into_par_iter().for_each(|b| {
        BUFFERS.with_borrow_mut(|(v, o)| {
            let first = b * block;
            let count = block.min(tiles - first);
            let coords: Vec<Tile> = (first..first + count).map(|t| grid.tile(t)).collect();
            v.resize(A * A * c * count, 0.0);
            o.resize(A * A * k * count, 0.0);
            input_transform(x, &grid, &coords, v);
            for xi in 0..A * A {
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
            output_transform(o, &grid, k, &coords, bias, &shared);
        })
    });
    out
}

thread_local! {
    /// Each worker's transformed input and GEMM output for one block, kept between blocks and calls: fresh
    /// multi-MiB allocations are page-faulted in again every time, which measured slower than the transforms.
    static BUFFERS: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Input geometry and its tiling (`th x tw` tiles per image).
struct Grid {
    c: usize,
    h: usize,
    w: usize,
    th: usize,
    tw: usize,
}

/// One tile: image index and top-left output pixel.
#[derive(Clone, Copy)]
struct Tile {
    n: usize,
    y: usize,
    x: usize,
}

impl Grid {
    fn tile(&self, t: usize) -> Tile {
        let per_image = self.th * self.tw;
        let r = t % per_image;
        Tile { n: t / per_image, y: (r / self.tw) * M, x: (r % self.tw) * M }
    }

    /// Whether the tile's 6x6 input window (one pixel of padding around) lies inside the image.
    fn inside(&self, t: Tile) -> bool {
        t.y >= 1 && t.x >= 1 && t.y + A - 1 <= self.h && t.x + A - 1 <= self.w
    }
}

/// Tiles per block: enough columns for the GEMMs to amortise packing their `K x C` operand, while the
/// block's transformed input (`36 x channels x tiles` floats) stays a few MiB.
fn block_tiles(channels: usize) -> usize {
    ((1usize << 22) / (A * A * channels)).clamp(64, 512)
}

/// `v[xi, ci, t] = (Bt d B)[xi]` for each tile `t` of the block and channel `ci`, `d` the tile's 6x6 input
/// window (top-left at the output tile's corner minus the padding), zero outside the image.
fn input_transform(x: &[f32], g: &Grid, coords: &[Tile], v: &mut [f32]) {
    let count = coords.len();
    let (mut d, mut tmp, mut tv) = ([[ZERO; A]; A], [[ZERO; A]; A], [[ZERO; A]; A]);
    for ci in 0..g.c {
        for (group, tiles) in coords.chunks(LANES).enumerate() {
            for (l, &t) in tiles.iter().enumerate() {
                let plane = &x[(t.n * g.c + ci) * g.h * g.w..][..g.h * g.w];
                if g.inside(t) {
                    for (i, row) in d.iter_mut().enumerate() {
                        let src = &plane[(t.y + i - 1) * g.w + t.x - 1..][..A];
                        for (j, v) in row.iter_mut().enumerate() {
                            v[l] = src[j];
                        }
                    }
                } else {
                    for (i, row) in d.iter_mut().enumerate() {
                        let y = (t.y + i).wrapping_sub(1);
                        for (j, v) in row.iter_mut().enumerate() {
                            let xx = (t.x + j).wrapping_sub(1);
                            v[l] = if y < g.h && xx < g.w { plane[y * g.w + xx] } else { 0.0 };
                        }
                    }
                }
            }
            input_tile(&d, &mut tmp, &mut tv);
            for (i, row) in tv.iter().enumerate() {
                for (j, lanes) in row.iter().enumerate() {
                    let dst = &mut v[((i * A + j) * g.c + ci) * count + group * LANES..];
                    copy_lanes(&mut dst[..tiles.len()], &lanes[..tiles.len()]);
                }
            }
        }
    }
}

/// `dst.copy_from_slice(src)`, inlined as one fixed-size move for a full group of lanes (a runtime-length
/// `copy_from_slice` is a libc call, which profiled at a tenth of the whole convolution).
#[inline(always)]
fn copy_lanes(dst: &mut [f32], src: &[f32]) {
    match (<&mut Lanes>::try_from(&mut *dst), <&Lanes>::try_from(src)) {
        (Ok(d), Ok(s)) => *d = *s,
        _ => dst.copy_from_slice(src),
    }
}

/// `Y = At M A` (+ bias) for each tile of the block and output channel, written to the tile's pixels.
fn output_transform(o: &[f32], g: &Grid, k: usize, coords: &[Tile], bias: Option<&[f32]>, out: &SharedOut) {
    let count = coords.len();
    let (mut mm, mut tmp, mut y) = ([[ZERO; A]; A], [[ZERO; A]; M], [[ZERO; M]; M]);
    for ki in 0..k {
        let b = bias.map_or(0.0, |b| b[ki]);
        for (group, tiles) in coords.chunks(LANES).enumerate() {
            for (xi, lanes) in mm.as_flattened_mut().iter_mut().enumerate() {
                copy_lanes(&mut lanes[..tiles.len()], &o[(xi * k + ki) * count + group * LANES..][..tiles.len()]);
            }
            output_tile(&mm, &mut tmp, &mut y);
            for (l, &t) in tiles.iter().enumerate() {
                let base = (t.n * k + ki) * g.h * g.w;
                for (i, row) in y.iter().enumerate().take(g.h - t.y) {
                    for (j, v) in row.iter().enumerate().take(g.w - t.x) {
                        // SAFETY: t.y + i < h, t.x + j < w, t.n < N and ki < K, so the index is inside the
                        // N*K*H*W output. That pixel of (t.n, ki) belongs to this tile only, and each tile to
                        // exactly one block, handled by one call: no other thread writes this element.
                        unsafe { out.0.add(base + (t.y + i) * g.w + t.x + j).write(v[l] + b) };
                    }
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

    #[test]
    fn matches_direct_convolution() {
        // Odd sizes (partial edge tiles), several images, single-pixel maps, more tiles than one block,
        // and post-ReLU-like inputs (all positive), where Winograd's cancellations are largest.
        let cases = [([2, 5, 7, 9], 3, 0.0), ([1, 64, 13, 6], 17, 0.0), ([3, 8, 1, 1], 4, 0.0), ([1, 256, 9, 7], 8, 0.0),
            ([600, 16, 7, 7], 5, 0.0), ([1, 64, 23, 30], 9, 1.0)];
        for (shape, k, offset) in cases {
            let [n, c, h, w] = shape;
            let mut seed = 12345u64;
            let mut rnd = || {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((seed >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
            };
            let x: Vec<f32> = (0..n * c * h * w).map(|_| rnd() + offset).collect();
            let wt: Vec<f32> = (0..k * c * 9).map(|_| rnd() * 0.1).collect();
            let bias: Vec<f32> = (0..k).map(|_| rnd()).collect();
            let expect = direct(&x, shape, &wt, k, &bias);
            let got = conv3x3(&x, shape, &transform_filters(&wt, k, c), k, Some(&bias));
            let num: f64 = got.iter().zip(&expect).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum();
            let den: f64 = expect.iter().map(|b| (*b as f64).powi(2)).sum();
            let rel = (num / den).sqrt();
            eprintln!("{shape:?} -> {k}, input offset {offset}: rel L2 {rel:.2e}");
            // F(4x4) rounds more than a direct f32 conv (~1e-7 from this reference): measured up to 2.6e-6.
            assert!(rel < 4e-6, "{shape:?}: rel L2 {rel}");
        }
    }
}
