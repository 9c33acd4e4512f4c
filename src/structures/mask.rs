//! Binary instance masks at image resolution, stored as the window that can hold set pixels.

/// A binary mask of an `image_height x image_width` image, stored as the window that can hold set pixels
/// (mmdetection's paste region: the box plus one pixel); every pixel outside the window is unset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mask {
    /// Width of the image the detections belong to.
    pub image_width: usize,
    /// Height of the image the detections belong to.
    pub image_height: usize,
    /// Window `[x0, x1) x [y0, y1)`.
    pub x0: usize,
    /// Window top row.
    pub y0: usize,
    /// Window right column (exclusive).
    pub x1: usize,
    /// Window bottom row (exclusive).
    pub y1: usize,
    /// Row-major window pixels, 1 = object.
    pub window: Vec<u8>,
}

impl Mask {
    /// Whether pixel `(x, y)` of the image belongs to the object.
    pub fn get(&self, x: usize, y: usize) -> bool {
        x >= self.x0 && x < self.x1 && y >= self.y0 && y < self.y1 && self.window[(y - self.y0) * (self.x1 - self.x0) + x - self.x0] != 0
    }

    /// Number of object pixels.
    pub fn area(&self) -> usize {
        self.window.iter().filter(|v| **v != 0).count()
    }

    /// The full `H x W` mask, row-major, 1 = object.
    pub fn to_dense(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.image_width * self.image_height];
        let ww = self.x1 - self.x0;
        for y in self.y0..self.y1 {
            out[y * self.image_width + self.x0..y * self.image_width + self.x1]
                .copy_from_slice(&self.window[(y - self.y0) * ww..(y - self.y0 + 1) * ww]);
        }
        out
    }
}
