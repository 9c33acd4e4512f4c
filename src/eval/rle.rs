//! COCO run-length encoding of masks (pycocotools' compressed string form), through the `hotcoco` crate.

use serde::{Deserialize, Serialize};

use crate::structures::Mask;

/// `{"size": [h, w], "counts": "..."}`: column-major runs, LEB128-like string, as `pycocotools.mask.encode`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CocoRle {
    /// `[height, width]`.
    pub size: [u32; 2],
    /// pycocotools' compressed run-length string.
    pub counts: String,
}

/// Encodes a row-major `h x w` 0/1 mask.
pub fn encode_dense(mask: &[u8], height: usize, width: usize) -> CocoRle {
    let mut column_major = vec![0u8; mask.len()];
    for y in 0..height {
        for x in 0..width {
            column_major[x * height + y] = mask[y * width + x];
        }
    }
    let rle = hotcoco::mask::encode(&column_major, height as u32, width as u32).expect("mask length is h * w");
    CocoRle { size: [height as u32, width as u32], counts: hotcoco::mask::rle_to_string(&rle) }
}

/// Decodes to a row-major 0/1 mask; `None` if the string is not a valid RLE of that size.
pub fn decode_dense(rle: &CocoRle) -> Option<Vec<u8>> {
    let [h, w] = rle.size;
    let decoded = hotcoco::mask::rle_from_string(&rle.counts, h, w).ok()?;
    let column_major = hotcoco::mask::decode(&decoded);
    let (h, w) = (h as usize, w as usize);
    let mut out = vec![0u8; h * w];
    for x in 0..w {
        for y in 0..h {
            out[y * w + x] = u8::from(column_major[x * h + y] != 0);
        }
    }
    Some(out)
}

impl Mask {
    /// The mask as COCO RLE (what COCO result files and pycocotools expect), built from the window: the runs of the
    /// columns and rows outside it are arithmetic, so the cost is the window's pixels plus the image's width, not
    /// the image's area.
    pub fn to_coco_rle(&self) -> CocoRle {
        let (h, w) = (self.image_height as u64, self.image_width);
        let window_width = self.x1 - self.x0;
        let mut runs = Runs::default();
        for x in 0..w {
            if x < self.x0 || x >= self.x1 {
                runs.push(false, h);
                continue;
            }
            runs.push(false, self.y0 as u64);
            for y in 0..self.y1 - self.y0 {
                runs.push(self.window[y * window_width + x - self.x0] != 0, 1);
            }
            runs.push(false, h - self.y1 as u64);
        }
        let rle = hotcoco::Rle { h: self.image_height as u32, w: self.image_width as u32, counts: runs.finish() };
        CocoRle { size: [rle.h, rle.w], counts: hotcoco::mask::rle_to_string(&rle) }
    }
}

/// Column-major run lengths, alternating zeros and ones, starting with zeros (pycocotools' `counts`).
#[derive(Default)]
struct Runs {
    counts: Vec<u32>,
    value: bool,
    run: u64,
}

impl Runs {
    fn push(&mut self, value: bool, len: u64) {
        if len == 0 {
            return;
        }
        if value != self.value {
            self.counts.push(self.run as u32);
            (self.value, self.run) = (value, 0);
        }
        self.run += len;
    }

    fn finish(mut self) -> Vec<u32> {
        self.counts.push(self.run as u32);
        self.counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The window encoding equals the dense one on windows at every border and an empty mask.
    #[test]
    fn windows_encode_as_their_dense_masks() {
        let mut state = 7u32;
        let mut bit = || {
            state = state.wrapping_mul(1664525).wrapping_add(1013904223);
            (state >> 30) as u8 & 1
        };
        for (w, h, x0, y0, x1, y1) in [(9, 7, 2, 1, 6, 5), (9, 7, 0, 0, 9, 7), (9, 7, 8, 6, 9, 7), (5, 4, 2, 2, 2, 2), (1, 1, 0, 0, 1, 1)] {
            let window: Vec<u8> = (0..(x1 - x0) * (y1 - y0)).map(|_| bit()).collect();
            let mask = Mask { image_width: w, image_height: h, x0, y0, x1, y1, window };
            assert_eq!(mask.to_coco_rle(), encode_dense(&mask.to_dense(), h, w), "{w}x{h} window {x0},{y0}..{x1},{y1}");
        }
    }

    #[test]
    fn round_trips_and_matches_pycocotools() {
        // pycocotools: encode(asfortranarray([[0,1,1],[0,1,0]], uint8)) -> counts b'22111'? Checked by hand:
        // column-major pixels 0,0 | 1,1 | 1,0 -> runs [2 zeros, 3 ones, 1 zero].
        let mask = [0u8, 1, 1, 0, 1, 0];
        let rle = encode_dense(&mask, 2, 3);
        assert_eq!(rle.size, [2, 3]);
        assert_eq!(decode_dense(&rle).unwrap(), mask);
        assert_eq!(rle.counts, "231");
        assert!(decode_dense(&CocoRle { size: [2, 3], counts: "99".into() }).is_none());
    }
}
