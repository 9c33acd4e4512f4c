//! Axis-aligned boxes and their overlap, the convention of mmdetection 2.x+ (no +1 in widths).

/// An axis-aligned box `[x1, y1, x2, y2]` in pixels.
pub type BBox = [f32; 4];

/// `(x2 - x1) * (y2 - y1)`, no +1.
pub fn box_area(b: &BBox) -> f32 {
    (b[2] - b[0]) * (b[3] - b[1])
}

/// Intersection over union, no +1, in f32 and mmcv's order of operations (`inter / (area_a + area_b - inter)`),
/// so NMS decisions match mmcv's bit for bit; 0 where the union is empty (mmcv's NaN suppresses nothing either).
pub fn box_iou(a: &BBox, b: &BBox) -> f32 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let union = box_area(a) + box_area(b) - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_of_known_boxes() {
        assert_eq!(box_iou(&[0.0, 0.0, 2.0, 2.0], &[1.0, 1.0, 3.0, 3.0]), 1.0 / 7.0);
        assert_eq!(box_iou(&[0.0, 0.0, 1.0, 1.0], &[2.0, 2.0, 3.0, 3.0]), 0.0);
        assert_eq!(box_iou(&[1.0, 1.0, 1.0, 1.0], &[1.0, 1.0, 1.0, 1.0]), 0.0);
        assert_eq!(box_area(&[1.0, 2.0, 4.0, 6.0]), 12.0);
        assert_eq!(box_iou(&[0.0, 0.0, 10.0, 10.0], &[5.0, 0.0, 15.0, 10.0]), 50.0 / 150.0);
    }
}
