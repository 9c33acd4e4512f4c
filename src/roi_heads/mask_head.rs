//! mmdet `FCNMaskHead` with GroupNorm: 4 x (3x3 conv, GN, ReLU) -> 2x2/2 transposed conv + ReLU
//! -> 1x1 conv to one 28x28 logit map per class.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::layers::{ConvModule, ConvModuleConfig, NormConfig};
use crate::ops::{conv_transpose_2x2, conv2d};

/// Keys `convs.{0..3}.{conv,gn}.…`, `upsample.{weight,bias}`, `conv_logits.{weight,bias}`.
#[derive(Module, Debug)]
pub struct MaskHead {
    /// 3x3 ConvModules on the RoI features.
    pub convs: Vec<ConvModule>,
    /// 2x2 stride-2 transposed conv, 14x14 -> 28x28.
    pub upsample: ConvTranspose2d,
    /// 1x1 conv to one logit map per class.
    pub conv_logits: Conv2d,
}

/// mmdet `FCNMaskHead(num_convs=4, conv_out_channels=256, norm_cfg=GN)`.
#[derive(Config, Debug)]
pub struct MaskHeadConfig {
    /// Width of the RoI features and of the convs.
    #[config(default = 256)]
    pub channels: usize,
    /// Convs before the upsampling.
    #[config(default = 4)]
    pub num_convs: usize,
    /// Object classes.
    #[config(default = 80)]
    pub num_classes: usize,
    /// GroupNorm of every conv.
    #[config(default = "NormConfig::new()")]
    pub norm: NormConfig,
}

impl MaskHeadConfig {
    /// The head, its parameters uninitialised until weights are loaded.
    pub fn init(&self, device: &Device) -> MaskHead {
        let c = self.channels;
        MaskHead {
            convs: (0..self.num_convs).map(|_| ConvModuleConfig::new(c, c).with_norm(self.norm.clone()).init(device)).collect(),
            upsample: ConvTranspose2dConfig::new([c, c], [2, 2]).with_stride([2, 2]).init(device),
            conv_logits: Conv2dConfig::new([c, self.num_classes], [1, 1]).init(device),
        }
    }
}

/// mmdet's mask branch at test time (detectron2's `mask_rcnn_inference`): each detection keeps the logits of its
/// own class, `[N, C, M, M]` -> `[N, M, M]`, gathered on the logits' device.
pub fn mask_rcnn_inference(logits: Tensor<4>, labels: &[usize]) -> Tensor<3> {
    let [n, classes, h, w] = logits.dims();
    let rows: Vec<i64> = labels.iter().enumerate().map(|(i, &l)| (i * classes + l) as i64).collect();
    let index = Tensor::<1, Int>::from_data(TensorData::new(rows, [n]), &logits.device());
    logits.reshape([n * classes, h * w]).select(0, index).reshape([n, h, w])
}

impl MaskHead {
    /// RoI features `[N, 256, 14, 14]` -> mask logits `[N, 80, 28, 28]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.convs.iter().fold(x, |x, conv| conv.forward_relu(x));
        conv2d(&self.conv_logits, relu(conv_transpose_2x2(&self.upsample, x)))
    }
}
