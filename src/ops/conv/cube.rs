//! A plain direct convolution kernel (one invocation per output pixel and 4 output channels, f32 accumulation),
//! for software Vulkan.
//!
//! On lavapipe, Burn's conv2d goes through its autotuner, which times each candidate kernel on every new
//! shape; there each timing run of a 1000-RoI box-head conv takes seconds, and a fresh machine spent most of
//! its GPU-test time in these runs. This kernel has no candidates to time and compiles once per dtype; on
//! hardware GPUs Burn's tuned convolutions run instead (see [`super::use_plain_matmul`]).

use burn::backend::cubecl::dtype_to_storage_type;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, backend_extension};
use burn::tensor::{Shape, Tensor};
use burn_cubecl::CubeBackend;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_dtype;

use crate::ops::launch;

#[backend_extension(Cube, Fusion)]
pub trait PlainConv: Backend {
    /// `x [N, C, H, W]`, `weight [K, C, KH, KW]`, `bias [K]` -> `[N, K, OH, OW]` for `geometry` =
    /// `[stride_y, stride_x, pad_top, pad_left, pad_bottom, pad_right]` (no dilation, no groups).
    #[fusion(dtype = x, shape = output_shape(x, weight, geometry))]
    fn plain_conv2d(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>, geometry: [u32; 6]) -> FloatTensor<Self>;
}

fn output_shape(x: &Shape, weight: &Shape, geometry: &[u32; 6]) -> Shape {
    let [sy, sx, top, left, bottom, right] = geometry.map(|v| v as usize);
    let out = |size: usize, pad: usize, k: usize, s: usize| (size + pad).saturating_sub(k) / s + 1;
    Shape::from(vec![x[0], weight[0], out(x[2], top + bottom, weight[2], sy), out(x[3], left + right, weight[3], sx)])
}

/// Output channels per invocation: one input load serves this many multiply-adds.
const CHANNELS_PER_UNIT: usize = 4;

mod kernel {
    use cubecl::prelude::*;

    /// One invocation per (sample, block of 4 output channels, output pixel); f32 accumulation whatever F is.
    #[cube(launch)]
    pub fn plain_conv2d_kernel<F: Float>(
        x: &Tensor<F>,
        weight: &Tensor<F>,
        bias: &Tensor<F>,
        out: &mut Tensor<F>,
        stride_y: usize,
        stride_x: usize,
        pad_top: usize,
        pad_left: usize,
        #[define(F)] _dtype: ElemType,
    ) {
        let (out_k, out_h, out_w) = (out.shape(1), out.shape(2), out.shape(3));
        let blocks = (out_k + 3) / 4;
        if ABSOLUTE_POS >= out.shape(0) * blocks * out_h * out_w {
            terminate!();
        }
        let (channels, height, width) = (x.shape(1), x.shape(2), x.shape(3));
        let (kh, kw) = (weight.shape(2), weight.shape(3));
        let ox = ABSOLUTE_POS % out_w;
        let oy = (ABSOLUTE_POS / out_w) % out_h;
        let k0 = ((ABSOLUTE_POS / (out_w * out_h)) % blocks) * 4;
        let n = ABSOLUTE_POS / (out_w * out_h * blocks);
        // Channels past the last read the last one's weights and are not written.
        let last = out_k - 1;
        let (k1, k2, k3) = (usize::min(k0 + 1, last), usize::min(k0 + 2, last), usize::min(k0 + 3, last));
        let filter_len = channels * kh * kw;
        let mut acc0 = f32::cast_from(bias[k0]);
        let mut acc1 = f32::cast_from(bias[k1]);
        let mut acc2 = f32::cast_from(bias[k2]);
        let mut acc3 = f32::cast_from(bias[k3]);
        for c in 0..channels {
            let plane = (n * channels + c) * height;
            for ky in 0..kh {
                let ry = oy * stride_y + ky;
                if ry >= pad_top && ry - pad_top < height {
                    let row = (plane + ry - pad_top) * width;
                    let tap = (c * kh + ky) * kw;
                    for kx in 0..kw {
                        let rx = ox * stride_x + kx;
                        if rx >= pad_left && rx - pad_left < width {
                            let v = f32::cast_from(x[row + rx - pad_left]);
                            let t = tap + kx;
                            acc0 += v * f32::cast_from(weight[k0 * filter_len + t]);
                            acc1 += v * f32::cast_from(weight[k1 * filter_len + t]);
                            acc2 += v * f32::cast_from(weight[k2 * filter_len + t]);
                            acc3 += v * f32::cast_from(weight[k3 * filter_len + t]);
                        }
                    }
                }
            }
        }
        let pixel = oy * out_w + ox;
        let plane = out_h * out_w;
        let base = n * out_k * plane + pixel;
        out[base + k0 * plane] = F::cast_from(acc0);
        if k0 + 1 < out_k {
            out[base + (k0 + 1) * plane] = F::cast_from(acc1);
        }
        if k0 + 2 < out_k {
            out[base + (k0 + 2) * plane] = F::cast_from(acc2);
        }
        if k0 + 3 < out_k {
            out[base + (k0 + 3) * plane] = F::cast_from(acc3);
        }
    }
}

impl PlainConv for CubeBackend {
    fn plain_conv2d(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>, geometry: [u32; 6]) -> FloatTensor<Self> {
        let (x, weight, bias) = (into_contiguous(x), into_contiguous(weight), into_contiguous(bias));
        let shape = output_shape(x.meta.shape(), weight.meta.shape(), &geometry);
        let out = empty_device_dtype(x.client.clone(), x.device.clone(), shape.clone(), x.dtype);
        if shape.num_elements() == 0 {
            return out;
        }
        let units = shape[0] * shape[1].div_ceil(CHANNELS_PER_UNIT) * shape[2] * shape[3];
        let (cube_count, cube_dim) = launch::elementwise(&x.client, units);
        let dtype = x.dtype;
        let [sy, sx, top, left, ..] = geometry.map(|v| v as usize);
        kernel::plain_conv2d_kernel::launch(
            &out.client,
            cube_count,
            cube_dim,
            x.into_tensor_arg(),
            weight.into_tensor_arg(),
            bias.into_tensor_arg(),
            out.clone().into_tensor_arg(),
            sy,
            sx,
            top,
            left,
            dtype_to_storage_type(dtype),
        );
        out
    }
}

/// [`PlainConv::plain_conv2d`] on Burn tensors: `padding` is `(top, left, bottom, right)`.
pub fn plain_conv2d(x: Tensor<4>, weight: Tensor<4>, bias: Tensor<1>, stride: [usize; 2], padding: [usize; 4]) -> Tensor<4> {
    let geometry = [stride[0], stride[1], padding[0], padding[1], padding[2], padding[3]].map(|v| v as u32);
    Tensor::from_dispatch(<Dispatch as PlainConv>::plain_conv2d(x.into_dispatch(), weight.into_dispatch(), bias.into_dispatch(), geometry))
}
