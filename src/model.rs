//! The whole network as one Burn module, its fields named like mmdetection's top-level state_dict prefixes.

use burn::module::Module;
use burn::tensor::Device;

use crate::backbone::{ResNet, ResNetConfig};
use crate::config::ModelConfig;
use crate::neck::{Fpn, FpnConfig};
use crate::roi_heads::{BBoxHeadConfig, MaskHeadConfig, RoiHead};
use crate::rpn::{RpnHead, RpnHeadConfig};

/// Keys `backbone.…`, `neck.…`, `rpn_head.…`, `roi_head.{bbox_head,mask_head}.…`.
#[derive(Module, Debug)]
pub struct MaskRcnn {
    pub backbone: ResNet,
    pub neck: Fpn,
    pub rpn_head: RpnHead,
    pub roi_head: RoiHead,
}

/// Channel width of the FPN and of both heads.
const FPN_CHANNELS: usize = 256;

impl MaskRcnn {
    /// The architecture of `config`, with uninitialised (lazily random) parameters.
    pub fn new(config: &ModelConfig, device: &Device) -> Self {
        let (groups, eps) = (config.norm.num_groups, config.norm.eps);
        Self {
            backbone: ResNetConfig { stage_blocks: config.stage_blocks(), num_groups: groups, eps }.init(device),
            neck: FpnConfig { in_channels: [256, 512, 1024, 2048], out_channels: FPN_CHANNELS, num_groups: groups, eps }
                .init(device),
            rpn_head: RpnHeadConfig { channels: FPN_CHANNELS, num_anchors: config.num_anchors() }.init(device),
            roi_head: RoiHead::new(
                &BBoxHeadConfig {
                    in_channels: FPN_CHANNELS,
                    roi_size: config.rcnn.bbox_roi_size,
                    num_convs: 4,
                    fc_channels: 1024,
                    num_classes: config.num_classes(),
                    num_groups: groups,
                    eps,
                },
                &MaskHeadConfig { channels: FPN_CHANNELS, num_convs: 4, num_classes: config.num_classes(), num_groups: groups, eps },
                device,
            ),
        }
    }
}
