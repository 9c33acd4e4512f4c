//! Operators below the model's layers (torchvision's `ops/`): each with its host reference and its CubeCL kernel
//! side by side (`host.rs`, `cube.rs`), and the one table (`dispatch`) that says which runs where.
//! Primitives too: NMS, device read-back, the sigmoid the host paths share (and the RPN's top-k sorts by).

pub mod conv;
pub(crate) mod dispatch;
pub(crate) mod flex;
pub mod group_norm;
pub(crate) mod launch;
pub mod mask_paste;
pub mod max_pool;
pub mod matmul;
pub mod nms;
pub mod readback;
pub mod roi_align;
pub mod top_k;
pub(crate) mod transpose;
pub(crate) mod simd;
pub mod upsample;

pub use conv::{conv2d, conv2d_pair, conv2d_relu, conv2d_relu_each};
pub use group_norm::{group_norm, group_norm_add_relu, group_norm_relu};
pub use mask_paste::{PasteTarget, paste_masks};
pub use max_pool::max_pool_3x3_s2;
pub use matmul::{batched_matmul, conv_transpose_2x2, conv_transpose_2x2_relu_project, linear};
pub use nms::batched_nms;
pub use roi_align::{ImageRoi, RoiAlignConfig, RoiFeatures, roi_align};
pub use top_k::{TopAnchors, top_k_anchors};
pub use upsample::add_upsampled_2x;

/// The logistic function, as the host paths (RPN scores, mask paste) compute it in f32.
pub fn sigmoid(v: f32) -> f32 {
    1.0 / (1.0 + (-v).exp())
}
