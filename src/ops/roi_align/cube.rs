//! RoIAlign as a CubeCL kernel for the GPU backends, the same arithmetic as the host reference
//! ([`super::host`], mmcv's CPU `ROIAlignForward`: `aligned=True`, adaptive sampling, average), one launch per
//! pyramid level, one invocation per output value `(roi, channel, bin_y, bin_x)`.

use burn::backend::cubecl::dtype_to_storage_type;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, backend_extension};
use burn::tensor::{Shape, Tensor};
use burn_cubecl::CubeBackend;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_dtype;

use crate::ops::launch;

#[backend_extension(Cube, Fusion)]
pub trait RoiAlignOps: Backend {
    /// `features [N, C, H, W]` (one level of a batch, `stride` pixels per cell), `rois [R, 5]` f32 rows
    /// `[image, x1, y1, x2, y2]` in image coordinates -> `[R, C, S, S]`; `sampling_ratio` 0 = adaptive.
    #[fusion(dtype = features, shape = output_shape(features, rois, output_size))]
    fn roi_align_level(
        features: FloatTensor<Self>,
        rois: FloatTensor<Self>,
        stride: u32,
        output_size: u32,
        sampling_ratio: u32,
    ) -> FloatTensor<Self>;
}

fn output_shape(features: &Shape, rois: &Shape, output_size: &u32) -> Shape {
    // `rois` is `[R, 5]`: R rows.
    let s = *output_size as usize;
    Shape::from(vec![rois[0], features[1], s, s])
}

mod kernel {
    use cubecl::prelude::*;

    /// mmcv's bilinear tap at `(y, x)` of one `H x W` plane starting at `base`: zero outside `[-1, H] x [-1, W]`,
    /// clamped onto the last row/column past it; coordinates and weights in f32, the sum in f32.
    #[cube]
    fn bilinear<F: Float>(feat: &Tensor<F>, base: usize, height: usize, width: usize, y: f32, x: f32) -> f32 {
        let (h, w) = (f32::cast_from(height as u32), f32::cast_from(width as u32));
        let mut value = 0.0f32;
        if !(y < -1.0f32 || y > h || x < -1.0f32 || x > w) {
            let mut yy = f32::max(y, 0.0f32);
            let mut xx = f32::max(x, 0.0f32);
            let mut y_low = u32::cast_from(yy) as usize;
            let mut x_low = u32::cast_from(xx) as usize;
            let mut y_high = y_low + 1;
            let mut x_high = x_low + 1;
            if y_low >= height - 1 {
                y_low = height - 1;
                y_high = height - 1;
                yy = f32::cast_from(y_low as u32);
            }
            if x_low >= width - 1 {
                x_low = width - 1;
                x_high = width - 1;
                xx = f32::cast_from(x_low as u32);
            }
            let ly = yy - f32::cast_from(y_low as u32);
            let lx = xx - f32::cast_from(x_low as u32);
            let hy = 1.0f32 - ly;
            let hx = 1.0f32 - lx;
            value = hy * hx * f32::cast_from(feat[base + y_low * width + x_low])
                + hy * lx * f32::cast_from(feat[base + y_low * width + x_high])
                + ly * hx * f32::cast_from(feat[base + y_high * width + x_low])
                + ly * lx * f32::cast_from(feat[base + y_high * width + x_high]);
        }
        value
    }

    #[cube(launch)]
    pub fn roi_align_kernel<F: Float>(
        feat: &Tensor<F>,
        rois: &Tensor<f32>,
        out: &mut Tensor<F>,
        stride: u32,
        sampling_ratio: u32,
        #[define(F)] _dtype: ElemType,
    ) {
        if ABSOLUTE_POS >= out.len() {
            terminate!();
        }
        let channels = out.shape(1);
        let s = out.shape(2);
        let height = feat.shape(2);
        let width = feat.shape(3);
        let pw = ABSOLUTE_POS % s;
        let ph = (ABSOLUTE_POS / s) % s;
        let c = (ABSOLUTE_POS / (s * s)) % channels;
        let r = ABSOLUTE_POS / (s * s * channels);

        // Coordinates in f32 whatever F is: in f16 a coordinate near 1000 would be rounded to half a pixel.
        let scale = 1.0f32 / f32::cast_from(stride);
        let half = 0.5f32;
        let image = u32::cast_from(rois[r * 5]) as usize;
        let x1 = rois[r * 5 + 1] * scale - half;
        let y1 = rois[r * 5 + 2] * scale - half;
        let x2 = rois[r * 5 + 3] * scale - half;
        let y2 = rois[r * 5 + 4] * scale - half;
        let roi_w = x2 - x1;
        let roi_h = y2 - y1;
        let bins = f32::cast_from(s as u32);
        let bin_h = roi_h / bins;
        let bin_w = roi_w / bins;
        let mut gh = sampling_ratio;
        let mut gw = sampling_ratio;
        if sampling_ratio == 0 {
            gh = u32::cast_from(f32::max(f32::ceil(roi_h / bins), 0.0f32));
            gw = u32::cast_from(f32::max(f32::ceil(roi_w / bins), 0.0f32));
        }
        let count = f32::cast_from(u32::max(gh * gw, 1));
        let (ghf, gwf) = (f32::cast_from(gh), f32::cast_from(gw));

        let base = (image * channels + c) * height * width;
        // Sum in f32 whatever F is (f16 features: large RoIs take many samples per bin).
        let mut acc = 0.0f32;
        for iy in 0..gh {
            let y = y1 + f32::cast_from(ph as u32) * bin_h + (f32::cast_from(iy) + half) * bin_h / ghf;
            for ix in 0..gw {
                let x = x1 + f32::cast_from(pw as u32) * bin_w + (f32::cast_from(ix) + half) * bin_w / gwf;
                acc += bilinear::<F>(feat, base, height, width, y, x);
            }
        }
        out[ABSOLUTE_POS] = F::cast_from(acc / f32::cast_from(count));
    }
}

impl RoiAlignOps for CubeBackend {
    fn roi_align_level(
        features: FloatTensor<Self>,
        rois: FloatTensor<Self>,
        stride: u32,
        output_size: u32,
        sampling_ratio: u32,
    ) -> FloatTensor<Self> {
        let (features, rois) = (into_contiguous(features), into_contiguous(rois));
        let shape = output_shape(features.meta.shape(), rois.meta.shape(), &output_size);
        let out = empty_device_dtype(features.client.clone(), features.device.clone(), shape.clone(), features.dtype);
        let total = shape.num_elements();
        if total == 0 {
            return out;
        }
        let (cube_count, cube_dim) = launch::elementwise(&features.client, total);
        let dtype = features.dtype;
        launch::counted();
        kernel::roi_align_kernel::launch(
            &out.client,
            cube_count,
            cube_dim,
            features.into_tensor_arg(),
            rois.into_tensor_arg(),
            out.clone().into_tensor_arg(),
            stride,
            sampling_ratio,
            dtype_to_storage_type(dtype),
        );
        out
    }
}

/// [`RoiAlignOps::roi_align_level`] on Burn tensors.
pub fn roi_align_level(features: Tensor<4>, rois: Tensor<2>, stride: usize, output_size: usize, sampling_ratio: usize) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as RoiAlignOps>::roi_align_level(
        features.into_dispatch(),
        rois.into_dispatch(),
        stride as u32,
        output_size as u32,
        sampling_ratio as u32,
    ))
}
