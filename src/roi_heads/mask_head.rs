//! mmdet `FCNMaskHead` with GroupNorm: 4 x (3x3 conv, GN, ReLU) -> 2x2/2 transposed conv + ReLU
//! -> 1x1 conv to one 28x28 logit map per class.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::layers::{ConvModule, ConvModuleConfig};
use crate::ops::{conv_transpose_2x2, conv2d};

/// Keys `convs.{0..3}.{conv,gn}.…`, `upsample.{weight,bias}`, `conv_logits.{weight,bias}`.
#[derive(Module, Debug)]
pub struct MaskHead {
    pub convs: Vec<ConvModule>,
    pub upsample: ConvTranspose2d,
    pub conv_logits: Conv2d,
}

#[derive(Debug, Clone)]
pub struct MaskHeadConfig {
    pub channels: usize,
    pub num_convs: usize,
    pub num_classes: usize,
    pub num_groups: usize,
    pub eps: f64,
}

impl MaskHeadConfig {
    pub fn init(&self, device: &Device) -> MaskHead {
        let c = self.channels;
        MaskHead {
            convs: (0..self.num_convs).map(|_| ConvModuleConfig::new(c, c, 3, self.num_groups, self.eps).init(device)).collect(),
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
