//! mmdet `RPNHead`: a shared 3x3 conv + ReLU, then objectness (sigmoid, one per anchor) and box deltas; and its
//! inference (`predict`): the pyramid of a batch in, each image's proposals out.

use burn::config::Config;
use burn::module::Module;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::{Device, Tensor};

use super::proposals::{LevelCandidates, Proposals, proposals};
use crate::config::{RpnConfig, RpnTestConfig};
use crate::error::Result;
use crate::ops::{conv2d_pair, conv2d_relu_each, top_k_anchors};

/// Keys `rpn_conv.{weight,bias}`, `rpn_cls.{weight,bias}`, `rpn_reg.{weight,bias}`.
#[derive(Module, Debug)]
pub struct RpnHead {
    /// The shared 3x3 conv.
    pub rpn_conv: Conv2d,
    /// Objectness, one logit per anchor.
    pub rpn_cls: Conv2d,
    /// Deltas, four per anchor.
    pub rpn_reg: Conv2d,
    /// Anchors and the box coder: fixed by the checkpoint, not parameters.
    #[module(skip)]
    pub prior: RpnConfig,
}

/// mmdet `RPNHead(in_channels=256, feat_channels=256)`, shared by every pyramid level.
#[derive(Config, Debug)]
pub struct RpnHeadConfig {
    /// Width of the pyramid levels and of the shared conv.
    #[config(default = 256)]
    pub channels: usize,
    /// Anchors (`A` per location: one per ratio and scale) and the box coder; mmdetection's GN configs'.
    #[config(default = "RpnConfig::default()")]
    pub prior: RpnConfig,
}

impl RpnHeadConfig {
    /// The head, its parameters uninitialised until weights are loaded.
    pub fn init(&self, device: &Device) -> RpnHead {
        let (c, a) = (self.channels, self.prior.num_anchors());
        RpnHead {
            rpn_conv: Conv2dConfig::new([c, c], [3, 3]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)).init(device),
            rpn_cls: Conv2dConfig::new([c, a], [1, 1]).init(device),
            rpn_reg: Conv2dConfig::new([c, a * 4], [1, 1]).init(device),
            prior: self.prior.clone(),
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

    /// mmdet `RPNHead.predict`: each image's proposals from the pyramid of a batch (`img_shapes[i]`: image `i`'s
    /// resized, unpadded `(h, w)`). The `nms_pre` best anchors of each level are chosen where the outputs are
    /// (on a GPU only they and their deltas are read back), then decoded and suppressed on the host.
    pub fn predict(&self, pyramid: &[Tensor<4>], img_shapes: &[(usize, usize)], test: &RpnTestConfig) -> Result<Vec<Proposals>> {
        let mut levels: Vec<Vec<LevelCandidates>> = vec![Vec::with_capacity(pyramid.len()); img_shapes.len()];
        for (cls, reg) in self.forward_levels(pyramid) {
            let [_, _, height, width] = cls.dims();
            for (image, anchors) in levels.iter_mut().zip(top_k_anchors(cls, reg, test.nms_pre)?) {
                image.push(LevelCandidates::new(anchors, height, width));
            }
        }
        Ok(levels.iter().zip(img_shapes).map(|(l, &shape)| proposals(l, &self.prior, test, shape)).collect())
    }
}
