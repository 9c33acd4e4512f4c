//! ResNet-50/101 and ResNeXt-50/101 with GroupNorm (mmdet `ResNet` / `ResNeXt(norm_cfg=GN(32), style='pytorch')`),
//! outputs C2..C5.

use burn::config::Config;
use burn::module::Module;
use burn::nn::GroupNorm;
use burn::nn::conv::Conv2d;
use burn::tensor::{Device, Tensor};

use super::bottleneck::{Bottleneck, BottleneckConfig};
use crate::layers::{NormConfig, conv_no_bias};
use crate::ops::{conv2d, group_norm_relu, max_pool_3x3_s2};

/// Keys `conv1.weight`, `gn1.{weight,bias}`, `layer{1..4}.{i}.…`.
#[derive(Module, Debug)]
pub struct ResNet {
    /// The 7x7 stride-2 stem conv.
    pub conv1: Conv2d,
    /// The stem's GroupNorm.
    pub gn1: GroupNorm,
    /// Stage 1 (C2, stride 4).
    pub layer1: Vec<Bottleneck>,
    /// Stage 2 (C3, stride 8).
    pub layer2: Vec<Bottleneck>,
    /// Stage 3 (C4, stride 16).
    pub layer3: Vec<Bottleneck>,
    /// Stage 4 (C5, stride 32).
    pub layer4: Vec<Bottleneck>,
}

/// mmdet `ResNet(depth, norm_cfg=GN(32), style='pytorch')`, or `ResNeXt(depth, groups, base_width, ...)`.
#[derive(Config, Debug)]
pub struct ResNetConfig {
    /// 50 (blocks 3, 4, 6, 3) or 101 (3, 4, 23, 3).
    #[config(default = 50)]
    pub depth: usize,
    /// Groups of every bottleneck's 3x3 conv (1: ResNet; 32: ResNeXt 32x4d).
    #[config(default = 1)]
    pub groups: usize,
    /// With `groups` > 1, channels per group at the first stage (4 in ResNeXt 32x4d); ignored for ResNet.
    #[config(default = 64)]
    pub base_width: usize,
    /// GroupNorm of every block.
    #[config(default = "NormConfig::new()")]
    pub norm: NormConfig,
}

/// C2..C5, strides 4, 8, 16, 32, widths 256, 512, 1024, 2048.
pub type BackboneFeatures = [Tensor<4>; 4];

impl ResNetConfig {
    /// The width of a stage's 3x3 convs: `planes` for ResNet; `floor(planes * base_width / 64) * groups` for
    /// ResNeXt (mmdet `resnext.py` `Bottleneck`).
    pub fn bottleneck_width(&self, planes: usize) -> usize {
        if self.groups == 1 { planes } else { planes * self.base_width / 64 * self.groups }
    }

    /// Blocks per stage.
    pub fn stage_blocks(&self) -> [usize; 4] {
        if self.depth == 101 { [3, 4, 23, 3] } else { [3, 4, 6, 3] }
    }

    /// The backbone, its parameters uninitialised until weights are loaded.
    pub fn init(&self, device: &Device) -> ResNet {
        let blocks = self.stage_blocks();
        let mut in_channels = 64;
        let mut stage = |s: usize| -> Vec<Bottleneck> {
            let planes = 64 << s;
            (0..blocks[s])
                .map(|b| {
                    let block = BottleneckConfig::new(in_channels, planes)
                        .with_width(self.bottleneck_width(planes))
                        .with_groups(self.groups)
                        .with_stride(if b == 0 && s > 0 { 2 } else { 1 })
                        .with_norm(self.norm.clone())
                        .init(device);
                    in_channels = planes * 4;
                    block
                })
                .collect()
        };
        let (layer1, layer2, layer3, layer4) = (stage(0), stage(1), stage(2), stage(3));
        ResNet {
            conv1: conv_no_bias(3, 64, 7, 2, device),
            gn1: self.norm.init(64, device),
            layer1,
            layer2,
            layer3,
            layer4,
        }
    }
}

impl ResNet {
    /// Values of the largest activation one `h x w` input makes here: the stem's output at half resolution or
    /// the first stage's at a quarter (the later stages double the channels and quarter the area).
    pub fn activation_per_image(&self, h: usize, w: usize) -> usize {
        let stem = self.conv1.weight.dims()[0] * h.div_ceil(2) * w.div_ceil(2);
        let c2 = self.layer1.last().map_or(0, |b| b.conv3.weight.dims()[0]) * h.div_ceil(4) * w.div_ceil(4);
        stem.max(c2)
    }

    /// Stem: 7x7/2 conv -> GN -> ReLU -> 3x3/2 max pool (padding 1).
    pub fn stem(&self, x: Tensor<4>) -> Tensor<4> {
        let x = group_norm_relu(conv2d(&self.conv1, x), &self.gn1);
        max_pool_3x3_s2(x)
    }

    /// C2..C5 of a `[N, 3, H, W]` input.
    pub fn forward(&self, x: Tensor<4>) -> BackboneFeatures {
        let run = |x: Tensor<4>, blocks: &[Bottleneck]| blocks.iter().fold(x, |x, b| b.forward(x));
        let c2 = run(self.stem(x), &self.layer1);
        let c3 = run(c2.clone(), &self.layer2);
        let c4 = run(c3.clone(), &self.layer3);
        let c5 = run(c4.clone(), &self.layer4);
        [c2, c3, c4, c5]
    }
}
