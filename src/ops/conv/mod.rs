//! Convolution: Burn's `Conv2d` parameters, computed by the implementation `dispatch` picks —
//! on flex in f32 the host kernels (`winograd` for 3x3 stride-1 convs, `im2col` + GEMM for the others), the
//! plain direct kernel (`cube`) on software Vulkan, Burn's `Conv2d::forward` everywhere else.

mod cube;
mod im2col;
mod winograd;

use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::activation::relu;
use burn::tensor::{DType, Tensor};

use super::dispatch::{Impl, Op, implementation};
use super::flex;
use crate::precision::{compute_in_f32, to_f32};

/// `conv.forward(x)`, the fastest way this device has (and on software Vulkan, one that compiles there).
pub fn conv2d(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    if x.dtype() != DType::F32 {
        // f16 activations: f32 weights and arithmetic (see `precision`), the result cast back.
        return compute_in_f32(x, |x| conv2d(conv, x));
    }
    let op = if is_winograd_shape(conv) { Op::Conv3x3 } else { Op::Conv };
    match (implementation(op, &x.device(), x.dtype()), plain_padding(conv)) {
        (Impl::Host, _) if op == Op::Conv3x3 => winograd_conv(conv, x, false),
        (Impl::Host, Some(padding)) => im2col_conv(conv, x, padding),
        (Impl::Cube, Some(padding)) if conv.groups == 1 => {
            let [k, ..] = conv.weight.dims();
            let bias = conv.bias.as_ref().map(|b| b.val()).unwrap_or_else(|| Tensor::<1>::zeros([k], &x.device()).cast(x.dtype()));
            cube::plain_conv2d(x, conv.weight.val(), bias, conv.stride, padding)
        }
        _ => conv.forward(x),
    }
}

/// `relu(conv.forward(x))`; the Winograd host kernel applies the ReLU as it writes its output.
pub fn conv2d_relu(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    if x.dtype() != DType::F32 {
        return compute_in_f32(x, |x| conv2d_relu(conv, x));
    }
    if is_winograd_shape(conv) && implementation(Op::Conv3x3, &x.device(), x.dtype()) == Impl::Host {
        return winograd_conv(conv, x, true);
    }
    relu(conv2d(conv, x))
}

/// [`conv2d_relu`] of each of `xs` (one conv on every pyramid level, as the RPN's): the Winograd host kernel
/// transforms the filters once for all of them.
pub fn conv2d_relu_each(conv: &Conv2d, xs: &[Tensor<4>]) -> Vec<Tensor<4>> {
    if let Some(x) = xs.iter().find(|x| x.dtype() != DType::F32) {
        let dtype = x.dtype();
        let f32s: Vec<Tensor<4>> = xs.iter().map(|x| to_f32(x.clone())).collect();
        return conv2d_relu_each(conv, &f32s).into_iter().map(|y| y.cast(dtype)).collect();
    }
    let host = |x: &Tensor<4>| implementation(Op::Conv3x3, &x.device(), x.dtype()) == Impl::Host;
    if is_winograd_shape(conv) && xs.iter().all(host) {
        return winograd_conv_each(conv, xs.iter().cloned(), true);
    }
    xs.iter().map(|x| conv2d_relu(conv, x.clone())).collect()
}

/// Two convs of the same shape on one input (the RPN's objectness and box branches): on flex one GEMM pass
/// over the input with the filters stacked, its output split; elsewhere the two convs.
pub fn conv2d_pair(a: &Conv2d, b: &Conv2d, x: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
    // The RPN's outputs, which the host reads: f32 whatever the activations' precision.
    let x = to_f32(x);
    let same = a.kernel_size == b.kernel_size && a.stride == b.stride && a.padding == b.padding;
    let same = same && a.dilation == b.dilation && a.groups == b.groups && a.bias.is_some() == b.bias.is_some();
    let op = if is_winograd_shape(a) { Op::Conv3x3 } else { Op::Conv };
    match (implementation(op, &x.device(), x.dtype()), plain_padding(a)) {
        (Impl::Host, Some(padding)) if same && op == Op::Conv => {
            let ka = a.weight.dims()[0];
            let weight = Tensor::cat(vec![a.weight.val(), b.weight.val()], 0);
            let bias = match (&a.bias, &b.bias) {
                (Some(ba), Some(bb)) => Some(Tensor::cat(vec![ba.val(), bb.val()], 0)),
                _ => None,
            };
            let y = im2col_host(weight, bias, (a.kernel_size, a.stride, a.groups), x, padding);
            let k = y.dims()[1];
            (y.clone().narrow(1, 0, ka), y.narrow(1, ka, k - ka))
        }
        _ => (conv2d(a, x.clone()), conv2d(b, x)),
    }
}

/// The Winograd host kernel on flex's host buffers.
fn winograd_conv(conv: &Conv2d, x: Tensor<4>, relu: bool) -> Tensor<4> {
    winograd_conv_each(conv, [x], relu).remove(0)
}

/// [`winograd_conv`] of each input, with one transform of the filters.
fn winograd_conv_each(conv: &Conv2d, xs: impl IntoIterator<Item = Tensor<4>>, relu: bool) -> Vec<Tensor<4>> {
    let [k, c, ..] = conv.weight.dims();
    let weight = flex::host_values(conv.weight.val());
    let bias = conv.bias.as_ref().map(|b| flex::host_values(b.val()));
    let u = winograd::transform_filters(&weight, k, c);
    xs.into_iter()
        .map(|x| {
            let device = x.device();
            let [n, c, h, w] = x.dims();
            let y = winograd::conv3x3(&flex::host_values(x), [n, c, h, w], &u, k, bias.as_deref(), relu);
            flex::from_host(y, [n, k, h, w], &device)
        })
        .collect()
}

/// im2col + GEMM on flex's host buffers.
fn im2col_conv(conv: &Conv2d, x: Tensor<4>, padding: [usize; 4]) -> Tensor<4> {
    im2col_host(conv.weight.val(), conv.bias.as_ref().map(|b| b.val()), (conv.kernel_size, conv.stride, conv.groups), x, padding)
}

/// `weight` (`[K, C / groups, kh, kw]`) and `bias` with the given (kernel, stride, groups) and padding, by im2col +
/// GEMM.
fn im2col_host(
    weight: Tensor<4>, bias: Option<Tensor<1>>, (kernel, stride, groups): ([usize; 2], [usize; 2], usize), x: Tensor<4>, padding: [usize; 4],
) -> Tensor<4> {
    let device = x.device();
    let k = weight.dims()[0];
    let shape = im2col::ConvShape { input: x.dims(), k, kernel, stride, padding, groups };
    let weight = flex::host_values(weight);
    let bias = bias.map(flex::host_values);
    let y = im2col::conv2d(&flex::host_values(x), &weight, bias.as_deref(), shape);
    let [oh, ow] = shape.output_hw();
    flex::from_host(y, [shape.input[0], k, oh, ow], &device)
}

/// A pointer for the host kernels' parallel writes to disjoint elements of one output buffer.
#[derive(Clone, Copy)]
struct SharedMut(*mut f32);
// SAFETY: each kernel uses it only inside its parallel loops, while the buffer it points to is alive and not
// otherwise accessed, and its threads write disjoint elements (each use says why).
unsafe impl Sync for SharedMut {}
unsafe impl Send for SharedMut {}

impl SharedMut {
    /// The pointer, through a method so closures capture the whole (`Sync`) struct, not its raw field.
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// `(top, left, bottom, right)` when the host im2col kernel covers `conv` (explicit or no padding, no dilation; the
/// plain GPU kernel also wants no groups).
fn plain_padding(conv: &Conv2d) -> Option<[usize; 4]> {
    if conv.dilation != [1, 1] {
        return None;
    }
    match conv.padding {
        PaddingConfig2d::Explicit(top, left, bottom, right) => Some([top, left, bottom, right]),
        PaddingConfig2d::Valid => Some([0; 4]),
        PaddingConfig2d::Same => None,
    }
}

/// 3x3, stride 1, padding 1 on every side, no dilation or groups.
fn is_winograd_shape(conv: &Conv2d) -> bool {
    conv.kernel_size == [3, 3]
        && conv.stride == [1, 1]
        && conv.dilation == [1, 1]
        && conv.groups == 1
        && matches!(conv.padding, PaddingConfig2d::Explicit(1, 1, 1, 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::conv::Conv2dConfig;
    use burn::tensor::{Device, Distribution};

    /// The RPN's pair of 1x1 convs and the fused ReLU equal Burn's separate ops.
    #[test]
    fn pair_and_relu_equal_separate_convs() {
        let device = Device::flex();
        let x = Tensor::<4>::random([2, 16, 9, 11], Distribution::Normal(0.0, 1.0), &device);
        let a = Conv2dConfig::new([16, 3], [1, 1]).init(&device);
        let b = Conv2dConfig::new([16, 12], [1, 1]).init(&device);
        let close = |p: Tensor<4>, q: Tensor<4>| {
            assert_eq!(p.dims(), q.dims());
            let (p, q) = (p.into_data().try_to_vec::<f32>().unwrap(), q.into_data().try_to_vec::<f32>().unwrap());
            let max = p.iter().zip(&q).map(|(u, v)| (u - v).abs()).fold(0f32, f32::max);
            assert!(max < 1e-5, "max diff {max}");
        };
        let (ya, yb) = conv2d_pair(&a, &b, x.clone());
        close(ya, a.forward(x.clone()));
        close(yb, b.forward(x.clone()));
        let c3 = Conv2dConfig::new([16, 8], [3, 3]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)).init(&device);
        close(conv2d_relu(&c3, x.clone()), relu(c3.forward(x.clone())));
        // One filter transform for several inputs of different sizes gives each one's own result.
        let small = Tensor::<4>::random([1, 16, 5, 3], Distribution::Normal(0.0, 1.0), &device);
        let each = conv2d_relu_each(&c3, &[x.clone(), small.clone()]);
        assert_eq!(each.len(), 2);
        let mut each = each.into_iter();
        close(each.next().unwrap(), relu(c3.forward(x)));
        close(each.next().unwrap(), relu(c3.forward(small)));
    }

    /// The dispatched conv equals Burn's own on flex, with and without bias, on a map and on a batch of RoIs,
    /// strided, and grouped as ResNeXt's (plain and strided).
    #[test]
    fn dispatch_equals_burns_conv() {
        let device = Device::flex();
        let cases = [([1, 32, 19, 26], true, 1, 1), ([40, 16, 7, 7], false, 1, 1), ([1, 8, 9, 9], false, 2, 1), ([1, 32, 19, 26], false, 1, 8), ([2, 16, 15, 12], true, 2, 4)];
        for (shape, bias, stride, groups) in cases {
            let conv = Conv2dConfig::new([shape[1], 24], [3, 3])
                .with_groups(groups)
                .with_stride([stride, stride])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .with_bias(bias)
                .init(&device);
            let x = Tensor::<4>::random(shape, Distribution::Normal(0.3, 1.0), &device);
            let expect = conv.forward(x.clone());
            let got = conv2d(&conv, x);
            assert_eq!(got.dims(), expect.dims());
            let (e, g) = (expect.into_data().try_to_vec::<f32>().unwrap(), got.into_data().try_to_vec::<f32>().unwrap());
            let num: f32 = e.iter().zip(&g).map(|(a, b)| (a - b) * (a - b)).sum();
            let den: f32 = e.iter().map(|a| a * a).sum();
            assert!((num / den).sqrt() < 4e-6, "{shape:?}: rel L2 {}", (num / den).sqrt());
        }
    }
}
