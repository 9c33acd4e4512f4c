//! Fully connected and 2x2 transposed-conv layers: Burn's modules, except on software Vulkan, where their
//! matmuls go to the plain kernel (`cube`; see `dispatch` for why), and the transposed conv on flex in f32,
//! which runs as per-RoI GEMMs on the host (`host`), fused there with the mask head's ReLU and own-class logits.

mod cube;
mod host;

use burn::nn::Linear;
use burn::nn::conv::ConvTranspose2d;
use burn::tensor::activation::relu;
use burn::tensor::{DType, Tensor};

use super::dispatch::{Impl, Op, implementation};
use super::flex;
use crate::precision::compute_in_f32;

/// `fc.forward(x)` for `x: [N, in]`.
pub fn linear(fc: &Linear, x: Tensor<2>) -> Tensor<2> {
    if x.dtype() != DType::F32 {
        return compute_in_f32(x, |x| linear(fc, x));
    }
    if implementation(Op::Matmul, &x.device(), x.dtype()) != Impl::Cube {
        return fc.forward(x);
    }
    let [n, i] = x.dims();
    let [_, o] = fc.weight.dims();
    let y = cube::plain_matmul(x.reshape([1, n, i]), fc.weight.val().reshape([1, i, o])).reshape([n, o]);
    match &fc.bias {
        Some(b) => y.add(b.val().reshape([1, o])),
        None => y,
    }
}

/// `lhs.matmul(rhs)` for `[B, M, K] x [B, K, N]`, in f32 whatever the inputs' dtype (an f16 sum over K would
/// lose the result), cast back to it.
pub fn batched_matmul(lhs: Tensor<3>, rhs: Tensor<3>) -> Tensor<3> {
    let dtype = lhs.dtype();
    if dtype != DType::F32 || rhs.dtype() != DType::F32 {
        return batched_matmul(lhs.cast(DType::F32), rhs.cast(DType::F32)).cast(dtype);
    }
    if implementation(Op::Matmul, &lhs.device(), dtype) == Impl::Cube {
        return cube::plain_matmul(lhs, rhs);
    }
    lhs.matmul(rhs)
}

/// `relu(up.forward(x))` projected, RoI by RoI, on its own row of a 1x1 conv: `[N, 2H, 2W]` with
/// `out[n] = sum_k project[n, k] * relu(up.forward(x))[n, k] + project_bias[n]` for `project: [N, K]`,
/// `project_bias: [N]` (the mask head's upsampling and each detection's own-class logits). On flex in f32 one
/// pass per RoI that never holds the `[N, K, 2H, 2W]` map; elsewhere the deconv, its ReLU, a batched matmul.
pub fn conv_transpose_2x2_relu_project(up: &ConvTranspose2d, x: Tensor<4>, project: Tensor<2>, project_bias: Option<Tensor<1>>) -> Tensor<3> {
    let [n, c, h, w] = x.dims();
    let [_, k, ..] = up.weight.dims();
    let host = x.dtype() == DType::F32 && is_plain(up) && implementation(Op::Deconv2x2, &x.device(), x.dtype()) == Impl::Host;
    if host {
        let device = x.device();
        let bias = up.bias.as_ref().map(|b| flex::host_values(b.val()));
        let project_bias = project_bias.map(flex::host_values);
        let (x, weight, project) = (flex::host_values(x), flex::host_values(up.weight.val()), flex::host_values(project));
        let y = host::conv_transpose_2x2_relu_project(&x, [n, c, h, w], (&weight, k, bias.as_deref()), &project, project_bias.as_deref());
        return flex::from_host(y, [n, 2 * h, 2 * w], &device);
    }
    let y = relu(conv_transpose_2x2(up, x)).reshape([n, k, 4 * h * w]);
    let y = batched_matmul(project.reshape([n, 1, k]), y);
    let y = match project_bias {
        Some(b) => y.add(b.reshape([n, 1, 1])),
        None => y,
    };
    y.reshape([n, 2 * h, 2 * w])
}

/// 2x2, stride 2, no padding, dilation or groups: output windows that do not overlap.
fn is_plain(up: &ConvTranspose2d) -> bool {
    let plain = up.kernel_size == [2, 2] && up.stride == [2, 2] && up.padding == [0, 0] && up.padding_out == [0, 0];
    plain && up.dilation == [1, 1] && up.groups == 1
}

/// `up.forward(x)` for the mask head's 2x2, stride-2 transposed conv: with no overlap between output
/// windows it is one matmul to `4 K` channels, `[K, 2, 2]` per pixel, then a pixel shuffle.
pub fn conv_transpose_2x2(up: &ConvTranspose2d, x: Tensor<4>) -> Tensor<4> {
    if x.dtype() != DType::F32 {
        return compute_in_f32(x, |x| conv_transpose_2x2(up, x));
    }
    let plain = is_plain(up);
    let [n, c, h, w] = x.dims();
    let [_, k, ..] = up.weight.dims();
    match implementation(Op::Deconv2x2, &x.device(), x.dtype()) {
        Impl::Host if plain => {
            let device = x.device();
            let bias = up.bias.as_ref().map(|b| flex::host_values(b.val()));
            let y = host::conv_transpose_2x2(&flex::host_values(x), [n, c, h, w], &flex::host_values(up.weight.val()), k, bias.as_deref());
            return flex::from_host(y, [n, k, 2 * h, 2 * w], &device);
        }
        Impl::Cube if plain => {}
        _ => return up.forward(x),
    }
    // Weight [C, K, 2, 2] -> [1, 4K, C]: row (k, dy, dx).
    let weight = up.weight.val().reshape([c, k * 4]).swap_dims(0, 1).reshape([1, k * 4, c]);
    let y = cube::plain_matmul(weight, x.reshape([n, c, h * w]))
        .reshape([n, k, 2, 2, h, w])
        .permute([0, 1, 4, 2, 5, 3])
        .reshape([n, k, h * 2, w * 2]);
    match &up.bias {
        Some(b) => y.add(b.val().reshape([1, k, 1, 1])),
        None => y,
    }
}
