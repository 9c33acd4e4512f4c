//! Convolution dispatch: 3x3 stride-1 convs on flex go to the Winograd host kernel (`flex::winograd`),
//! everything else (and every conv on the GPU backends) to Burn's `Conv2d::forward`.

use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::Tensor;

use super::flex::{self, winograd};

/// `conv.forward(x)`, the fastest way this backend has.
pub fn conv2d(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    if !(flex::applies(&x) && is_winograd_shape(conv)) {
        return conv.forward(x);
    }
    let device = x.device();
    let [n, c, h, w] = x.dims();
    let [k, ..] = conv.weight.dims();
    let weight = flex::to_host(conv.weight.val());
    let bias = conv.bias.as_ref().map(|b| flex::to_host(b.val()));
    let u = winograd::transform_filters(&weight, k, c);
    let y = winograd::conv3x3(&flex::to_host(x), [n, c, h, w], &u, k, bias.as_deref());
    flex::from_host(y, [n, k, h, w], &device)
}

/// 3x3, stride 1, padding 1 on every side, no dilation or groups.
fn is_winograd_shape(conv: &Conv2d) -> bool {
    conv.kernel_size == [3, 3]
        && conv.stride == [1, 1]
        && conv.dilation == [1, 1]
        && conv.groups == 1
        && matches!(conv.padding, PaddingConfig2d::Explicit(1, 1, 1, 1))
}
