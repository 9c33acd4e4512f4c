//! GroupNorm (+ optional ReLU) forward over Burn's `GroupNorm` parameters.
//!
//! Burn's own forward normalises in five passes; this one folds the affine into one per-channel
//! `scale`/`shift` pair, `y = x * scale + shift`, so the big tensor is read for the statistics and once more.

use burn::nn::GroupNorm;
use burn::tensor::Tensor;
use burn::tensor::activation::relu;

/// `relu?(group_norm(x))` for `x: [N, C, H, W]`, statistics per sample and group, biased variance.
pub fn group_norm<const RELU: bool>(x: Tensor<4>, gn: &GroupNorm) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    let g = gn.num_groups;
    let grouped = x.clone().reshape([n, g, (c / g) * h * w]);
    let (var, mean) = grouped.var_mean_bias(2); // [n, g, 1] each
    let rstd = var.add_scalar(gn.epsilon).sqrt().recip();
    let gamma = gn.gamma.as_ref().expect("GroupNorm is affine").val().reshape([1, g, c / g]);
    let beta = gn.beta.as_ref().expect("GroupNorm is affine").val().reshape([1, g, c / g]);
    let scale = gamma.mul(rstd); // [n, g, c/g]
    let shift = beta.sub(mean.mul(scale.clone()));
    let y = x.mul(scale.reshape([n, c, 1, 1])).add(shift.reshape([n, c, 1, 1]));
    if RELU { relu(y) } else { y }
}
