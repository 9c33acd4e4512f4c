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

    /// This mask moved right by `dx` and down by `dy` into an `image_width x image_height` image (a tile's mask in
    /// the large image it was cut from; the window must fit there).
    pub fn placed(&self, dx: usize, dy: usize, image_width: usize, image_height: usize) -> Mask {
        let (x1, y1) = ((self.x1 + dx).min(image_width), (self.y1 + dy).min(image_height));
        debug_assert!((x1, y1) == (self.x1 + dx, self.y1 + dy), "a tile lies inside its image");
        Mask { image_width, image_height, x0: self.x0 + dx, y0: self.y0 + dy, x1, y1, window: self.window.clone() }
    }

    /// The pixels set in either mask (of the same image), in the window holding both.
    pub fn union(&self, other: &Mask) -> Mask {
        let (x0, y0) = (self.x0.min(other.x0), self.y0.min(other.y0));
        let (x1, y1) = (self.x1.max(other.x1), self.y1.max(other.y1));
        let width = x1 - x0;
        let mut window = vec![0u8; width * (y1 - y0)];
        for m in [self, other] {
            let w = m.x1 - m.x0;
            for y in m.y0..m.y1 {
                let row = &m.window[(y - m.y0) * w..(y - m.y0 + 1) * w];
                let dst = &mut window[(y - y0) * width + m.x0 - x0..][..w];
                dst.iter_mut().zip(row).for_each(|(d, s)| *d |= *s);
            }
        }
        Mask { image_width: self.image_width, image_height: self.image_height, x0, y0, x1, y1, window }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placed_and_united_windows_keep_their_pixels() {
        let a = Mask { image_width: 4, image_height: 3, x0: 1, y0: 0, x1: 3, y1: 2, window: vec![1, 0, 0, 1] };
        let p = a.placed(5, 4, 10, 8);
        assert_eq!((p.x0, p.y0, p.x1, p.y1, p.image_width), (6, 4, 8, 6, 10));
        assert!(p.get(6, 4) && p.get(7, 5) && !p.get(7, 4));
        let b = Mask { image_width: 10, image_height: 8, x0: 7, y0: 5, x1: 9, y1: 7, window: vec![1, 1, 0, 1] };
        let u = p.union(&b);
        assert_eq!((u.x0, u.y0, u.x1, u.y1), (6, 4, 9, 7));
        let dense: Vec<u8> = p.to_dense().iter().zip(b.to_dense()).map(|(x, y)| x | y).collect();
        assert_eq!(u.to_dense(), dense);
    }
}
