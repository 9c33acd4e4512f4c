//! ResNet-50/101 with GroupNorm (mmdet `ResNet(norm_cfg=GN(32), style='pytorch')`), outputs C2..C5.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{GroupNorm, GroupNormConfig};
use burn::tensor::module::max_pool2d;
use burn::tensor::ops::MaxPoolOptions;
use burn::tensor::{Device, Tensor};

use super::bottleneck::{Bottleneck, BottleneckConfig};
use crate::layers::conv_no_bias;
use crate::ops::{conv2d, group_norm_relu};

/// Keys `conv1.weight`, `gn1.{weight,bias}`, `layer{1..4}.{i}.…`.
#[derive(Module, Debug)]
pub struct ResNet {
    pub conv1: Conv2d,
    pub gn1: GroupNorm,
    pub layer1: Vec<Bottleneck>,
    pub layer2: Vec<Bottleneck>,
    pub layer3: Vec<Bottleneck>,
    pub layer4: Vec<Bottleneck>,
}

#[derive(Debug, Clone)]
pub struct ResNetConfig {
    /// Blocks per stage: (3, 4, 6, 3) for R-50, (3, 4, 23, 3) for R-101.
    pub stage_blocks: [usize; 4],
    pub num_groups: usize,
    pub eps: f64,
}

/// C2..C5, strides 4, 8, 16, 32, widths 256, 512, 1024, 2048.
pub type BackboneFeatures = [Tensor<4>; 4];

impl ResNetConfig {
    pub fn init(&self, device: &Device) -> ResNet {
        let mut in_channels = 64;
        let mut stage = |s: usize| -> Vec<Bottleneck> {
            let planes = 64 << s;
            (0..self.stage_blocks[s])
                .map(|b| {
                    let block = BottleneckConfig {
                        in_channels,
                        planes,
                        stride: if b == 0 && s > 0 { 2 } else { 1 },
                        num_groups: self.num_groups,
                        eps: self.eps,
                    }
                    .init(device);
                    in_channels = planes * 4;
                    block
                })
                .collect()
        };
        let (layer1, layer2, layer3, layer4) = (stage(0), stage(1), stage(2), stage(3));
        ResNet {
            conv1: conv_no_bias(3, 64, 7, 2, device),
            gn1: GroupNormConfig::new(self.num_groups, 64).with_epsilon(self.eps).init(device),
            layer1,
            layer2,
            layer3,
            layer4,
        }
    }
}

impl ResNet {
    /// Stem: 7x7/2 conv -> GN -> ReLU -> 3x3/2 max pool (padding 1).
    pub fn stem(&self, x: Tensor<4>) -> Tensor<4> {
        let x = group_norm_relu(conv2d(&self.conv1, x), &self.gn1);
        max_pool2d(x, MaxPoolOptions::new([3, 3]).with_stride([2, 2]).with_padding([1, 1]))
    }

    pub fn forward(&self, x: Tensor<4>) -> BackboneFeatures {
        let run = |x: Tensor<4>, blocks: &[Bottleneck]| blocks.iter().fold(x, |x, b| b.forward(x));
        let c2 = run(self.stem(x), &self.layer1);
        let c3 = run(c2.clone(), &self.layer2);
        let c4 = run(c3.clone(), &self.layer3);
        let c5 = run(c4.clone(), &self.layer4);
        [c2, c3, c4, c5]
    }
}
