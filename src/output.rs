//! What `predict` returns: boxes, scores, labels with class names, and binary masks at the original resolution.

use crate::structures::{BBox, Mask};

/// One detected object.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// `[x1, y1, x2, y2]` in original-image pixels.
    pub bbox: BBox,
    pub score: f32,
    /// Class index 0..79.
    pub label: usize,
    pub class_name: String,
    pub mask: Mask,
}

/// All detections of one image, by decreasing score (at most `max_per_img`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Detections {
    pub image_width: usize,
    pub image_height: usize,
    pub items: Vec<Detection>,
}

impl Detections {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}
