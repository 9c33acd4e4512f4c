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
    /// The mask as COCO RLE (what COCO result files and pycocotools expect).
    pub fn to_coco_rle(&self) -> CocoRle {
        encode_dense(&self.to_dense(), self.image_height, self.image_width)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
