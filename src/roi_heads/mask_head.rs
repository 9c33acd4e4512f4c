//! mmdet `FCNMaskHead` with GroupNorm: 4 x (3x3 conv, GN, ReLU) -> 2x2/2 transposed conv + ReLU
//! -> 1x1 conv to one 28x28 logit map per class.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::layers::{ConvModule, ConvModuleConfig, NormConfig};
use crate::ops::{conv_transpose_2x2, conv_transpose_2x2_relu_project, conv2d};

/// Keys `convs.{0..3}.{conv,gn}.…`, `upsample.{weight,bias}`, `conv_logits.{weight,bias}`.
#[derive(Module, Debug)]
pub struct MaskHead {
    /// 3x3 ConvModules on the RoI features.
    pub convs: Vec<ConvModule>,
    /// 2x2 stride-2 transposed conv, 14x14 -> 28x28.
    pub upsample: ConvTranspose2d,
    /// 1x1 conv to one logit map per class.
    pub conv_logits: Conv2d,
    /// Side of the RoI features it takes (its extractor's output size).
    #[module(skip)]
    pub roi_size: usize,
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
    /// Side of the RoI features (the logits are twice as large).
    #[config(default = 14)]
    pub roi_size: usize,
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
            roi_size: self.roi_size,
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
    /// Values of the largest activation one RoI makes here: the upsampled `C x 2S x 2S` map.
    pub fn activation_per_roi(&self) -> usize {
        let [_, channels, ..] = self.upsample.weight.dims();
        channels * 4 * self.roi_size * self.roi_size
    }

    /// RoI features `[N, 256, 14, 14]` -> mask logits `[N, classes, 28, 28]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        conv2d(&self.conv_logits, self.upsampled(x))
    }

    /// RoI features `[N, 256, 14, 14]` and each RoI's class -> the logits of that class only, `[N, 28, 28]`:
    /// [`mask_rcnn_inference`] of [`MaskHead::forward`] without the other classes' maps (1/80 of the last layer's
    /// work, and no `[N, 80, 28, 28]` buffer; on flex in f32 not even the `[N, 256, 28, 28]` upsampled map).
    ///
    /// # Panics
    /// If `labels` has not one class per RoI, or a class is out of range (a programming error: the box head
    /// gives both).
    pub fn forward_own_class(&self, x: Tensor<4>, labels: &[usize]) -> Tensor<3> {
        let [n, ..] = x.dims();
        assert_eq!(labels.len(), n, "one class per RoI");
        let [classes, c, ..] = self.conv_logits.weight.dims();
        assert!(labels.iter().all(|&l| l < classes), "a class past the {classes} the head has");
        let x = self.conv_stack(x);
        let index = Tensor::<1, Int>::from_data(TensorData::new(labels.iter().map(|&l| l as i64).collect::<Vec<_>>(), [n]), &x.device());
        let weight = self.conv_logits.weight.val().reshape([classes, c]).select(0, index.clone());
        let bias = self.conv_logits.bias.as_ref().map(|b| b.val().select(0, index));
        conv_transpose_2x2_relu_project(&self.upsample, x, weight, bias)
    }

    /// The convs, then the 2x upsampling and its ReLU: `[N, 256, 28, 28]`.
    fn upsampled(&self, x: Tensor<4>) -> Tensor<4> {
        relu(conv_transpose_2x2(&self.upsample, self.conv_stack(x)))
    }

    /// The 3x3 ConvModules: `[N, 256, 14, 14]`.
    fn conv_stack(&self, x: Tensor<4>) -> Tensor<4> {
        self.convs.iter().fold(x, |x, conv| conv.forward_relu(x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    /// The own-class logits equal the all-class logits' own-class rows.
    #[test]
    fn own_class_equals_the_picked_rows_of_all_classes() {
        let device = Device::flex();
        let head = MaskHeadConfig::new().with_channels(16).with_num_classes(7).with_norm(NormConfig::new().with_num_groups(4)).init(&device);
        let head = head.map(&mut RandomParams(&device));
        let x = Tensor::<4>::random([5, 16, 14, 14], Distribution::Normal(0.0, 1.0), &device);
        let labels = [3, 0, 6, 3, 1];
        let want = mask_rcnn_inference(head.forward(x.clone()), &labels).into_data().try_into_vec::<f32>().unwrap();
        let got = head.forward_own_class(x, &labels);
        assert_eq!(got.dims(), [5, 28, 28]);
        let got = got.into_data().try_into_vec::<f32>().unwrap();
        let max = want.iter().zip(&got).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        let scale = want.iter().map(|a| a.abs()).fold(0f32, f32::max);
        assert!(scale > 0.0 && max <= 1e-5 * scale, "max diff {max} of {scale}");
        let none = head.forward_own_class(Tensor::zeros([0, 16, 14, 14], &device), &[]);
        assert_eq!(none.dims(), [0, 28, 28]);
    }

    /// Gives every float parameter random values (the head's init leaves them to the weight loader).
    struct RandomParams<'a>(&'a Device);
    impl burn::module::ModuleMapper for RandomParams<'_> {
        fn map_float<const D: usize>(&mut self, param: burn::module::Param<Tensor<D>>) -> burn::module::Param<Tensor<D>> {
            let shape = param.lazy_shape().to_vec();
            let id = param.id;
            param.transform_for_load(Tensor::random(shape, Distribution::Normal(0.0, 0.5), self.0), id)
        }
    }
}
