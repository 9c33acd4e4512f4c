//! Multi-level RoIAlign exactly as mmcv's (`aligned=True`, adaptive sampling, average) with mmdet's
//! `SingleRoIExtractor` level mapping.
//!
//! The adaptive sample count `ceil(roi_size / bins)` differs per RoI, so this is not one `grid_sample`. On flex
//! the reference implementation runs on the host (flex tensors are host memory), in mmcv's f32 order of
//! operations; on the GPU backends the CubeCL kernel of `roi_align_cube.rs` does the same arithmetic on the device.

use std::sync::OnceLock;

use burn::tensor::{Device, Int, Tensor, TensorData};
use rayon::prelude::*;

use super::roi_align_cube::roi_align_level;
use crate::postprocess::BBox;

/// RoIAlign settings of one branch (7x7 for boxes, 14x14 for masks).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoiAlignConfig {
    pub output_size: usize,
    /// 0 = adaptive: `ceil(roi_extent / output_size)` samples per bin and axis.
    pub sampling_ratio: usize,
    /// mmdet maps a RoI of scale `s = sqrt(area)` to level `floor(log2(s / finest_scale + 1e-6))`.
    pub finest_scale: f32,
}

/// One feature map on the host, `[C, H, W]` (batch 1).
#[derive(Debug, Clone)]
pub struct HostFeature {
    pub data: Vec<f32>,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

/// The pyramid levels RoIs are pooled from (P2..P5), with their strides; host copies are read once, on demand.
pub struct RoiFeatures {
    pub levels: Vec<Tensor<4>>,
    pub strides: Vec<usize>,
    host: OnceLock<Vec<HostFeature>>,
}

impl RoiFeatures {
    pub fn new(levels: Vec<Tensor<4>>, strides: Vec<usize>) -> Self {
        Self { levels, strides, host: OnceLock::new() }
    }

    pub fn device(&self) -> Device {
        self.levels[0].device()
    }

    pub fn channels(&self) -> usize {
        self.levels[0].dims()[1]
    }

    /// Host copies of the levels (a deliberate read-back: the reference RoIAlign runs on the CPU).
    pub fn host(&self) -> &[HostFeature] {
        self.host.get_or_init(|| {
            self.levels
                .iter()
                .map(|t| {
                    let [_, channels, height, width] = t.dims();
                    // Converted: f16 features (flex at f16) read as f32; flex memory is the host's, no transfer.
                    let data = t.clone().into_data().convert::<f32>().try_into_vec::<f32>().expect("converted to f32");
                    HostFeature { data, channels, height, width }
                })
                .collect()
        })
    }
}

/// mmdet `SingleRoIExtractor.map_roi_levels`, in f32.
pub fn roi_level(roi: &BBox, finest_scale: f32, num_levels: usize) -> usize {
    let scale = ((roi[2] - roi[0]) * (roi[3] - roi[1])).sqrt();
    let lvl = (scale / finest_scale + 1e-6f32).log2().floor();
    lvl.clamp(0.0, (num_levels - 1) as f32) as usize
}

/// `[N, C, S, S]` RoI features of `rois` (image coordinates), each pooled from its own level.
pub fn roi_align(features: &RoiFeatures, rois: &[BBox], cfg: &RoiAlignConfig) -> Tensor<4> {
    let (c, s) = (features.channels(), cfg.output_size);
    let device = features.device();
    if rois.is_empty() {
        return Tensor::zeros([0, c, s, s], &device);
    }
    if device != Device::flex() {
        return roi_align_on_device(features, rois, cfg);
    }
    let host = features.host();
    let mut out = vec![0f32; rois.len() * c * s * s];
    out.par_chunks_mut(c * s * s).zip(rois).for_each(|(dst, roi)| {
        let lvl = roi_level(roi, cfg.finest_scale, host.len());
        let scale = 1.0 / features.strides[lvl] as f32;
        roi_align_single(&host[lvl], roi, scale, cfg, dst);
    });
    Tensor::from_data(TensorData::new(out, [rois.len(), c, s, s]), &device)
}

/// The GPU path: RoIs grouped by level on the host (they are host values already), one kernel launch per level
/// (`roi_align_cube`), and the pooled rows gathered back into RoI order on the device.
fn roi_align_on_device(features: &RoiFeatures, rois: &[BBox], cfg: &RoiAlignConfig) -> Tensor<4> {
    let device = features.device();
    let levels: Vec<usize> = rois.iter().map(|r| roi_level(r, cfg.finest_scale, features.levels.len())).collect();
    let (mut parts, mut order) = (Vec::new(), Vec::with_capacity(rois.len()));
    for (l, (feat, &stride)) in features.levels.iter().zip(&features.strides).enumerate() {
        let members: Vec<usize> = (0..rois.len()).filter(|&i| levels[i] == l).collect();
        if members.is_empty() {
            continue;
        }
        let boxes: Vec<f32> = members.iter().flat_map(|&i| rois[i]).collect();
        let boxes = Tensor::<2>::from_data(TensorData::new(boxes, [members.len(), 4]), &device).cast(feat.dtype());
        parts.push(roi_align_level(feat.clone(), boxes, stride, cfg.output_size, cfg.sampling_ratio));
        order.extend(members);
    }
    let mut rows = vec![0i32; rois.len()];
    for (k, &i) in order.iter().enumerate() {
        rows[i] = k as i32;
    }
    let rows = Tensor::<1, Int>::from_data(TensorData::new(rows, [rois.len()]), &device);
    Tensor::cat(parts, 0).select(0, rows)
}

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
fn roi_align_single(feat: &HostFeature, roi: &BBox, spatial_scale: f32, cfg: &RoiAlignConfig, dst: &mut [f32]) {
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
    let per_bin = gh * gw;
    let plane = feat.height * feat.width;
    for (c, out) in dst.chunks_exact_mut(s * s).enumerate() {
        let input = &feat.data[c * plane..(c + 1) * plane];
        for (bin, o) in out.iter_mut().enumerate() {
            let mut acc = 0f32;
            for t in &taps[bin * per_bin..(bin + 1) * per_bin] {
                acc += t.w[0] * input[t.pos[0]] + t.w[1] * input[t.pos[1]] + t.w[2] * input[t.pos[2]] + t.w[3] * input[t.pos[3]];
            }
            *o = acc / count;
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
        let b = |s: f32| [0.0, 0.0, s, s];
        assert_eq!(roi_level(&b(111.9), 56.0, 4), 0);
        assert_eq!(roi_level(&b(112.0), 56.0, 4), 1);
        assert_eq!(roi_level(&b(224.0), 56.0, 4), 2);
        assert_eq!(roi_level(&b(448.0), 56.0, 4), 3);
        assert_eq!(roi_level(&b(5000.0), 56.0, 4), 3);
        assert_eq!(roi_level(&b(0.0), 56.0, 4), 0);
    }
}
