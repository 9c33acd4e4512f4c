//! GroupNorm (+ReLU) as CubeCL kernels for the GPU backends, in three launches:
//!
//! 1. partial statistics: each (sample, group) range — contiguous in NCHW — is read by many units ("lanes"), so a
//!    batch of one image still fills the GPU (32 groups of ~0.5 M values would otherwise be 32 workgroups); each
//!    lane runs Welford over its strided values and writes `(count, mean, M2)`;
//! 2. one unit per group merges its lanes (Chan's formula) into `mean, 1 / sqrt(var + eps)` (biased variance);
//! 3. one unit per value writes `(x - mean) * rstd * gamma + beta` (+ReLU).
//!
//! No workgroup shared memory: Mesa 22.3's lavapipe crashes compiling a shared-memory tree reduction (as it
//! does on Burn's fused reduce). Statistics and arithmetic are f32 whatever the tensor's dtype (f16 activations
//! keep f32 statistics), and the variance is centred (no `E[x²] - E[x]²` cancellation), as the flex host
//! kernel computes it.

use burn::backend::cubecl::dtype_to_storage_type;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, backend_extension};
use burn::tensor::{DType, Shape, Tensor};
use burn_cubecl::CubeBackend;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_dtype;

use crate::ops::launch;

#[backend_extension(Cube, Fusion)]
pub trait GroupNormOps: Backend {
    /// `x [N, C, H, W]`, `gamma`, `beta` `[C]` (f32) -> `relu?(group_norm(x))`, same shape and dtype;
    /// `relu` is 0 or 1.
    #[fusion(dtype = x, shape = x.clone())]
    fn group_norm(x: FloatTensor<Self>, gamma: FloatTensor<Self>, beta: FloatTensor<Self>, num_groups: u32, epsilon: f32, relu: u32) -> FloatTensor<Self>;
}

/// At most this many values per unit in the statistics pass: a 200x304x256 map's 32 groups become ~60 000
/// units, a batch of 7x7 RoIs one or two per group.
const VALUES_PER_LANE: usize = 256;

mod kernel {
    use cubecl::prelude::*;

    /// One unit per (group range, lane): lane `l` of `lanes` takes the range's values `l, l + lanes, ...` (adjacent
    /// units read adjacent values) and writes their `(count, mean, M2)` by Welford to `partials[unit * 3 ..]`.
    #[cube(launch)]
    pub fn partial_stats<F: Float>(x: &Tensor<F>, partials: &mut Tensor<f32>, group_len: usize, lanes: usize, #[define(F)] _dtype: ElemType) {
        let unit = ABSOLUTE_POS;
        if unit * 3 >= partials.len() {
            terminate!();
        }
        let base = (unit / lanes) * group_len;
        let mut n = 0.0f32;
        let mut mean = 0.0f32;
        let mut m2 = 0.0f32;
        let mut i = unit % lanes;
        while i < group_len {
            let v = f32::cast_from(x[base + i]);
            n += 1.0f32;
            let delta = v - mean;
            mean += delta / n;
            m2 += delta * (v - mean);
            i += lanes;
        }
        partials[unit * 3] = n;
        partials[unit * 3 + 1] = mean;
        partials[unit * 3 + 2] = m2;
    }

    /// One unit per group range: its lanes merged by Chan's formula, `stats[range * 2 ..]` = mean,
    /// 1 / sqrt(var + eps) (biased variance).
    #[cube(launch)]
    pub fn finish_stats(partials: &Tensor<f32>, stats: &mut Tensor<f32>, lanes: usize, epsilon: f32) {
        let range = ABSOLUTE_POS;
        if range * 2 >= stats.len() {
            terminate!();
        }
        let mut n = 0.0f32;
        let mut mean = 0.0f32;
        let mut m2 = 0.0f32;
        for k in 0..lanes {
            let at = (range * lanes + k) * 3;
            let nb = partials[at];
            let total = n + nb;
            let delta = partials[at + 1] - mean;
            let scale = f32::max(total, 1.0f32);
            mean += delta * (nb / scale);
            m2 += partials[at + 2] + delta * delta * (n * nb / scale);
            n = total;
        }
        stats[range * 2] = mean;
        stats[range * 2 + 1] = 1.0f32 / f32::sqrt(m2 / f32::max(n, 1.0f32) + epsilon);
    }

    /// One unit per value: `(x - mean) * rstd * gamma[c] + beta[c]`, then ReLU when `relu == 1` (the affine
    /// parameters in f32, whatever the activations' dtype).
    #[cube(launch)]
    pub fn normalize<F: Float>(
        x: &Tensor<F>,
        gamma: &Tensor<f32>,
        beta: &Tensor<f32>,
        stats: &Tensor<f32>,
        out: &mut Tensor<F>,
        hw: usize,
        channels_per_group: usize,
        relu: u32,
        #[define(F)] _dtype: ElemType,
    ) {
        if ABSOLUTE_POS >= out.len() {
            terminate!();
        }
        let channels = gamma.len();
        let plane = ABSOLUTE_POS / hw;
        let c = plane % channels;
        let range = (plane / channels) * (channels / channels_per_group) + c / channels_per_group;
        let v = (f32::cast_from(x[ABSOLUTE_POS]) - stats[range * 2]) * stats[range * 2 + 1];
        let mut y = v * gamma[c] + beta[c];
        if relu == 1 {
            y = f32::max(y, 0.0f32);
        }
        out[ABSOLUTE_POS] = F::cast_from(y);
    }
}

impl GroupNormOps for CubeBackend {
    fn group_norm(x: FloatTensor<Self>, gamma: FloatTensor<Self>, beta: FloatTensor<Self>, num_groups: u32, epsilon: f32, relu: u32) -> FloatTensor<Self> {
        let (x, gamma, beta) = (into_contiguous(x), into_contiguous(gamma), into_contiguous(beta));
        let shape = x.meta.shape().clone();
        let (n, c) = (shape[0], shape[1]);
        let hw = shape.num_elements() / (n * c).max(1);
        let out = empty_device_dtype(x.client.clone(), x.device.clone(), shape.clone(), x.dtype);
        let total = shape.num_elements();
        let groups = num_groups as usize;
        if total == 0 || groups == 0 || c % groups != 0 {
            return out;
        }
        let (client, device, dtype) = (x.client.clone(), x.device.clone(), x.dtype);
        let ranges = n * groups;
        let group_len = (c / groups) * hw;
        let lanes = group_len.div_ceil(VALUES_PER_LANE);
        let partials = empty_device_dtype(client.clone(), device.clone(), Shape::from(vec![ranges * lanes * 3]), DType::F32);
        let stats = empty_device_dtype(client.clone(), device.clone(), Shape::from(vec![ranges * 2]), DType::F32);
        let launch_dims = |units: usize| launch::elementwise(&client, units);
        let (count, dim) = launch_dims(ranges * lanes);
        launch::counted();
        kernel::partial_stats::launch(
            &client,
            count,
            dim,
            x.clone().into_tensor_arg(),
            partials.clone().into_tensor_arg(),
            group_len,
            lanes,
            dtype_to_storage_type(dtype),
        );
        let (count, dim) = launch_dims(ranges);
        launch::counted();
        kernel::finish_stats::launch(&client, count, dim, partials.into_tensor_arg(), stats.clone().into_tensor_arg(), lanes, epsilon);
        let (count, dim) = launch_dims(total);
        launch::counted();
        kernel::normalize::launch(
            &client,
            count,
            dim,
            x.into_tensor_arg(),
            gamma.into_tensor_arg(),
            beta.into_tensor_arg(),
            stats.into_tensor_arg(),
            out.clone().into_tensor_arg(),
            hw,
            c / groups,
            relu,
            dtype_to_storage_type(dtype),
        );
        out
    }
}

/// [`GroupNormOps::group_norm`] on Burn tensors.
pub fn group_norm(x: Tensor<4>, gamma: Tensor<1>, beta: Tensor<1>, num_groups: usize, epsilon: f64, relu: bool) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as GroupNormOps>::group_norm(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        num_groups as u32,
        epsilon as f32,
        relu as u32,
    ))
}
