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
    /// `features [1, C, H, W]` (one level, `stride` pixels per cell), `rois [N, 4]` in image coordinates
    /// -> `[N, C, S, S]`; `sampling_ratio` 0 = adaptive.
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
    let s = *output_size as usize;
    Shape::from(vec![rois[0], features[1], s, s])
}

mod kernel {
    use cubecl::prelude::*;

    /// mmcv's bilinear tap at `(y, x)` of one `H x W` plane starting at `base`: zero outside `[-1, H] x [-1, W]`,
    /// clamped onto the last row/column past it.
    #[cube]
    fn bilinear<F: Float>(feat: &Tensor<F>, base: usize, height: usize, width: usize, y: F, x: F) -> F {
        let (h, w) = (F::cast_from(height as u32), F::cast_from(width as u32));
        let mut value = F::new(0.0);
        if !(y < F::new(-1.0) || y > h || x < F::new(-1.0) || x > w) {
            let mut yy = F::max(y, F::new(0.0));
            let mut xx = F::max(x, F::new(0.0));
            let mut y_low = u32::cast_from(yy) as usize;
            let mut x_low = u32::cast_from(xx) as usize;
            let mut y_high = y_low + 1;
            let mut x_high = x_low + 1;
            if y_low >= height - 1 {
                y_low = height - 1;
                y_high = height - 1;
                yy = F::cast_from(y_low as u32);
            }
            if x_low >= width - 1 {
                x_low = width - 1;
                x_high = width - 1;
                xx = F::cast_from(x_low as u32);
            }
            let ly = yy - F::cast_from(y_low as u32);
            let lx = xx - F::cast_from(x_low as u32);
            let hy = F::new(1.0) - ly;
            let hx = F::new(1.0) - lx;
            value = hy * hx * feat[base + y_low * width + x_low]
                + hy * lx * feat[base + y_low * width + x_high]
                + ly * hx * feat[base + y_high * width + x_low]
                + ly * lx * feat[base + y_high * width + x_high];
        }
        value
    }

    #[cube(launch)]
    pub fn roi_align_kernel<F: Float>(
        feat: &Tensor<F>,
        rois: &Tensor<F>,
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

        let scale = F::new(1.0) / F::cast_from(stride);
        let half = F::new(0.5);
        let x1 = rois[r * 4] * scale - half;
        let y1 = rois[r * 4 + 1] * scale - half;
        let x2 = rois[r * 4 + 2] * scale - half;
        let y2 = rois[r * 4 + 3] * scale - half;
        let roi_w = x2 - x1;
        let roi_h = y2 - y1;
        let bins = F::cast_from(s as u32);
        let bin_h = roi_h / bins;
        let bin_w = roi_w / bins;
        let mut gh = sampling_ratio;
        let mut gw = sampling_ratio;
        if sampling_ratio == 0 {
            gh = u32::cast_from(F::max(F::ceil(roi_h / bins), F::new(0.0)));
            gw = u32::cast_from(F::max(F::ceil(roi_w / bins), F::new(0.0)));
        }
        let count = F::cast_from(u32::max(gh * gw, 1));
        let (ghf, gwf) = (F::cast_from(gh), F::cast_from(gw));

        let base = c * height * width;
        // Sum in f32 whatever F is (f16 features: large RoIs take many samples per bin).
        let mut acc = 0.0f32;
        for iy in 0..gh {
            let y = y1 + F::cast_from(ph as u32) * bin_h + (F::cast_from(iy) + half) * bin_h / ghf;
            for ix in 0..gw {
                let x = x1 + F::cast_from(pw as u32) * bin_w + (F::cast_from(ix) + half) * bin_w / gwf;
                acc += f32::cast_from(bilinear::<F>(feat, base, height, width, y, x));
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
