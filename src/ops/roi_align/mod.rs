//! Multi-level RoIAlign exactly as mmcv's (`aligned=True`, adaptive sampling, average) with mmdet's
//! `SingleRoIExtractor` level mapping.
//!
//! The adaptive sample count `ceil(roi_size / bins)` differs per RoI, so this is not one `grid_sample`. On flex
//! the reference (`host`) runs on the host (flex tensors are host memory), in mmcv's f32 order of operations;
//! on the GPU backends the CubeCL kernel (`cube`) does the same arithmetic on the device.

mod cube;
mod host;

use burn::tensor::{DType, Device, Int, Tensor, TensorData};
use rayon::prelude::*;

use cube::roi_align_level;
use host::roi_align_single;
use super::dispatch::{Impl, Op, implementation};
use super::flex::{self, HostValues};
use super::transpose::transpose_2d;
use crate::structures::BBox;

/// RoIAlign settings of one branch (7x7 for boxes, 14x14 for masks).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoiAlignConfig {
    /// Output side (7 for boxes, 14 for masks).
    pub output_size: usize,
    /// 0 = adaptive: `ceil(roi_extent / output_size)` samples per bin and axis.
    pub sampling_ratio: usize,
    /// mmdet maps a RoI of scale `s = sqrt(area)` to level `floor(log2(s / finest_scale + 1e-6))`.
    pub finest_scale: f32,
}

/// One image's feature map on the host, channels-last `[H, W, C]`.
#[derive(Debug, Clone)]
pub struct HostFeature {
    /// The values, `[H, W, C]` row-major.
    pub data: Vec<f32>,
    /// Channels.
    pub channels: usize,
    /// Height in pixels.
    pub height: usize,
    /// Width in pixels.
    pub width: usize,
}

/// A RoI of one image of a batch: `(image index, [x1, y1, x2, y2])` in that image's network-input pixels
/// (torchvision's `[K, 5]` RoI format as a host value).
pub type ImageRoi = (usize, BBox);

/// The pyramid levels RoIs are pooled from (P2..P5) for every image of a batch, with their strides. Where
/// RoIAlign runs on the host, the levels are copied channels-last once, when this is made, and the device tensors
/// are let go: the caller can free the pyramid before the heads run (at 800x1216 P2..P5 are 81 MB per image,
/// held twice otherwise).
pub struct RoiFeatures {
    /// Each level's stride in pixels.
    pub strides: Vec<usize>,
    /// P2..P5 `[N, C, H, W]` on the model's device, for the GPU path; empty where the host pools.
    levels: Vec<Tensor<4>>,
    /// Channels-last host copies, `[level][image]`, for the host path; empty where the device pools.
    host: Vec<Vec<HostFeature>>,
    device: Device,
    channels: usize,
    images: usize,
    dtype: DType,
}

impl RoiFeatures {
    /// The pyramid levels `[N, C, H, W]` of a batch of `N` images and their strides.
    ///
    /// # Panics
    /// If there are no levels or they disagree on the batch size or channels (a programming error: the RoI heads
    /// pass the FPN's levels).
    pub fn new(levels: Vec<Tensor<4>>, strides: Vec<usize>) -> Self {
        assert!(!levels.is_empty() && levels.len() == strides.len(), "one stride per level");
        let [images, channels, ..] = levels[0].dims();
        assert!(levels.iter().all(|l| l.dims()[..2] == [images, channels]), "the levels of one batch");
        let (device, dtype) = (levels[0].device(), levels[0].dtype());
        if implementation(Op::RoiAlign, &device, dtype) == Impl::Cube {
            return Self { strides, levels, host: Vec::new(), device, channels, images, dtype };
        }
        let host = levels.into_iter().map(|level| (0..images).map(|i| host_feature(level.clone().slice([i..i + 1]))).collect()).collect();
        Self { strides, levels: Vec::new(), host, device, channels, images, dtype }
    }

    /// Where the features live.
    pub fn device(&self) -> Device {
        self.device.clone()
    }

    /// Channels of every level.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Images in the batch.
    pub fn images(&self) -> usize {
        self.images
    }

    /// The levels' dtype (the pooled features').
    pub fn dtype(&self) -> DType {
        self.dtype
    }
}

/// A level's channels-last host copy of one image (a deliberate read-back: the reference RoIAlign runs on the CPU).
fn host_feature(t: Tensor<4>) -> HostFeature {
    let [_, channels, height, width] = t.dims();
    // f32 read in place; f16 features (flex at f16) converted to f32. Flex memory is the host's.
    let chw = if t.dtype() == DType::F32 {
        flex::host_values(t)
    } else {
        HostValues::Owned(t.into_data().convert::<f32>().try_into_vec::<f32>().expect("converted to f32"))
    };
    HostFeature { data: transpose_2d(&chw, channels, height * width), channels, height, width }
}

/// mmdet `SingleRoIExtractor.map_roi_levels`, in f32.
pub fn roi_level(roi: &BBox, finest_scale: f32, num_levels: usize) -> usize {
    let scale = ((roi[2] - roi[0]) * (roi[3] - roi[1])).sqrt();
    let lvl = (scale / finest_scale + 1e-6f32).log2().floor();
    lvl.clamp(0.0, (num_levels - 1) as f32) as usize
}

/// `[K, C, S, S]` RoI features of `rois` (every image's, in order), each pooled from its image's own level:
/// one pass for the whole batch (one kernel launch per level on a GPU).
///
/// # Panics
/// If a RoI names an image past the batch (a programming error).
pub fn roi_align(features: &RoiFeatures, rois: &[ImageRoi], cfg: &RoiAlignConfig) -> Tensor<4> {
    let (c, s) = (features.channels(), cfg.output_size);
    let device = features.device();
    assert!(rois.iter().all(|(i, _)| *i < features.images), "a RoI of an image past the batch");
    if rois.is_empty() {
        return Tensor::<4>::zeros([0, c, s, s], &device).cast(features.dtype);
    }
    if !features.levels.is_empty() {
        return roi_align_on_device(features, rois, cfg);
    }
    let (host, dtype) = (&features.host, features.dtype);
    let mut out = vec![0f32; rois.len() * c * s * s];
    out.par_chunks_mut(c * s * s).zip(rois).for_each(|(dst, (image, roi))| {
        let lvl = roi_level(roi, cfg.finest_scale, host.len());
        let scale = 1.0 / features.strides[lvl] as f32;
        roi_align_single(&host[lvl][*image], roi, scale, cfg, dst);
    });
    // In the features' dtype: flex at f16 pools in f32 on the host and hands f16 on.
    Tensor::<4>::from_data(TensorData::new(out, [rois.len(), c, s, s]), &device).cast(dtype)
}

/// The GPU path: RoIs grouped by level on the host (they are host values already), one kernel launch per level
/// for every image (`roi_align_cube`, RoIs as `[image, x1, y1, x2, y2]` in f32 whatever the features' dtype), and
/// the pooled rows gathered back into RoI order on the device.
fn roi_align_on_device(features: &RoiFeatures, rois: &[ImageRoi], cfg: &RoiAlignConfig) -> Tensor<4> {
    let device = features.device();
    let levels: Vec<usize> = rois.iter().map(|(_, r)| roi_level(r, cfg.finest_scale, features.levels.len())).collect();
    let (mut parts, mut order) = (Vec::new(), Vec::with_capacity(rois.len()));
    for (l, (feat, &stride)) in features.levels.iter().zip(&features.strides).enumerate() {
        let members: Vec<usize> = (0..rois.len()).filter(|&i| levels[i] == l).collect();
        if members.is_empty() {
            continue;
        }
        let rows: Vec<f32> = members.iter().flat_map(|&i| std::iter::once(rois[i].0 as f32).chain(rois[i].1)).collect();
        let rows = Tensor::<2>::from_data(TensorData::new(rows, [members.len(), 5]), &device);
        parts.push(roi_align_level(feat.clone(), rows, stride, cfg.output_size, cfg.sampling_ratio));
        order.extend(members);
    }
    if order.iter().enumerate().all(|(k, &i)| k == i) {
        return cat(parts);
    }
    let mut rows = vec![0i32; rois.len()];
    for (k, &i) in order.iter().enumerate() {
        rows[i] = k as i32;
    }
    let rows = Tensor::<1, Int>::from_data(TensorData::new(rows, [rois.len()]), &device);
    cat(parts).select(0, rows)
}

/// Tensors joined along dim 0 (one part is returned as it is).
fn cat(mut parts: Vec<Tensor<4>>) -> Tensor<4> {
    if parts.len() == 1 { parts.remove(0) } else { Tensor::cat(parts, 0) }
}
