//! RoI heads: proposals -> RoIAlign -> box head -> per-class NMS -> RoIAlign -> mask head -> each detection's
//! class's mask logits. RoIAlign itself is an operator (`ops::roi_align`).

mod bbox_head;
mod bbox_postprocess;
mod mask_head;

use burn::module::Module;
use burn::tensor::Device;

pub use bbox_head::{BBoxHead, BBoxHeadConfig};
pub use bbox_postprocess::{BoxDetections, detect_boxes};
pub use mask_head::{MaskHead, MaskHeadConfig, mask_rcnn_inference};

/// mmdet `StandardRoIHead`: keys `bbox_head.…`, `mask_head.…`.
#[derive(Module, Debug)]
pub struct RoiHead {
    /// The box branch.
    pub bbox_head: BBoxHead,
    /// The mask branch.
    pub mask_head: MaskHead,
}

impl RoiHead {
    /// Both heads from their configs.
    pub fn new(bbox: &BBoxHeadConfig, mask: &MaskHeadConfig, device: &Device) -> Self {
        Self { bbox_head: bbox.init(device), mask_head: mask.init(device) }
    }
}
