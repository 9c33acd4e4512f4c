//! Checks on a PNG's chunks that the `image` crate's decoder (png 0.18) misses and panics on, made before it
//! runs. libpng, which OpenCV decodes with, rejects the same files, so a rejected file is what `cv2.imread`
//! refuses too.

use crate::error::ImageError;

const SIGNATURE: &[u8; 8] = b"\x89PNG\r\n\x1a\n";

/// Whether the bytes start like a PNG.
pub(super) fn is_png(bytes: &[u8]) -> bool {
    bytes.starts_with(SIGNATURE)
}

/// Walks the chunks before the pixel data and refuses a palette (`PLTE`) that is not 1 to 256 RGB triples:
/// png 0.18.1 slices past its end when the length is not a multiple of 3 (found by fuzz/image_decode).
/// Anything else, truncation included, is left to the decoder.
pub(super) fn check_chunks(bytes: &[u8], origin: &str) -> Result<(), ImageError> {
    let mut at = SIGNATURE.len();
    while let Some(header) = bytes.get(at..at + 8) {
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let kind = &header[4..8];
        if kind == b"IDAT" || kind == b"IEND" {
            break;
        }
        if kind == b"PLTE" && (len == 0 || len % 3 != 0 || len > 3 * 256) {
            return Err(ImageError::Decode {
                origin: origin.to_string(),
                message: format!("its PLTE chunk holds {len} bytes, not 1 to 256 RGB entries"),
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

    fn png_with_palette(len: usize) -> Vec<u8> {
        let mut out = SIGNATURE.to_vec();
        out.extend([0, 0, 0, 13]);
        out.extend(b"IHDR");
        out.extend([0, 0, 0, 2, 0, 0, 0, 2, 8, 3, 0, 0, 0, 0, 0, 0, 0]);
        out.extend((len as u32).to_be_bytes());
        out.extend(b"PLTE");
        out.extend(vec![7; len + 4]);
        out
    }

    #[test]
    fn palettes_of_whole_rgb_entries_pass_others_are_errors() {
        for len in [3, 48, 768] {
            assert!(check_chunks(&png_with_palette(len), "t").is_ok(), "{len}");
        }
        for len in [0, 1, 49, 771] {
            let e = check_chunks(&png_with_palette(len), "t").unwrap_err();
            assert!(e.to_string().contains(&format!("PLTE chunk holds {len} bytes")), "{e}");
        }
        assert!(check_chunks(&SIGNATURE[..], "t").is_ok());
        assert!(check_chunks(&png_with_palette(49)[..30], "t").is_ok(), "truncated: the decoder's to report");
    }
}
