//! mmdet `Shared4Conv1FCBBoxHead` with GroupNorm: 4 x (3x3 conv, GN, ReLU) -> fc (C x S x S -> 1024) + ReLU
//! -> class logits (N + 1, background last) and class-specific deltas (N x 4).

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use crate::layers::{ConvModule, ConvModuleConfig, NormConfig};
use crate::ops::linear;
use crate::precision::to_f32;

/// Keys `shared_convs.{0..3}.{conv,gn}.…`, `shared_fcs.0.…`, `fc_cls.…`, `fc_reg.…`.
#[derive(Module, Debug)]
pub struct BBoxHead {
    /// 3x3 ConvModules on the RoI features.
    pub shared_convs: Vec<ConvModule>,
    /// The fc after them.
    pub shared_fcs: Vec<Linear>,
    /// Class logits, background last.
    pub fc_cls: Linear,
    /// Class-specific deltas.
    pub fc_reg: Linear,
    /// Side of the RoI features it takes (its extractor's output size).
    #[module(skip)]
    pub roi_size: usize,
}

/// mmdet `Shared4Conv1FCBBoxHead(conv_out_channels=256, norm_cfg=GN)`.
#[derive(Config, Debug)]
pub struct BBoxHeadConfig {
    /// Width of the RoI features and of the convs.
    #[config(default = 256)]
    pub in_channels: usize,
    /// Side of the RoI features.
    #[config(default = 7)]
    pub roi_size: usize,
    /// Shared convs.
    #[config(default = 4)]
    pub num_convs: usize,
    /// Width of the shared fc.
    #[config(default = 1024)]
    pub fc_channels: usize,
    /// Object classes (background excluded).
    #[config(default = 80)]
    pub num_classes: usize,
    /// GroupNorm of every conv.
    #[config(default = "NormConfig::new()")]
    pub norm: NormConfig,
}

impl BBoxHeadConfig {
    /// The head, its parameters uninitialised until weights are loaded.
    pub fn init(&self, device: &Device) -> BBoxHead {
        let c = self.in_channels;
        BBoxHead {
            shared_convs: (0..self.num_convs).map(|_| ConvModuleConfig::new(c, c).with_norm(self.norm.clone()).init(device)).collect(),
            shared_fcs: vec![LinearConfig::new(c * self.roi_size * self.roi_size, self.fc_channels).init(device)],
            fc_cls: LinearConfig::new(self.fc_channels, self.num_classes + 1).init(device),
            fc_reg: LinearConfig::new(self.fc_channels, self.num_classes * 4).init(device),
            roi_size: self.roi_size,
        }
    }
}

impl BBoxHead {
    /// Object classes (background excluded), as the loaded `fc_cls` has them.
    pub fn num_classes(&self) -> usize {
        self.fc_cls.weight.dims()[1] - 1
    }

    /// Values of the largest activation one RoI makes here (the conv stack's maps, the fc's input).
    pub fn activation_per_roi(&self) -> usize {
        self.shared_fcs.first().map_or(0, |fc| fc.weight.dims()[0])
    }

    /// RoI features `[K, C, S, S]` -> (class logits `[K, N + 1]`, deltas `[K, 4N]`).
    pub fn forward(&self, x: Tensor<4>) -> (Tensor<2>, Tensor<2>) {
        let x = self.shared_convs.iter().fold(x, |x, conv| conv.forward_relu(x));
        // flatten(1): C-major, index = (c * S + y) * S + x.
        let x = x.flatten::<2>(1, 3);
        // The outputs, which the host reads, in f32 whatever the activations' precision.
        let x = to_f32(self.shared_fcs.iter().fold(x, |x, fc| relu(linear(fc, x))));
        (linear(&self.fc_cls, x.clone()), linear(&self.fc_reg, x))
    }
}
