//! mmcv's CPU `ROIAlignForward` for one RoI (`aligned=True`, adaptive sampling, average), in mmcv's f32 order of
//! operations: the reference the CubeCL kernel ([`super::cube`]) is checked against, and the flex path.
//! The map is channels-last, so every bilinear tap reads `LANES` neighbouring channels at once.

use super::{HostFeature, RoiAlignConfig};
use crate::ops::simd::Simd;
use crate::structures::BBox;

/// Channels pooled together, one per SIMD lane.
const LANES: usize = 16;

/// One bilinear tap set of mmcv's `pre_calc_for_bilinear_interpolate`.
#[derive(Clone, Copy, Default)]
struct Tap {
    pos: [usize; 4],
    w: [f32; 4],
}

fn tap(height: usize, width: usize, y: f32, x: f32) -> Tap {
    let (h, w) = (height as f32, width as f32);
    if y < -1.0 || y > h || x < -1.0 || x > w {
        return Tap::default();
    }
    let (y_low, y_high, y) = neighbours(y.max(0.0), height);
    let (x_low, x_high, x) = neighbours(x.max(0.0), width);
    let (ly, lx) = (y - y_low as f32, x - x_low as f32);
    let (hy, hx) = (1.0 - ly, 1.0 - lx);
    Tap {
        pos: [y_low * width + x_low, y_low * width + x_high, y_high * width + x_low, y_high * width + x_high],
        w: [hy * hx, hy * lx, ly * hx, ly * lx],
    }
}

/// The two grid lines around `v` along an axis of `size` samples; past the last one, both are the last and `v`
/// snaps onto it (mmcv's border rule).
fn neighbours(v: f32, size: usize) -> (usize, usize, f32) {
    let low = v as usize;
    if low >= size - 1 { (size - 1, size - 1, (size - 1) as f32) } else { (low, low + 1, v) }
}

/// mmcv `ROIAlignForward` (CPU) for one RoI: `dst` is `[C, S, S]`.
pub(super) fn roi_align_single(feat: &HostFeature, roi: &BBox, spatial_scale: f32, cfg: &RoiAlignConfig, dst: &mut [f32]) {
    let s = cfg.output_size;
    let (x1, y1) = (roi[0] * spatial_scale - 0.5, roi[1] * spatial_scale - 0.5);
    let (x2, y2) = (roi[2] * spatial_scale - 0.5, roi[3] * spatial_scale - 0.5);
    let (roi_w, roi_h) = (x2 - x1, y2 - y1);
    let (bin_h, bin_w) = (roi_h / s as f32, roi_w / s as f32);
    let grid = |extent: f32| if cfg.sampling_ratio > 0 { cfg.sampling_ratio } else { (extent / s as f32).ceil().max(0.0) as usize };
    let (gh, gw) = (grid(roi_h), grid(roi_w));
    let count = (gh * gw).max(1) as f32;
    let mut taps = Vec::with_capacity(s * s * gh * gw);
    for ph in 0..s {
        for pw in 0..s {
            for iy in 0..gh {
                let y = y1 + ph as f32 * bin_h + (iy as f32 + 0.5) * bin_h / gh as f32;
                for ix in 0..gw {
                    let x = x1 + pw as f32 * bin_w + (ix as f32 + 0.5) * bin_w / gw as f32;
                    taps.push(tap(feat.height, feat.width, y, x));
                }
            }
        }
    }
    let pool = Pool { taps: &taps, per_bin: gh * gw, count, bins: s * s };
    match Simd::detect() {
        // SAFETY: `Simd::detect` saw the CPU support these features.
        #[cfg(target_arch = "x86_64")]
        Simd::Avx512 => unsafe { pool_avx512(feat, &pool, dst) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Simd::Avx2 => unsafe { pool_avx2(feat, &pool, dst) },
        Simd::Baseline => pool_bins(feat, &pool, dst),
    }
}

/// One RoI's sampling plan: `per_bin` taps for each of `bins` output bins, averaged over `count`.
struct Pool<'a> {
    taps: &'a [Tap],
    per_bin: usize,
    count: f32,
    bins: usize,
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn pool_avx512(feat: &HostFeature, pool: &Pool, dst: &mut [f32]) {
    pool_bins(feat, pool, dst)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn pool_avx2(feat: &HostFeature, pool: &Pool, dst: &mut [f32]) {
    pool_bins(feat, pool, dst)
}

/// `dst[c, bin]` = the mean of the bin's taps on channel `c`, `LANES` channels at a time; per channel the sums
/// run in mmcv's order (`acc += w0 v0 + w1 v1 + w2 v2 + w3 v3`, tap after tap).
#[inline(always)]
fn pool_bins(feat: &HostFeature, pool: &Pool, dst: &mut [f32]) {
    let c = feat.channels;
    for c0 in (0..c).step_by(LANES) {
        let lanes = LANES.min(c - c0);
        for bin in 0..pool.bins {
            let mut acc = [0f32; LANES];
            for t in &pool.taps[bin * pool.per_bin..(bin + 1) * pool.per_bin] {
                let at = |i: usize| &feat.data[t.pos[i] * c + c0..][..lanes];
                if lanes == LANES {
                    let v: [&[f32; LANES]; 4] = std::array::from_fn(|i| at(i).try_into().expect("LANES values"));
                    for l in 0..LANES {
                        acc[l] += t.w[0] * v[0][l] + t.w[1] * v[1][l] + t.w[2] * v[2][l] + t.w[3] * v[3][l];
                    }
                } else {
                    let v: [&[f32]; 4] = std::array::from_fn(at);
                    for l in 0..lanes {
                        acc[l] += t.w[0] * v[0][l] + t.w[1] * v[1][l] + t.w[2] * v[2][l] + t.w[3] * v[3][l];
                    }
                }
            }
            for (l, a) in acc.iter().take(lanes).enumerate() {
                dst[(c0 + l) * pool.bins + bin] = a / pool.count;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(h: usize, w: usize) -> HostFeature {
        HostFeature { data: (0..h * w).map(|i| (i % w) as f32 + 10.0 * (i / w) as f32).collect(), channels: 1, height: h, width: w }
    }

    #[test]
    fn linear_field_is_reproduced_at_bin_centres() {
        // On f(x, y) = x + 10 y, averaging bilinear samples gives f at the bin centre (inside the map).
        let f = ramp(16, 16);
        let cfg = RoiAlignConfig { output_size: 2, sampling_ratio: 0, finest_scale: 56.0 };
        let mut out = [0f32; 4];
        roi_align_single(&f, &[2.5, 3.5, 10.5, 7.5], 1.0, &cfg, &mut out);
        // aligned: x from 2.0 to 10.0 (bins centred at 4, 8), y from 3.0 to 7.0 (centres 4, 6).
        let want = [4.0 + 40.0, 8.0 + 40.0, 4.0 + 60.0, 8.0 + 60.0];
        for (o, w) in out.iter().zip(want) {
            assert!((o - w).abs() < 1e-4, "{out:?}");
        }
    }

    /// Channels pooled 16 at a time (and the 5 left over) equal each channel pooled alone, bit for bit.
    #[test]
    fn channels_together_equal_channels_alone() {
        let (c, h, w) = (37, 19, 23);
        let value = |y: usize, x: usize, ci: usize| ((y * 31 + x * 17 + ci * 7) % 101) as f32 / 13.0 - 3.0;
        let mut data = vec![0f32; h * w * c];
        for y in 0..h {
            for x in 0..w {
                for ci in 0..c {
                    data[(y * w + x) * c + ci] = value(y, x, ci);
                }
            }
        }
        let all = HostFeature { data, channels: c, height: h, width: w };
        let cfg = RoiAlignConfig { output_size: 7, sampling_ratio: 0, finest_scale: 56.0 };
        for roi in [[1.3, 2.2, 60.1, 70.9], [-5.0, 10.0, 30.0, 95.0], [40.0, 40.0, 41.0, 41.5]] {
            let mut together = vec![0f32; c * 49];
            roi_align_single(&all, &roi, 0.25, &cfg, &mut together);
            for ci in 0..c {
                let one = HostFeature { data: (0..h * w).map(|i| value(i / w, i % w, ci)).collect(), channels: 1, height: h, width: w };
                let mut alone = vec![0f32; 49];
                roi_align_single(&one, &roi, 0.25, &cfg, &mut alone);
                assert_eq!(&together[ci * 49..(ci + 1) * 49], &alone[..], "channel {ci} of {roi:?}");
            }
        }
    }

    #[test]
    fn empty_and_outside_rois_give_zeros() {
        let f = ramp(8, 8);
        let cfg = RoiAlignConfig { output_size: 7, sampling_ratio: 0, finest_scale: 56.0 };
        let mut out = vec![1f32; 49];
        roi_align_single(&f, &[3.0, 3.0, 3.0, 3.0], 1.0, &cfg, &mut out);
        assert!(out.iter().all(|v| *v == 0.0));
        roi_align_single(&f, &[100.0, 100.0, 120.0, 130.0], 1.0, &cfg, &mut out);
        assert!(out.iter().all(|v| *v == 0.0));
    }

    #[test]
    fn levels_follow_the_fpn_rule() {
        use super::super::roi_level;
        let b = |s: f32| [0.0, 0.0, s, s];
        assert_eq!(roi_level(&b(111.9), 56.0, 4), 0);
        assert_eq!(roi_level(&b(112.0), 56.0, 4), 1);
        assert_eq!(roi_level(&b(224.0), 56.0, 4), 2);
        assert_eq!(roi_level(&b(448.0), 56.0, 4), 3);
        assert_eq!(roi_level(&b(5000.0), 56.0, 4), 3);
        assert_eq!(roi_level(&b(0.0), 56.0, 4), 0);
    }
}
