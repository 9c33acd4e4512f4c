//! mmdet `Shared4Conv1FCBBoxHead` with GroupNorm: 4 x (3x3 conv, GN, ReLU) -> fc 12544->1024 + ReLU
//! -> class logits (81, background last) and class-specific deltas (80 x 4).

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use crate::layers::{ConvModule, ConvModuleConfig};
use crate::ops::linear;

/// Keys `shared_convs.{0..3}.{conv,gn}.…`, `shared_fcs.0.…`, `fc_cls.…`, `fc_reg.…`.
#[derive(Module, Debug)]
pub struct BBoxHead {
    pub shared_convs: Vec<ConvModule>,
    pub shared_fcs: Vec<Linear>,
    pub fc_cls: Linear,
    pub fc_reg: Linear,
}

#[derive(Debug, Clone)]
pub struct BBoxHeadConfig {
    pub in_channels: usize,
    pub roi_size: usize,
    pub num_convs: usize,
    pub fc_channels: usize,
    pub num_classes: usize,
    pub num_groups: usize,
    pub eps: f64,
}

impl BBoxHeadConfig {
    pub fn init(&self, device: &Device) -> BBoxHead {
        let c = self.in_channels;
        BBoxHead {
            shared_convs: (0..self.num_convs)
                .map(|_| ConvModuleConfig::new(c, c, 3, self.num_groups, self.eps).init(device))
                .collect(),
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
