//! mmcv's `ConvModule` as the GN configs use it: conv (no bias) -> GroupNorm (-> ReLU).

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{GroupNorm, GroupNormConfig, PaddingConfig2d};
use burn::tensor::{Device, Tensor};

use crate::ops::{conv2d, group_norm, group_norm_relu};

/// Conv + GroupNorm, state_dict keys `conv.weight`, `gn.weight`, `gn.bias`.
#[derive(Module, Debug)]
pub struct ConvModule {
    pub conv: Conv2d,
    pub gn: GroupNorm,
}

#[derive(Debug, Clone)]
pub struct ConvModuleConfig {
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel_size: usize,
    pub stride: usize,
    pub num_groups: usize,
    pub eps: f64,
}

impl ConvModuleConfig {
    /// A `k x k` conv with "same" padding `k / 2`, stride 1.
    pub fn new(in_channels: usize, out_channels: usize, kernel_size: usize, num_groups: usize, eps: f64) -> Self {
        Self { in_channels, out_channels, kernel_size, stride: 1, num_groups, eps }
    }

    pub fn with_stride(mut self, stride: usize) -> Self {
        self.stride = stride;
        self
    }

    pub fn init(&self, device: &Device) -> ConvModule {
        ConvModule {
            conv: conv_no_bias(self.in_channels, self.out_channels, self.kernel_size, self.stride, device),
            gn: GroupNormConfig::new(self.num_groups, self.out_channels).with_epsilon(self.eps).init(device),
        }
    }
}

/// A bias-free conv with padding `k / 2` (what every GN'd conv of these models is).
pub fn conv_no_bias(cin: usize, cout: usize, k: usize, stride: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([cin, cout], [k, k])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(k / 2, k / 2, k / 2, k / 2))
        .with_bias(false)
        .init(device)
}

impl ConvModule {
    /// conv -> GN -> ReLU (backbone-free heads).
    pub fn forward_relu(&self, x: Tensor<4>) -> Tensor<4> {
        group_norm_relu(conv2d(&self.conv, x), &self.gn)
    }

    /// conv -> GN, no activation (the FPN's `act_cfg=None`).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        group_norm(conv2d(&self.conv, x), &self.gn)
    }
}
