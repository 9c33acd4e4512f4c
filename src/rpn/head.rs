//! mmdet `RPNHead`: a shared 3x3 conv + ReLU, then objectness (sigmoid, one per anchor) and box deltas.

use burn::config::Config;
use burn::module::Module;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::{Device, Tensor};

use crate::ops::{conv2d_pair, conv2d_relu_each};

/// Keys `rpn_conv.{weight,bias}`, `rpn_cls.{weight,bias}`, `rpn_reg.{weight,bias}`.
#[derive(Module, Debug)]
pub struct RpnHead {
    /// The shared 3x3 conv.
    pub rpn_conv: Conv2d,
    /// Objectness, one logit per anchor.
    pub rpn_cls: Conv2d,
    /// Deltas, four per anchor.
    pub rpn_reg: Conv2d,
}

/// mmdet `RPNHead(in_channels=256, feat_channels=256)`, shared by every pyramid level.
#[derive(Config, Debug)]
pub struct RpnHeadConfig {
    /// Width of the pyramid levels and of the shared conv.
    #[config(default = 256)]
    pub channels: usize,
    /// Anchors per location.
    #[config(default = 3)]
    pub num_anchors: usize,
}

impl RpnHeadConfig {
    /// The head, its parameters uninitialised until weights are loaded.
    pub fn init(&self, device: &Device) -> RpnHead {
        let c = self.channels;
        RpnHead {
            rpn_conv: Conv2dConfig::new([c, c], [3, 3]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)).init(device),
            rpn_cls: Conv2dConfig::new([c, self.num_anchors], [1, 1]).init(device),
            rpn_reg: Conv2dConfig::new([c, self.num_anchors * 4], [1, 1]).init(device),
        }
    }
}

impl RpnHead {
    /// Objectness logits `[N, A, H, W]` and deltas `[N, 4A, H, W]` of one pyramid level.
    pub fn forward(&self, x: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        self.forward_levels(&[x]).remove(0)
    }

    /// [`RpnHead::forward`] of every pyramid level (the shared conv's filters prepared once).
    pub fn forward_levels(&self, levels: &[Tensor<4>]) -> Vec<(Tensor<4>, Tensor<4>)> {
        conv2d_relu_each(&self.rpn_conv, levels).into_iter().map(|y| conv2d_pair(&self.rpn_cls, &self.rpn_reg, y)).collect()
    }
}
