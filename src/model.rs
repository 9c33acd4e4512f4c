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
    /// ResNet-50/101 with GroupNorm.
    pub backbone: ResNet,
    /// FPN with GroupNorm.
    pub neck: Fpn,
    /// The RPN head, shared by every level.
    pub rpn_head: RpnHead,
    /// Box and mask heads.
    pub roi_head: RoiHead,
}

impl MaskRcnn {
    /// The architecture of `config`, with uninitialised (lazily random) parameters: the defaults of each module's
    /// config are mmdetection's GN Mask R-CNN; the model config sets depth, norm, anchors, RoI size and classes.
    pub fn new(config: &ModelConfig, device: &Device) -> Self {
        let (arch, norm, classes) = (&config.model, &config.model.norm, config.num_classes());
        Self {
            backbone: ResNetConfig::new().with_depth(arch.backbone.depth).with_norm(norm.clone()).init(device),
            neck: FpnConfig::new().with_norm(norm.clone()).init(device),
            rpn_head: RpnHeadConfig::new().with_num_anchors(config.num_anchors()).init(device),
            roi_head: RoiHead::new(
                &BBoxHeadConfig::new().with_roi_size(arch.roi.bbox_roi_size).with_num_classes(classes).with_norm(norm.clone()),
                &MaskHeadConfig::new().with_num_classes(classes).with_norm(norm.clone()),
                device,
            ),
        }
    }
}
