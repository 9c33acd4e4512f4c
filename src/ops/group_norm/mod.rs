//! GroupNorm (+ ReLU, or + residual + ReLU) over Burn's `GroupNorm` parameters, by the implementation `dispatch`
//! picks: on flex in f32 the host kernel (`host`: parallel over groups, centred variance, ReLU fused, in place;
//! 41 ms on 1x256x200x304 with ReLU against 53 ms for Burn's composition without it, `cargo bench --bench ops`);
//! on the GPU backends the CubeCL kernels (`cube`: split statistics so a batch of one fills the GPU, one
//! normalise + affine + ReLU pass, f32 statistics for f16 tensors); flex in f16 keeps Burn's composition, in f32.

mod cube;
mod host;

use burn::module::Param;
use burn::nn::GroupNorm;
use burn::tensor::activation::relu;
use burn::tensor::{DType, Tensor};

use host::Then;

use super::dispatch::{Impl, Op, implementation};
use super::flex;
use crate::precision::to_f32;

/// `group_norm(x)` for `x: [N, C, H, W]`: statistics per sample and group, biased variance, affine.
pub fn group_norm(x: Tensor<4>, gn: &GroupNorm) -> Tensor<4> {
    forward(x, gn, false)
}

/// `relu(group_norm(x))`, the ReLU fused into the normalising pass.
pub fn group_norm_relu(x: Tensor<4>, gn: &GroupNorm) -> Tensor<4> {
    forward(x, gn, true)
}

/// `relu(group_norm(x) + residual)`, a ResNet block's end; on flex in f32 one pass after the statistics (two
/// fewer over the block's largest tensor).
pub fn group_norm_add_relu(x: Tensor<4>, gn: &GroupNorm, residual: Tensor<4>) -> Tensor<4> {
    let host = implementation(Op::GroupNorm, &x.device(), x.dtype()) == Impl::Host;
    if !host || residual.dims() != x.dims() || residual.dtype() != DType::F32 {
        return relu(group_norm(x, gn).add(residual));
    }
    let residual = flex::host_values(residual);
    host_group_norm(x, gn, Then::AddRelu(&residual))
}

fn forward(x: Tensor<4>, gn: &GroupNorm, relu_after: bool) -> Tensor<4> {
    match implementation(Op::GroupNorm, &x.device(), x.dtype()) {
        Impl::Host => host_group_norm(x, gn, if relu_after { Then::Relu } else { Then::Nothing }),
        Impl::Cube => cube::group_norm(x, to_f32(affine(&gn.gamma)), to_f32(affine(&gn.beta)), gn.num_groups, gn.epsilon, relu_after),
        Impl::Burn => {
            // flex in a reduced precision (f16): Burn's composition in f32, the result back in the input's dtype.
            let dtype = x.dtype();
            let f32 = |p: &Option<Param<Tensor<1>>>| p.clone().map(|p| p.map(|t| t.cast(DType::F32)));
            let gn32 = GroupNorm { gamma: f32(&gn.gamma), beta: f32(&gn.beta), ..gn.clone() };
            let y = gn32.forward(x.cast(DType::F32));
            (if relu_after { relu(y) } else { y }).cast(dtype)
        }
    }
}

fn affine(p: &Option<Param<Tensor<1>>>) -> Tensor<1> {
    p.as_ref().expect("GroupNorm is affine (GroupNormConfig's default)").val()
}

/// The host kernel in place on `x`'s buffer, then `then`.
fn host_group_norm(x: Tensor<4>, gn: &GroupNorm, then: Then) -> Tensor<4> {
    let device = x.device();
    let [n, c, h, w] = x.dims();
    let mut values = flex::to_host(x);
    let (gamma, beta) = (flex::host_values(affine(&gn.gamma)), flex::host_values(affine(&gn.beta)));
    host::group_norm_in_place(&mut values, c, h * w, gn.num_groups, &gamma, &beta, gn.epsilon, then);
    flex::from_host(values, [n, c, h, w], &device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::GroupNormConfig;
    use burn::tensor::{Device, Distribution};

    #[test]
    fn host_kernel_equals_burns() {
        let device = Device::flex();
        let x = Tensor::<4>::random([2, 64, 5, 7], Distribution::Normal(0.5, 2.0), &device);
        let gn = GroupNormConfig::new(32, 64).init(&device);
        let gn = GroupNorm { gamma: gn.gamma.map(|p| p.map(|g| g.add_scalar(0.3))), ..gn };
        let a = relu(gn.forward(x.clone())).into_data().try_to_vec::<f32>().unwrap();
        let b = group_norm_relu(x, &gn).into_data().try_to_vec::<f32>().unwrap();
        let max = a.iter().zip(&b).map(|(p, q)| (p - q).abs()).fold(0f32, f32::max);
        assert!(max < 1e-5, "max diff {max}");
    }
}
