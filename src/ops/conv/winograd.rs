//! 3x3 convolutions (stride 1, padding 1) by Winograd's minimal filtering F(4x4, 3x3) (Lavin & Gray 2016):
//! a 4x4 output tile costs 36 multiplies per channel pair instead of 144. Most of this model's FLOPs are such
//! convs (every 3x3 conv of the backbone, FPN, RPN and both heads).
//!
//! Tiles are processed in blocks of whole tile rows. A block's input rows are first copied channels-last with
//! their zero border (`[rows, W+2, C]`, channels padded to a multiple of `LANES`), so a tile's 6x6 window is 36
//! contiguous runs of channels, and the copy stays in cache (a whole-map copy was a 63 MB buffer at 800x1216,
//! ~100 MB for the box head's 1000 RoIs). Then three parallel phases: input transform `V = Bt d B` per tile, `LANES` channels at once; one
//! GEMM `[K x C] x [C x tiles]` per transformed position (36, in parallel; the `gemm` crate flex itself uses, on
//! column-major operands it needs not repack); output transform `Y = At M A` per tile. The transforms are
//! compiled for AVX-512 and AVX2 too and picked at run time (the crate's baseline target is SSE2).
//! Accuracy: ~1e-6 relative L2 from an f64 direct convolution (tests below).

use gemm::{Parallelism, gemm};
use rayon::prelude::*;

use super::SharedMut;
use crate::ops::simd::Simd;

/// Output tile side, and input tile side (output + 2 for the 3x3 support).
const M: usize = 4;
const A: usize = 6;
/// Channels transformed together, one per SIMD lane.
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

/// Winograd's `G` for F(4x4, 3x3) (6 x 3).
const G: [[f64; 3]; A] = [
    [1.0 / 4.0, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
    [0.0, 0.0, 1.0],
];

/// Filters `[K, C, 3, 3]` -> `U = G g Gt`, laid out `[36, Cp, Kp]` (`Cp`, `Kp`: `C`, `K` rounded up to
/// `LANES`, zero-filled): for each position the `K x C` GEMM operand, column-major. Runs on every conv call
/// (keeping them all would hold 4x the 3x3 weights, ~300 MB for R-50), so it is vectorised and cache-blocked:
/// per block of `LANES` input channels, the filters' taps are regrouped `[LANES, 9, Kp]` (each filter's taps of
/// the block read as one run), then each output is 9 multiply-adds with coefficients `G[i][a] G[j][b]`, `LANES`
/// output channels at once, summed in f64. (Scalar and position-major, it took ~190 ms of a 2 s R-50 image.)
pub fn transform_filters(weight: &[f32], k: usize, c: usize) -> Vec<f32> {
    transform_filters_with(Simd::detect(), weight, k, c)
}

fn transform_filters_with(simd: Simd, weight: &[f32], k: usize, c: usize) -> Vec<f32> {
    assert_eq!(weight.len(), k * c * 9);
    let (cp, kp) = (c.next_multiple_of(LANES), k.next_multiple_of(LANES));
    let coef: [[f64; 9]; A * A] = std::array::from_fn(|xi| std::array::from_fn(|t| G[xi / A][t / 3] * G[xi % A][t % 3]));
    let len = cp * A * A * kp;
    if len == 0 {
        return Vec::new();
    }
    let mut u: Vec<f32> = Vec::with_capacity(len);
    let out = SharedMut(u.as_mut_ptr());
    (0..cp / LANES).into_par_iter().for_each(|block| {
        let (c0, real) = (block * LANES, LANES.min(c - block * LANES));
        // gt[l][t][ki] = weight[ki][c0 + l][t]; zero for ki >= K.
        let mut gt = vec![0f32; real * 9 * kp];
        for (ki, g) in weight.chunks_exact(c * 9).enumerate() {
            for (i, &v) in g[c0 * 9..(c0 + real) * 9].iter().enumerate() {
                gt[i * kp + ki] = v;
            }
        }
        for l in 0..LANES {
            for (xi, coef) in coef.iter().enumerate() {
                // SAFETY: row (xi, c0 + l) of the [36, Cp, Kp] buffer: Kp elements from (xi Cp + c0 + l) Kp, inside
                // its capacity `len` (xi < 36, c0 + l < Cp). Only this block writes channels c0..c0 + 16, so no
                // other thread touches the row, and nothing reads the buffer until the parallel loop ends; as
                // MaybeUninit the row may be uninitialised.
                let row = unsafe { std::slice::from_raw_parts_mut(out.get().add((xi * cp + c0 + l) * kp).cast::<std::mem::MaybeUninit<f32>>(), kp) };
                match gt.get(l * 9 * kp..(l + 1) * 9 * kp) {
                    Some(gt) => simd.filter_position(coef, gt, row),
                    None => row.fill(std::mem::MaybeUninit::new(0.0)), // a padding channel
                }
            }
        }
    });
    // SAFETY: capacity `len`; the blocks cover all Cp channels and each wrote its channels' row at every one of
    // the 36 positions (computed, or zeros for padding channels).
    unsafe { u.set_len(len) };
    u
}

impl Simd {
    fn filter_position(self, coef: &[f64; 9], gt: &[f32], u: &mut [std::mem::MaybeUninit<f32>]) {
        match self {
            // SAFETY: `Simd::detect` saw the CPU support these features.
            #[cfg(target_arch = "x86_64")]
            Simd::Avx512 => unsafe { filter_position_avx512(coef, gt, u) },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            Simd::Avx2 => unsafe { filter_position_avx2(coef, gt, u) },
            Simd::Baseline => filter_position(coef, gt, u),
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn filter_position_avx512(coef: &[f64; 9], gt: &[f32], u: &mut [std::mem::MaybeUninit<f32>]) {
    filter_position(coef, gt, u)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn filter_position_avx2(coef: &[f64; 9], gt: &[f32], u: &mut [std::mem::MaybeUninit<f32>]) {
    filter_position(coef, gt, u)
}

/// One input channel's row of one position: `u[ki] = sum_t coef[t] gt[t][ki]` (`gt` is `[9, Kp]`, `u` `[Kp]`),
/// every element of `u` written.
#[inline(always)]
fn filter_position(coef: &[f64; 9], gt: &[f32], u: &mut [std::mem::MaybeUninit<f32>]) {
    let kp = u.len();
    for (k0, u) in (0..kp).step_by(LANES).zip(u.chunks_exact_mut(LANES)) {
        let mut acc = [0f64; LANES];
        for (t, &w) in coef.iter().enumerate() {
            for (a, &g) in acc.iter_mut().zip(&gt[t * kp + k0..][..LANES]) {
                *a += w * g as f64;
            }
        }
        for (u, a) in u.iter_mut().zip(acc) {
            u.write(a as f32);
        }
    }
}

/// `x: [N, C, H, W]` (contiguous) convolved with filters already transformed by [`transform_filters`] (`K`
/// outputs), plus an optional bias, then ReLU if `relu`: `[N, K, H, W]`.
pub fn conv3x3(x: &[f32], shape: [usize; 4], u: &[f32], k: usize, bias: Option<&[f32]>, relu: bool) -> Vec<f32> {
    conv3x3_with(Simd::detect(), x, shape, u, k, Epilogue { bias, relu })
}

/// What the output transform adds: a bias per output channel, then ReLU.
#[derive(Clone, Copy)]
struct Epilogue<'a> {
    bias: Option<&'a [f32]>,
    relu: bool,
}

fn conv3x3_with(simd: Simd, x: &[f32], [n, c, h, w]: [usize; 4], u: &[f32], k: usize, epilogue: Epilogue) -> Vec<f32> {
    assert_eq!(x.len(), n * c * h * w);
    let (cp, kp) = (c.next_multiple_of(LANES), k.next_multiple_of(LANES));
    assert_eq!(u.len(), A * A * cp * kp);
    let grid = Grid { k, h, w, cp, kp, th: h.div_ceil(M), tw: w.div_ceil(M) };
    let tiles = n * grid.th * grid.tw;
    let len = n * k * h * w;
    if tiles == 0 {
        return Vec::new(); // no image or an empty map: len is 0 too
    }
    if cp == 0 {
        // No input channel: every output is the bias (then ReLU).
        let value = |ki: usize| epilogue.bias.map_or(0.0, |b| b[ki]);
        let value = |ki: usize| if epilogue.relu { value(ki).max(0.0) } else { value(ki) };
        return (0..n * k).flat_map(|p| std::iter::repeat_n(value(p % k), h * w)).collect();
    }
    // Whole tile rows per block (the rows of consecutive images run on), so a block's padded input is one run
    // of padded rows: each is copied with its 2-row halo right before the input transform reads it from cache.
    let tile_rows = n * grid.th;
    let rows_per_block = (block_tiles(cp + kp) / grid.tw).max(1);
    // Not zeroed: every element is written once by the output transform (through `shared_out`, never read
    // before), and the length is set after the last block.
    let mut out: Vec<f32> = Vec::with_capacity(len);
    let shared_out = SharedMut(out.as_mut_ptr());
    // Kept between calls (zeroing 12 MiB per conv cost more than the transforms of a small map); taken out of the
    // thread-local for the call, so a conv that work stealing nests inside this one gets buffers of its own.
    let (mut xp, mut v, mut o) = BLOCKS.take();
    let mut prev_rows = 0usize..0;
    for first_row in (0..tile_rows).step_by(rows_per_block) {
        let last_row = (first_row + rows_per_block).min(tile_rows) - 1;
        let (first, count) = (first_row * grid.tw, (last_row + 1 - first_row) * grid.tw);
        let rows = grid.padded_rows(first_row, last_row);
        let block_len = rows.len() * grid.padded().1 * cp;
        for (buf, want) in [(&mut xp, block_len), (&mut v, count * A * A * cp), (&mut o, count * A * A * kp)] {
            if buf.len() < want {
                buf.resize(want, 0.0);
            }
        }
        // The previous block's last rows (its tiles' bottom halo) are this block's first: moved, not copied again.
        let row_len = grid.padded().1 * cp;
        let kept = prev_rows.end.saturating_sub(rows.start).min(rows.len());
        if kept > 0 {
            let from = (rows.start - prev_rows.start) * row_len;
            xp.copy_within(from..from + kept * row_len, 0);
        }
        copy_padded_rows(x, &grid, c, rows.start + kept..rows.end, &mut xp[kept * row_len..block_len]);
        prev_rows = rows.clone();
        let xp = &xp[..block_len];
        v[..count * A * A * cp].par_chunks_mut(A * A * cp).enumerate().for_each(|(t, v)| {
            simd.input_tile(xp, rows.start, &grid, grid.tile(first + t), v);
        });
        let o_ptr = SharedMut(o.as_mut_ptr());
        (0..A * A).into_par_iter().for_each(|xi| {
            // SAFETY: dst is the Kp x count matrix at o[xi * Kp..] with row stride 1 and column stride 36 * Kp
            // (o is [count, 36, Kp]); lhs the Kp x Cp matrix at u[xi * Cp * Kp..] (row stride 1, column stride
            // Kp); rhs the Cp x count matrix at v[xi * Cp..] (row stride 1, column stride 36 * Cp): every index
            // lies inside o, u and v. The 36 GEMMs write disjoint elements of o (position xi's only), and
            // nothing else touches o or v until the parallel loop ends.
            unsafe {
                gemm(
                    kp, count, cp, o_ptr.get().add(xi * kp), (A * A * kp) as isize, 1, false,
                    u.as_ptr().add(xi * cp * kp), kp as isize, 1, v.as_ptr().add(xi * cp), (A * A * cp) as isize, 1,
                    0.0, 1.0, false, false, false, Parallelism::None,
                );
            }
        });
        o[..count * A * A * kp].par_chunks(A * A * kp).enumerate().for_each(|(t, o)| {
            simd.output_tile(o, &grid, grid.tile(first + t), epilogue, shared_out);
        });
    }
    BLOCKS.set((xp, v, o));
    // SAFETY: capacity is `len`, and the output transforms wrote all `len` elements: the tiles cover every
    // (image, row, column) and each tile writes all K channels of its pixels inside the map.
    unsafe { out.set_len(len) };
    out
}

thread_local! {
    /// A block's padded input rows, transformed input and GEMM output (`[rows, Wp, Cp]`, `[tiles, 36, Cp]`,
    /// `[tiles, 36, Kp]`), kept per calling thread between convolutions.
    static BLOCKS: std::cell::Cell<(Vec<f32>, Vec<f32>, Vec<f32>)> = const { std::cell::Cell::new((Vec::new(), Vec::new(), Vec::new())) };
}

/// Tiles per block: the block's transformed input and GEMM output (`36 x (Cp + Kp) x tiles` floats) stay within
/// ~12 MiB, so they live in the last-level cache between the phases, while the GEMMs keep enough columns.
fn block_tiles(channels: usize) -> usize {
    ((12usize << 20) / (4 * A * A * channels)).clamp(64, 1024)
}

/// Rows `rows` of `x` as `[N * Hp, Wp, Cp]` with a zero border, into `dst` (`[rows, Wp, Cp]`, every element
/// written): padded row `ni * Hp + 1 + y`, column `1 + x` holds pixel (y, x) of image `ni`; `Hp = 4 th + 2` and
/// `Wp = 4 tw + 2` so every tile's window lies inside; channels `C..Cp` are zero.
fn copy_padded_rows(x: &[f32], g: &Grid, c: usize, rows: std::ops::Range<usize>, dst: &mut [f32]) {
    let (hp, wp) = g.padded();
    dst.par_chunks_mut(wp * g.cp).zip(rows).for_each(|(dst, row)| {
        let (ni, y) = (row / hp, (row % hp).wrapping_sub(1));
        if y >= g.h {
            dst.fill(0.0);
            return;
        }
        // Zero what the pixels leave: the border columns, and channels C..Cp of every pixel.
        dst[..g.cp].fill(0.0);
        dst[(1 + g.w) * g.cp..].fill(0.0);
        if c < g.cp {
            dst[g.cp..(1 + g.w) * g.cp].chunks_exact_mut(g.cp).for_each(|px| px[c..].fill(0.0));
        }
        let image = &x[ni * c * g.h * g.w..][..c * g.h * g.w];
        // Blocks of 16 x 16 (channel, column): a transpose that stays in L1.
        for c0 in (0..c).step_by(16) {
            for x0 in (0..g.w).step_by(16) {
                for ci in c0..(c0 + 16).min(c) {
                    let src = &image[(ci * g.h + y) * g.w..][..g.w];
                    for xx in x0..(x0 + 16).min(g.w) {
                        dst[(1 + xx) * g.cp + ci] = src[xx];
                    }
                }
            }
        }
    });
}

/// Geometry: images of `h x w`, `k` outputs, channel counts padded to lanes, `th x tw` tiles per image.
struct Grid {
    k: usize,
    h: usize,
    w: usize,
    cp: usize,
    kp: usize,
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

    fn padded(&self) -> (usize, usize) {
        (self.th * M + 2, self.tw * M + 2)
    }

    /// The padded rows (in `[N * Hp]`) the windows of tile rows `first..=last` (counted across images) read.
    fn padded_rows(&self, first: usize, last: usize) -> std::ops::Range<usize> {
        let hp = self.padded().0;
        let start = |r: usize| (r / self.th) * hp + (r % self.th) * M;
        start(first)..start(last) + A
    }
}

impl Simd {
    fn input_tile(self, xp: &[f32], row0: usize, g: &Grid, t: Tile, v: &mut [f32]) {
        match self {
            // SAFETY: `Simd::detect` saw the CPU support these features.
            #[cfg(target_arch = "x86_64")]
            Simd::Avx512 => unsafe { input_tile_avx512(xp, row0, g, t, v) },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            Simd::Avx2 => unsafe { input_tile_avx2(xp, row0, g, t, v) },
            Simd::Baseline => input_tile(xp, row0, g, t, v),
        }
    }

    fn output_tile(self, o: &[f32], g: &Grid, t: Tile, e: Epilogue, out: SharedMut) {
        match self {
            // SAFETY: `Simd::detect` saw the CPU support these features.
            #[cfg(target_arch = "x86_64")]
            Simd::Avx512 => unsafe { output_tile_avx512(o, g, t, e, out) },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            Simd::Avx2 => unsafe { output_tile_avx2(o, g, t, e, out) },
            Simd::Baseline => output_tile(o, g, t, e, out),
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn input_tile_avx512(xp: &[f32], row0: usize, g: &Grid, t: Tile, v: &mut [f32]) {
    input_tile(xp, row0, g, t, v)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn input_tile_avx2(xp: &[f32], row0: usize, g: &Grid, t: Tile, v: &mut [f32]) {
    input_tile(xp, row0, g, t, v)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn output_tile_avx512(o: &[f32], g: &Grid, t: Tile, e: Epilogue, out: SharedMut) {
    output_tile(o, g, t, e, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn output_tile_avx2(o: &[f32], g: &Grid, t: Tile, e: Epilogue, out: SharedMut) {
    output_tile(o, g, t, e, out)
}

/// `v[xi, ci] = (Bt d B)[xi]` for one tile and every channel, `d` its 6x6 window of the padded input (`xp`
/// holds padded rows from `row0` on); `v` is the tile's `[36, Cp]`.
#[inline(always)]
fn input_tile(xp: &[f32], row0: usize, g: &Grid, t: Tile, v: &mut [f32]) {
    let (hp, wp) = g.padded();
    let (mut d, mut tmp, mut tv) = ([[ZERO; A]; A], [[ZERO; A]; A], [[ZERO; A]; A]);
    for c0 in (0..g.cp).step_by(LANES) {
        for (i, row) in d.iter_mut().enumerate() {
            let line = &xp[((t.n * hp + t.y + i - row0) * wp + t.x) * g.cp..][..A * g.cp];
            for (j, lanes) in row.iter_mut().enumerate() {
                *lanes = lanes_at(line, j * g.cp + c0);
            }
        }
        input_transform(&d, &mut tmp, &mut tv);
        for (xi, lanes) in tv.as_flattened().iter().enumerate() {
            *<&mut Lanes>::try_from(&mut v[xi * g.cp + c0..][..LANES]).expect("LANES values") = *lanes;
        }
    }
}

/// `Y = At M A` (+ bias, ReLU) for one tile and every output channel, written to the tile's pixels; `o` is the
/// tile's `[36, Kp]`.
#[inline(always)]
fn output_tile(o: &[f32], g: &Grid, t: Tile, e: Epilogue, out: SharedMut) {
    let (mut mm, mut tmp, mut y) = ([[ZERO; A]; A], [[ZERO; A]; M], [[ZERO; M]; M]);
    let (rows, cols) = (M.min(g.h - t.y), M.min(g.w - t.x));
    for k0 in (0..g.k).step_by(LANES) {
        for (xi, lanes) in mm.as_flattened_mut().iter_mut().enumerate() {
            *lanes = lanes_at(o, xi * g.kp + k0);
        }
        output_transform(&mm, &mut tmp, &mut y);
        for l in 0..LANES.min(g.k - k0) {
            let b = e.bias.map_or(0.0, |b| b[k0 + l]);
            let base = ((t.n * g.k + k0 + l) * g.h + t.y) * g.w + t.x;
            for (i, row) in y.iter().enumerate().take(rows) {
                for (j, v) in row.iter().enumerate().take(cols) {
                    // SAFETY: t.y + i < h, t.x + j < w, t.n < N and k0 + l < K, so the index is inside the
                    // N*K*H*W output. That pixel belongs to this tile only, and each tile to one task of the
                    // parallel loop: no other thread writes this element.
                    let y = v[l] + b;
                    unsafe { out.get().add(base + i * g.w + j).write(if e.relu { y.max(0.0) } else { y }) };
                }
            }
        }
    }
}

#[inline(always)]
fn lanes_at(s: &[f32], at: usize) -> Lanes {
    *<&Lanes>::try_from(&s[at..at + LANES]).expect("LANES values")
}

/// `out = Bt d B` on `LANES` channels of a 6x6 tile (`[row][col][lane]`).
#[inline(always)]
fn input_transform(d: &[[Lanes; A]; A], tmp: &mut [[Lanes; A]; A], out: &mut [[Lanes; A]; A]) {
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

/// `y = At m A` on `LANES` channels.
#[inline(always)]
fn output_transform(m: &[[Lanes; A]; A], tmp: &mut [[Lanes; A]; M], y: &mut [[Lanes; M]; M]) {
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

    /// The vectorised filter transform equals `G g Gt` computed filter by filter in f64 (to one f32 rounding).
    #[test]
    fn filter_transform_matches_the_definition() {
        for (k, c) in [(3usize, 5usize), (17, 64), (40, 1), (0, 4), (512, 33)] {
            let wt: Vec<f32> = (0..k * c * 9).map(|i| ((i * 7919) % 211) as f32 / 105.0 - 1.0).collect();
            let (cp, kp) = (c.next_multiple_of(LANES), k.next_multiple_of(LANES));
            for simd in Simd::all_available() {
                let u = transform_filters_with(simd, &wt, k, c);
                assert_eq!(u.len(), A * A * cp * kp);
                for xi in 0..A * A {
                    for ci in 0..cp {
                        for ki in 0..kp {
                            let mut want = 0f64;
                            if ci < c && ki < k {
                                for (a, b) in (0..3).flat_map(|a| (0..3).map(move |b| (a, b))) {
                                    want += G[xi / A][a] * G[xi % A][b] * wt[(ki * c + ci) * 9 + a * 3 + b] as f64;
                                }
                            }
                            let got = u[(xi * cp + ci) * kp + ki];
                            assert!((got as f64 - want).abs() <= want.abs() * 1.2e-7, "{simd:?} {k}x{c} ({xi}, {ci}, {ki}): {got} vs {want}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn matches_direct_convolution() {
        // Odd sizes (partial edge tiles), several images, single-pixel maps, more tiles than one block (across
        // images; within one image, where a block reuses the previous one's halo rows; wider than a block),
        // and post-ReLU-like inputs (all positive), where Winograd's cancellations are largest.
        let cases = [([2, 5, 7, 9], 3, 0.0), ([1, 64, 13, 6], 17, 0.0), ([3, 8, 1, 1], 4, 0.0), ([1, 256, 9, 7], 8, 0.0),
            ([600, 16, 7, 7], 5, 0.0), ([1, 64, 23, 30], 9, 1.0), ([0, 8, 5, 5], 4, 0.0), ([2, 16, 6, 4500], 2, 0.0),
            ([1, 128, 70, 70], 16, 0.0), ([1, 256, 40, 200], 16, 1.0)];
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
            for simd in Simd::all_available() {
                let got = conv3x3_with(simd, &x, shape, &transform_filters(&wt, k, c), k, Epilogue { bias: Some(&bias), relu: false });
                if expect.is_empty() {
                    assert!(got.is_empty(), "{shape:?}: an empty batch gives an empty output");
                    continue;
                }
                let num: f64 = got.iter().zip(&expect).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum();
                let den: f64 = expect.iter().map(|b| (*b as f64).powi(2)).sum();
                let rel = (num / den).sqrt();
                eprintln!("{shape:?} -> {k}, input offset {offset}, {simd:?}: rel L2 {rel:.2e}");
                // F(4x4) rounds more than a direct f32 conv (~1e-7 from this reference): measured up to 2.9e-6.
                assert!(rel < 4e-6, "{shape:?} {simd:?}: rel L2 {rel}");
                let relu = conv3x3_with(simd, &x, shape, &transform_filters(&wt, k, c), k, Epilogue { bias: Some(&bias), relu: true });
                assert!(relu.iter().zip(&got).all(|(r, g)| *r == g.max(0.0)), "{shape:?} {simd:?}: ReLU epilogue");
            }
        }
    }
}
