//! mmdet `Shared4Conv1FCBBoxHead` with GroupNorm: 4 x (3x3 conv, GN, ReLU) -> fc 12544->1024 + ReLU
//! -> class logits (81, background last) and class-specific deltas (80 x 4).

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use crate::layers::{ConvModule, ConvModuleConfig, NormConfig};
use crate::ops::linear;

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
        }
    }
}

impl BBoxHead {
    /// RoI features `[N, 256, 7, 7]` -> (class logits `[N, 81]`, deltas `[N, 320]`).
    pub fn forward(&self, x: Tensor<4>) -> (Tensor<2>, Tensor<2>) {
        let x = self.shared_convs.iter().fold(x, |x, conv| conv.forward_relu(x));
        // flatten(1): C-major, index = c * 49 + y * 7 + x.
        let x = x.flatten::<2>(1, 3);
        let x = self.shared_fcs.iter().fold(x, |x, fc| relu(linear(fc, x)));
        (linear(&self.fc_cls, x.clone()), linear(&self.fc_reg, x))
    }
}
