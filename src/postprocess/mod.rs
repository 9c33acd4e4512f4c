//! Post-processing shared by the RPN and the RoI heads: box decoding, NMS, and mask pasting.

pub mod box_coder;
pub mod mask_paste;
pub mod mask_paste_cube;
pub mod nms;

pub use box_coder::{BBox, DeltaCoder};
pub use nms::{batched_nms, nms};
