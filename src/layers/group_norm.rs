//! GroupNorm (+ optional ReLU) forward over Burn's `GroupNorm` parameters.
//!
//! Burn's own composition (mean, centre, mean of squares, scale, affine) measured faster on flex than folding
//! the affine into one per-channel scale/shift (`cargo bench --bench ops`: 124 ms vs 172 ms on
//! 1x256x200x304), so this reuses it and adds the ReLU the ResNet and head ConvModules apply after it.

use burn::nn::GroupNorm;
use burn::tensor::Tensor;
use burn::tensor::activation::relu;

/// `relu?(group_norm(x))` for `x: [N, C, H, W]`, statistics per sample and group, biased variance.
pub fn group_norm<const RELU: bool>(x: Tensor<4>, gn: &GroupNorm) -> Tensor<4> {
    let y = gn.forward(x);
    if RELU { relu(y) } else { y }
}
