//! GroupNorm settings, one value passed to every normalised layer (mmcv's `norm_cfg=dict(type='GN', num_groups=32)`).

use burn::config::Config;
use burn::nn::{GroupNorm, GroupNormConfig};
use burn::tensor::Device;

/// GroupNorm of every normalised layer: backbone, FPN and both heads.
#[derive(Config, Debug, PartialEq)]
pub struct NormConfig {
    /// Channel groups normalised together.
    #[config(default = 32)]
    pub num_groups: usize,
    /// Added to the variance (mmcv's default).
    #[config(default = 1e-5)]
    pub eps: f64,
}

impl NormConfig {
    /// An affine GroupNorm over `channels`.
    pub fn init(&self, channels: usize, device: &Device) -> GroupNorm {
        GroupNormConfig::new(self.num_groups, channels).with_epsilon(self.eps).init(device)
    }
}
