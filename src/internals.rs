//! Not part of the stable API: the stage hooks this crate's own tests, benches and reports use (single stages,
//! operators with their host references, the weight mapping). Anything here may change without notice.

pub use crate::backbone::{BackboneFeatures, Bottleneck, BottleneckConfig, ResNet, ResNetConfig};
pub use crate::fs::write_atomic;
pub use crate::layers::{ConvModule, ConvModuleConfig, NormConfig};
pub use crate::model::MaskRcnn;
pub use crate::neck::{Fpn, FpnConfig, PyramidFeatures};
pub use crate::postprocess::detector_postprocess;
pub use crate::ops::launch::launches;
pub use crate::ops::{
    ImageRoi, PasteTarget, RoiAlignConfig, RoiFeatures, TopAnchors, batched_matmul, conv_transpose_2x2, conv2d, conv2d_relu, group_norm,
    group_norm_relu, linear, mask_paste, paste_masks, readback, roi_align, sigmoid, top_k_anchors,
};
pub use crate::preprocess::{preprocess, preprocess_with_resized, rescaled_size, resize_linear};
pub use crate::roi_heads::{BBoxHead, BBoxHeadConfig, BoxDetections, MaskHead, MaskHeadConfig, RoiHead, RoiHeadConfig, RoiOutput, mask_rcnn_inference};
pub use crate::rpn::{Proposals, RpnHead, RpnHeadConfig};
pub use crate::structures::{DeltaCoder, box_area, box_iou};
pub use crate::weights::internals::{KeySpec, expected_keys, load_state_dict};

/// RoIAlign's level mapping (mmdet `map_roi_levels`).
pub use crate::ops::roi_align::roi_level;
