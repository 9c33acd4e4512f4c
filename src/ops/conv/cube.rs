//! A plain direct convolution kernel (each invocation a block of output pixels x output channels, f32
//! accumulation), for software Vulkan.
//!
//! On lavapipe, Burn's conv2d goes through its autotuner, which times each candidate kernel on every new
//! shape; there each timing run of a 1000-RoI box-head conv takes seconds, and a fresh machine spent most of
//! its GPU-test time in these runs. This kernel has no candidates to time and compiles once per dtype; on
//! hardware GPUs Burn's tuned convolutions run instead (see [`super::use_plain_matmul`]).
//!
//! lavapipe runs a storage-buffer load whose address differs between invocations as one scalar load per SIMD
//! lane, so loads, not multiply-adds, set this kernel's speed: a block of `PIXELS` x `CHANNELS` outputs takes
//! `PIXELS + CHANNELS` loads per filter tap for `PIXELS * CHANNELS` multiply-adds (1 pixel x 4 channels took
//! 5 loads per 4, and 5.6x the time of 8 x 16 on a 3x3 conv over 256x50x76; 8 x 32 gained 12% more there and
//! wastes most of a block on the RPN's 3- and 12-channel convs).

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

/// Output pixels (along a row) per invocation: one weight load serves this many multiply-adds.
const PIXELS: usize = 8;
/// Output channels per invocation: one input load serves this many multiply-adds.
const CHANNELS: usize = 16;

mod kernel {
    use cubecl::prelude::*;

    /// One invocation per (sample, block of `channels` output channels, output row, block of `pixels` output
    /// pixels of that row); f32 accumulation whatever F is.
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
        #[comptime] pixels: usize,
        #[comptime] channels_per_unit: usize,
        #[define(F)] _dtype: ElemType,
    ) {
        let (out_k, out_h, out_w) = (out.shape(1), out.shape(2), out.shape(3));
        let blocks = (out_k + channels_per_unit - 1) / channels_per_unit;
        let x_blocks = (out_w + pixels - 1) / pixels;
        if ABSOLUTE_POS >= out.shape(0) * blocks * out_h * x_blocks {
            terminate!();
        }
        let (channels, height, width) = (x.shape(1), x.shape(2), x.shape(3));
        let (kh, kw) = (weight.shape(2), weight.shape(3));
        let ox0 = (ABSOLUTE_POS % x_blocks) * pixels;
        let oy = (ABSOLUTE_POS / x_blocks) % out_h;
        let k0 = ((ABSOLUTE_POS / (x_blocks * out_h)) % blocks) * channels_per_unit;
        let n = ABSOLUTE_POS / (x_blocks * out_h * blocks);
        let filter_len = channels * kh * kw;
        // Channels past the last read the last one's weights and pixels past the row's end read whatever lies
        // there (or padding); neither is written.
        let last = out_k - 1;
        let mut filters = Array::<usize>::new(channels_per_unit);
        let mut acc = Array::<f32>::new(pixels * channels_per_unit);
        #[unroll]
        for j in 0..channels_per_unit {
            let k = usize::min(k0 + j, last);
            filters[j] = k * filter_len;
            let b = f32::cast_from(bias[k]);
            #[unroll]
            for p in 0..pixels {
                acc[j * pixels + p] = b;
            }
        }
        let mut w = Array::<f32>::new(channels_per_unit);
        for c in 0..channels {
            let plane = (n * channels + c) * height;
            for ky in 0..kh {
                let ry = oy * stride_y + ky;
                if ry >= pad_top && ry - pad_top < height {
                    let row = (plane + ry - pad_top) * width;
                    let tap = (c * kh + ky) * kw;
                    for kx in 0..kw {
                        #[unroll]
                        for j in 0..channels_per_unit {
                            w[j] = f32::cast_from(weight[filters[j] + tap + kx]);
                        }
                        #[unroll]
                        for p in 0..pixels {
                            let rx = (ox0 + p) * stride_x + kx;
                            if rx >= pad_left && rx - pad_left < width {
                                let v = f32::cast_from(x[row + rx - pad_left]);
                                #[unroll]
                                for j in 0..channels_per_unit {
                                    acc[j * pixels + p] += v * w[j];
                                }
                            }
                        }
                    }
                }
            }
        }
        let plane = out_h * out_w;
        let base = (n * out_k + k0) * plane + oy * out_w + ox0;
        crate::ops::launch::store_block(out, &acc, base, plane, out_k - k0, out_w - ox0, channels_per_unit, pixels);
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
        let units = shape[0] * shape[1].div_ceil(CHANNELS) * shape[2] * shape[3].div_ceil(PIXELS);
        let (cube_count, cube_dim) = launch::elementwise(&x.client, units);
        let dtype = x.dtype;
        let [sy, sx, top, left, ..] = geometry.map(|v| v as usize);
        launch::counted();
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
            PIXELS,
            CHANNELS,
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
