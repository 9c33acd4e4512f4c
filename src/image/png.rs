//! Checks on a PNG's chunks that the `image` crate's decoder (png 0.18) misses and panics on, made before it
//! runs. libpng, which OpenCV decodes with, treats the same defect in an indexed image as a hard error, so a
//! rejected file is one `cv2.imread` refuses too.

use crate::error::ImageError;

const SIGNATURE: &[u8; 8] = b"\x89PNG\r\n\x1a\n";

/// Whether the bytes start like a PNG.
pub(super) fn is_png(bytes: &[u8]) -> bool {
    bytes.starts_with(SIGNATURE)
}

/// In an indexed image (colour type 3), walks the chunks before the pixel data and refuses a palette (`PLTE`)
/// whose length is not a multiple of 3: png 0.18.1 slices past its end when it expands such a palette (found by
/// fuzz/image_decode; it checks the 3..=768 range itself). Other colour types only carry a suggested palette,
/// which is never expanded. Anything else, truncation included, is left to the decoder.
pub(super) fn check_chunks(bytes: &[u8], origin: &str) -> Result<(), ImageError> {
    // IHDR comes first: length (4), type (4), width (4), height (4), bit depth (1), colour type (1).
    let indexed = bytes.get(12..16) == Some(b"IHDR") && bytes.get(25) == Some(&3);
    if !indexed {
        return Ok(());
    }
    let mut at = SIGNATURE.len();
    while let Some(header) = at.checked_add(8).and_then(|end| bytes.get(at..end)) {
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let kind = &header[4..8];
        if kind == b"IDAT" || kind == b"IEND" {
            break;
        }
        if kind == b"PLTE" && len % 3 != 0 {
            return Err(ImageError::Decode {
                origin: origin.to_string(),
                message: format!("its PLTE chunk holds {len} bytes, not a whole number of RGB entries"),
            });
        }
        at = match at.checked_add(12).and_then(|a| a.checked_add(len)) {
            Some(next) => next,
            None => break,
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png_with_palette(color_type: u8, len: usize) -> Vec<u8> {
        let mut out = SIGNATURE.to_vec();
        out.extend([0, 0, 0, 13]);
        out.extend(b"IHDR");
        out.extend([0, 0, 0, 2, 0, 0, 0, 2, 8, color_type, 0, 0, 0, 0, 0, 0, 0]);
        out.extend((len as u32).to_be_bytes());
        out.extend(b"PLTE");
        out.extend(vec![7; len + 4]);
        out
    }

    #[test]
    fn indexed_palettes_of_whole_rgb_entries_pass_others_are_errors() {
        for len in [3, 48, 768] {
            assert!(check_chunks(&png_with_palette(3, len), "t").is_ok(), "{len}");
        }
        for len in [1, 49, 770] {
            let e = check_chunks(&png_with_palette(3, len), "t").unwrap_err();
            assert!(e.to_string().contains(&format!("PLTE chunk holds {len} bytes")), "{e}");
        }
        // A truecolour image's suggested palette is never expanded: left to the decoder.
        assert!(check_chunks(&png_with_palette(2, 49), "t").is_ok());
        assert!(check_chunks(&SIGNATURE[..], "t").is_ok());
        let cut_in_plte = &png_with_palette(3, 49)[..41];
        assert!(check_chunks(cut_in_plte, "t").is_err(), "the chunk header is whole: its length is known");
        assert!(check_chunks(&png_with_palette(3, 49)[..36], "t").is_ok(), "cut in the PLTE header: the decoder's to report");
    }
}
