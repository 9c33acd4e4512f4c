//! The data every stage passes around, below every stage (detectron2's `structures/`): boxes and their overlap,
//! the box delta coder, binary masks.

pub mod box_coder;
pub mod boxes;
pub mod mask;

pub use box_coder::DeltaCoder;
pub use boxes::{BBox, box_area, box_iou};
pub use mask::Mask;
