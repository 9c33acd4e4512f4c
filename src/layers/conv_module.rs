//! mmcv's `ConvModule` as the GN configs use it: conv (no bias) -> GroupNorm (-> ReLU).

use burn::config::Config;
use burn::module::Module;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::GroupNorm;
use burn::tensor::{Device, Tensor};

use super::NormConfig;
use crate::ops::{conv2d, group_norm, group_norm_relu};

/// Conv + GroupNorm, state_dict keys `conv.weight`, `gn.weight`, `gn.bias`.
#[derive(Module, Debug)]
pub struct ConvModule {
    /// The convolution (no bias: the norm's beta replaces it).
    pub conv: Conv2d,
    /// Its GroupNorm.
    pub gn: GroupNorm,
}

/// A `k x k` conv with "same" padding `k / 2`, stride 1, then GroupNorm.
#[derive(Config, Debug)]
pub struct ConvModuleConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Square kernel side.
    #[config(default = 3)]
    pub kernel_size: usize,
    /// The GroupNorm after the conv.
    #[config(default = "NormConfig::new()")]
    pub norm: NormConfig,
}

impl ConvModuleConfig {
    /// The module, its parameters uninitialised until weights are loaded.
    pub fn init(&self, device: &Device) -> ConvModule {
        ConvModule {
            conv: conv_no_bias(self.in_channels, self.out_channels, self.kernel_size, 1, device),
            gn: self.norm.init(self.out_channels, device),
        }
    }
}

/// A bias-free conv with padding `k / 2` (what every GN'd conv of these models is).
pub fn conv_no_bias(cin: usize, cout: usize, k: usize, stride: usize, device: &Device) -> Conv2d {
    conv_grouped(cin, cout, k, stride, 1, device)
}

/// [`conv_no_bias`] in `groups` groups (ResNeXt's 3x3 convs).
pub fn conv_grouped(cin: usize, cout: usize, k: usize, stride: usize, groups: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([cin, cout], [k, k])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(k / 2, k / 2, k / 2, k / 2))
        .with_groups(groups)
        .with_bias(false)
        .init(device)
}

impl ConvModule {
    /// conv -> GN -> ReLU (the heads' convs).
    pub fn forward_relu(&self, x: Tensor<4>) -> Tensor<4> {
        group_norm_relu(conv2d(&self.conv, x), &self.gn)
    }

    /// conv -> GN, no activation (the FPN's `act_cfg=None`).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        group_norm(conv2d(&self.conv, x), &self.gn)
    }
}
