//! FPN with GroupNorm (mmdet `FPN(norm_cfg=GN, act_cfg=None)`): C2..C5 -> P2..P6.

use burn::config::Config;
use burn::module::Module;
use burn::tensor::module::max_pool2d;
use burn::tensor::ops::MaxPoolOptions;
use burn::tensor::{Device, Tensor};

use crate::backbone::BackboneFeatures;
use crate::layers::{ConvModule, ConvModuleConfig, NormConfig};
use crate::ops::add_upsampled_2x;

/// Keys `lateral_convs.{0..3}.{conv,gn}.…`, `fpn_convs.{0..3}.{conv,gn}.…`.
#[derive(Module, Debug)]
pub struct Fpn {
    /// 1x1 ConvModules C2..C5 -> 256 channels.
    pub lateral_convs: Vec<ConvModule>,
    /// 3x3 ConvModules on the merged laterals -> P2..P5.
    pub fpn_convs: Vec<ConvModule>,
}

/// mmdet `FPN(in_channels, out_channels=256, num_outs=5, norm_cfg=GN, act_cfg=None)`.
#[derive(Config, Debug)]
pub struct FpnConfig {
    /// Widths of C2..C5.
    #[config(default = "[256, 512, 1024, 2048]")]
    pub in_channels: [usize; 4],
    /// Width of P2..P6.
    #[config(default = 256)]
    pub out_channels: usize,
    /// GroupNorm of every ConvModule.
    #[config(default = "NormConfig::new()")]
    pub norm: NormConfig,
}

/// P2..P6, strides 4..64, 256 channels each.
pub type PyramidFeatures = [Tensor<4>; 5];

impl FpnConfig {
    /// The neck, its parameters uninitialised until weights are loaded.
    pub fn init(&self, device: &Device) -> Fpn {
        let conv = |cin, k| ConvModuleConfig::new(cin, self.out_channels).with_kernel_size(k).with_norm(self.norm.clone()).init(device);
        Fpn {
            lateral_convs: self.in_channels.iter().map(|&c| conv(c, 1)).collect(),
            fpn_convs: self.in_channels.iter().map(|_| conv(self.out_channels, 3)).collect(),
        }
    }
}

impl Fpn {
    /// P2..P6 from C2..C5.
    pub fn forward(&self, features: BackboneFeatures) -> PyramidFeatures {
        let laterals: Vec<Tensor<4>> = features.into_iter().zip(&self.lateral_convs).map(|(c, conv)| conv.forward(c)).collect();
        // Top-down: each level adds the nearest upsampling of the coarser one (an exact 2x: inputs are padded to
        // 32). Each lateral is moved into its merge, so on flex it is updated in place.
        let mut merged: Vec<Tensor<4>> = Vec::with_capacity(laterals.len());
        for lateral in laterals.into_iter().rev() {
            let level = match merged.last() {
                Some(coarser) => add_upsampled_2x(lateral, coarser.clone()),
                None => lateral,
            };
            merged.push(level);
        }
        merged.reverse();
        let outs: Vec<Tensor<4>> = merged.into_iter().zip(&self.fpn_convs).map(|(l, conv)| conv.forward(l)).collect();
        // P6 = max_pool2d(P5, kernel 1, stride 2): every other row and column of P5.
        let p6 = max_pool2d(outs[3].clone(), MaxPoolOptions::new([1, 1]).with_stride([2, 2]));
        let [p2, p3, p4, p5]: [Tensor<4>; 4] = outs.try_into().expect("four FPN levels");
        [p2, p3, p4, p5, p6]
    }
}
