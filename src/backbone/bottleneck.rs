//! ResNet / ResNeXt bottleneck with GroupNorm, pytorch style: the stride sits on the 3x3 conv (`conv2`), which
//! ResNeXt splits into groups.

use burn::config::Config;
use burn::module::Module;
use burn::nn::GroupNorm;
use burn::nn::conv::Conv2d;
use burn::tensor::{Device, Tensor};

use crate::layers::{NormConfig, conv_grouped, conv_no_bias};
use crate::ops::{conv2d, group_norm, group_norm_add_relu, group_norm_relu};

/// Keys `conv{1,2,3}.weight`, `gn{1,2,3}.{weight,bias}`, and for the first block of a stage
/// `downsample.0.weight` (1x1 conv) and `downsample.1.{weight,bias}` (GN).
#[derive(Module, Debug)]
pub struct Bottleneck {
    /// 1x1 reduction.
    pub conv1: Conv2d,
    /// Its GroupNorm.
    pub gn1: GroupNorm,
    /// 3x3, carrying the block's stride.
    pub conv2: Conv2d,
    /// Its GroupNorm.
    pub gn2: GroupNorm,
    /// 1x1 expansion to `4 * planes`.
    pub conv3: Conv2d,
    /// Its GroupNorm.
    pub gn3: GroupNorm,
    /// The shortcut's 1x1 conv + GroupNorm where shape changes (first block of a stage).
    pub downsample: Option<(Conv2d, GroupNorm)>,
}

/// One bottleneck block.
#[derive(Config, Debug)]
pub struct BottleneckConfig {
    /// Input channels.
    pub in_channels: usize,
    /// The block outputs `4 * planes`.
    pub planes: usize,
    /// Width of the 1x1 and 3x3 convs: `planes` for ResNet (0 means `planes`), wider for ResNeXt.
    #[config(default = 0)]
    pub width: usize,
    /// Groups of the 3x3 conv (ResNeXt's cardinality).
    #[config(default = 1)]
    pub groups: usize,
    /// Stride of the 3x3 conv and of the shortcut.
    #[config(default = 1)]
    pub stride: usize,
    /// GroupNorm of every conv.
    #[config(default = "NormConfig::new()")]
    pub norm: NormConfig,
}

impl BottleneckConfig {
    /// The block, its parameters uninitialised until weights are loaded.
    pub fn init(&self, device: &Device) -> Bottleneck {
        let (cin, out) = (self.in_channels, self.planes * 4);
        let p = if self.width == 0 { self.planes } else { self.width };
        let gn = |c: usize| self.norm.init(c, device);
        let downsample = (self.stride != 1 || cin != out).then(|| (conv_no_bias(cin, out, 1, self.stride, device), gn(out)));
        Bottleneck {
            conv1: conv_no_bias(cin, p, 1, 1, device),
            gn1: gn(p),
            conv2: conv_grouped(p, p, 3, self.stride, self.groups, device),
            gn2: gn(p),
            conv3: conv_no_bias(p, out, 1, 1, device),
            gn3: gn(out),
            downsample,
        }
    }
}

impl Bottleneck {
    /// `relu(block(x) + shortcut(x))`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let identity = match &self.downsample {
            Some((conv, gn)) => group_norm(conv2d(conv, x.clone()), gn),
            None => x.clone(),
        };
        let out = group_norm_relu(conv2d(&self.conv1, x), &self.gn1);
        let out = group_norm_relu(conv2d(&self.conv2, out), &self.gn2);
        group_norm_add_relu(conv2d(&self.conv3, out), &self.gn3, identity)
    }
}
