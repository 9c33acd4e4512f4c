//! The tiles of a large image, as SAHI's `get_slice_bboxes` lays them out: rows of `slice_width x slice_height`
//! windows stepping by the slice size less the overlap (`int(ratio * size)` pixels), the last ones of each row and
//! column moved back inside the image (so every tile has the full size when the image does).

/// `[x0, y0, x1, y1)` of each tile, row by row, left to right (SAHI's order).
pub fn slice_boxes(image_width: usize, image_height: usize, slice_width: usize, slice_height: usize, overlap_width: f64, overlap_height: f64) -> Vec<[usize; 4]> {
    // Python's int() of a float: truncation toward zero.
    let x_overlap = (overlap_width * slice_width as f64) as usize;
    let y_overlap = (overlap_height * slice_height as f64) as usize;
    debug_assert!(x_overlap < slice_width && y_overlap < slice_height, "checked by SliceConfig::validate");
    let mut out = Vec::new();
    let (mut y_min, mut y_max) = (0usize, 0usize);
    while y_max < image_height {
        let (mut x_min, mut x_max) = (0usize, 0usize);
        y_max = y_min + slice_height;
        while x_max < image_width {
            x_max = x_min + slice_width;
            if y_max > image_height || x_max > image_width {
                let (xmax, ymax) = (image_width.min(x_max), image_height.min(y_max));
                out.push([xmax.saturating_sub(slice_width), ymax.saturating_sub(slice_height), xmax, ymax]);
            } else {
                out.push([x_min, y_min, x_max, y_max]);
            }
            x_min = x_max - x_overlap;
        }
        y_min = y_max - y_overlap;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values computed by sahi 0.11.35's `get_slice_bboxes` (docs/SAHI.md).
    #[test]
    fn tiles_follow_sahi() {
        assert_eq!(slice_boxes(1000, 600, 512, 512, 0.2, 0.2), vec![
            [0, 0, 512, 512],
            [410, 0, 922, 512],
            [488, 0, 1000, 512],
            [0, 88, 512, 600],
            [410, 88, 922, 600],
            [488, 88, 1000, 600],
        ]);
        // An image smaller than a slice: one tile, the image itself.
        assert_eq!(slice_boxes(300, 200, 512, 512, 0.2, 0.2), vec![[0, 0, 300, 200]]);
        assert_eq!(slice_boxes(1024, 512, 512, 512, 0.0, 0.0), vec![[0, 0, 512, 512], [512, 0, 1024, 512]]);
    }
}
