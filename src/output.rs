//! What `predict` returns: boxes, scores, labels with class names, and binary masks at the original resolution.

use crate::structures::{BBox, Mask};

/// One detected object.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// `[x1, y1, x2, y2]` in original-image pixels.
    pub bbox: BBox,
    /// Confidence in [0, 1].
    pub score: f32,
    /// Class index, `0..num_classes` of the checkpoint.
    pub label: usize,
    /// The class's name.
    pub class_name: String,
    /// The binary mask at the original resolution.
    pub mask: Mask,
}

/// All detections of one image, by decreasing score (at most `max_per_img`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Detections {
    /// Width of the image the detections belong to.
    pub image_width: usize,
    /// Height of the image the detections belong to.
    pub image_height: usize,
    /// The detections, by decreasing score.
    pub items: Vec<Detection>,
}

impl Detections {
    /// Number of detections.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing was detected.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}
