//! ResNet bottleneck with GroupNorm, pytorch style: the stride sits on the 3x3 conv (`conv2`).

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{GroupNorm, GroupNormConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use crate::layers::conv_no_bias;
use crate::ops::{conv2d, group_norm, group_norm_relu};

/// Keys `conv{1,2,3}.weight`, `gn{1,2,3}.{weight,bias}`, and for the first block of a stage
/// `downsample.0.weight` (1x1 conv) and `downsample.1.{weight,bias}` (GN).
#[derive(Module, Debug)]
pub struct Bottleneck {
    pub conv1: Conv2d,
    pub gn1: GroupNorm,
    pub conv2: Conv2d,
    pub gn2: GroupNorm,
    pub conv3: Conv2d,
    pub gn3: GroupNorm,
    pub downsample: Option<(Conv2d, GroupNorm)>,
}

#[derive(Debug, Clone)]
pub struct BottleneckConfig {
    pub in_channels: usize,
    /// Width of the 1x1 and 3x3 convs; the block outputs `4 * planes`.
    pub planes: usize,
    pub stride: usize,
    pub num_groups: usize,
    pub eps: f64,
}

impl BottleneckConfig {
    pub fn init(&self, device: &Device) -> Bottleneck {
        let (cin, p, out) = (self.in_channels, self.planes, self.planes * 4);
        let gn = |c: usize| GroupNormConfig::new(self.num_groups, c).with_epsilon(self.eps).init(device);
        let downsample = (self.stride != 1 || cin != out).then(|| (conv_no_bias(cin, out, 1, self.stride, device), gn(out)));
        Bottleneck {
            conv1: conv_no_bias(cin, p, 1, 1, device),
            gn1: gn(p),
            conv2: conv_no_bias(p, p, 3, self.stride, device),
            gn2: gn(p),
            conv3: conv_no_bias(p, out, 1, 1, device),
            gn3: gn(out),
            downsample,
        }
    }
}

impl Bottleneck {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let identity = match &self.downsample {
            Some((conv, gn)) => group_norm(conv2d(conv, x.clone()), gn),
            None => x.clone(),
        };
        let out = group_norm_relu(conv2d(&self.conv1, x), &self.gn1);
        let out = group_norm_relu(conv2d(&self.conv2, out), &self.gn2);
        let out = group_norm(conv2d(&self.conv3, out), &self.gn3);
        relu(out.add(identity))
    }
}
