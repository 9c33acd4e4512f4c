//! Image decoding: any PNG or JPEG into 8-bit, 3-channel pixels, as OpenCV's `imread(IMREAD_COLOR)` gives them
//! (mmdetection's loader). JPEG goes through libjpeg-turbo with OpenCV's settings (`jpeg`); PNG through the
//! `image` crate, whose PNG pixels are exact.

mod jpeg;
mod png;

use std::io::Cursor;
use std::path::Path;

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage};

use crate::error::ImageError;

/// Bounds checked against an image's header before any pixel buffer is allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageLimits {
    /// Largest `width * height` accepted; the BGR buffer takes 3 bytes per pixel.
    pub max_pixels: u64,
}

impl Default for ImageLimits {
    /// 200 megapixels (a 600 MB BGR buffer): larger than any camera photo, far below what a forged header can claim.
    fn default() -> Self {
        Self { max_pixels: 200_000_000 }
    }
}

impl ImageLimits {
    /// The same bound for the `image` crate's decoders, which also count their own buffers: 8 bytes a pixel
    /// (16-bit RGBA, the widest PNG) plus 64 MiB of working memory.
    fn decoder_limits(&self) -> image::Limits {
        let mut limits = image::Limits::no_limits();
        limits.max_alloc = Some(self.max_pixels.saturating_mul(8).saturating_add(64 << 20));
        limits
    }

    /// The largest file an image within these limits can be: no encoding stores more than its widest raw
    /// pixels (16-bit RGBA, 8 bytes a pixel), plus room for metadata.
    pub fn max_file_bytes(&self) -> u64 {
        self.max_pixels.saturating_mul(8).saturating_add(64 << 20)
    }

    fn check(&self, origin: &str, width: u32, height: u32) -> Result<(), ImageError> {
        if width as u64 * height as u64 > self.max_pixels {
            return Err(ImageError::TooLarge { origin: origin.to_string(), width, height, max_pixels: self.max_pixels });
        }
        Ok(())
    }
}

/// An 8-bit image, row-major `H x W x 3`, channels in B, G, R order (what mmdetection's cv2 loader holds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgrImage {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// The values, row-major.
    pub data: Vec<u8>,
}

impl BgrImage {
    /// Wraps a `H x W x 3` BGR buffer, checking its length.
    pub fn from_bgr(width: usize, height: usize, data: Vec<u8>) -> Result<Self, ImageError> {
        if width == 0 || height == 0 || data.len() != width * height * 3 {
            return Err(ImageError::BadBuffer { len: data.len(), height, width });
        }
        Ok(Self { width, height, data })
    }

    /// Wraps a `H x W x 3` RGB buffer (the `image` crate's order).
    pub fn from_rgb(width: usize, height: usize, mut data: Vec<u8>) -> Result<Self, ImageError> {
        if data.len() == width * height * 3 {
            data.chunks_exact_mut(3).for_each(|px| px.swap(0, 2));
        }
        Self::from_bgr(width, height, data)
    }

    /// Reads and decodes an image file with the default [`ImageLimits`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self, ImageError> {
        Self::open_with_limits(path, &ImageLimits::default())
    }

    /// Reads and decodes an image file, refusing a file larger than any image within `limits` can be (read no
    /// further than that) and a header larger than `limits` before allocating its pixels.
    pub fn open_with_limits(path: impl AsRef<Path>, limits: &ImageLimits) -> Result<Self, ImageError> {
        use std::io::Read;
        let path = path.as_ref();
        let io = |source| ImageError::Io { path: path.to_path_buf(), source };
        let max = limits.max_file_bytes();
        let mut bytes = Vec::new();
        std::fs::File::open(path).map_err(io)?.take(max.saturating_add(1)).read_to_end(&mut bytes).map_err(io)?;
        if bytes.len() as u64 > max {
            return Err(ImageError::FileTooLarge { origin: path.display().to_string(), max_bytes: max });
        }
        Self::decode_with_limits(&bytes, &path.display().to_string(), limits)
    }

    /// Decodes an encoded image (PNG, JPEG) with the default [`ImageLimits`]. `origin` names it in errors.
    pub fn decode(bytes: &[u8], origin: &str) -> Result<Self, ImageError> {
        Self::decode_with_limits(bytes, origin, &ImageLimits::default())
    }

    /// Decodes an encoded image like `cv2.imread(path, IMREAD_COLOR)`: EXIF orientation applied, gray replicated
    /// to 3 channels, alpha dropped (not composited), 16-bit samples reduced by `>> 8`. JPEG pixels are
    /// libjpeg-turbo's with OpenCV's settings (`jpeg`), PNG pixels the `image` crate's (both byte-exact
    /// against cv2). A header larger than `limits` is an error before any pixel is allocated.
    pub fn decode_with_limits(bytes: &[u8], origin: &str, limits: &ImageLimits) -> Result<Self, ImageError> {
        if bytes.is_empty() {
            return Err(ImageError::EmptyFile { origin: origin.to_string() });
        }
        if jpeg::is_jpeg(bytes) {
            let (width, height, bgr) = jpeg::decode(bytes, origin, limits)?;
            return Self::from_bgr(width, height, bgr);
        }
        if png::is_png(bytes) {
            png::check_chunks(bytes, origin)?;
        }
        let decode_err = |e: image::ImageError| ImageError::Decode { origin: origin.to_string(), message: e.to_string() };
        let mut reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|e| ImageError::Decode {
            origin: origin.to_string(),
            message: e.to_string(),
        })?;
        reader.limits(limits.decoder_limits());
        let mut decoder = reader.into_decoder().map_err(decode_err)?;
        let orientation = decoder.orientation().map_err(decode_err)?;
        let (width, height) = decoder.dimensions();
        if width == 0 || height == 0 {
            return Err(ImageError::NoPixels { origin: origin.to_string(), width, height });
        }
        limits.check(origin, width, height)?;
        let mut img = DynamicImage::from_decoder(decoder).map_err(decode_err)?;
        img.apply_orientation(orientation);
        let (w, h) = (img.width() as usize, img.height() as usize);
        let rgb: Vec<u8> = match img {
            DynamicImage::ImageLuma16(_)
            | DynamicImage::ImageLumaA16(_)
            | DynamicImage::ImageRgb16(_)
            | DynamicImage::ImageRgba16(_) => img.into_rgb16().into_raw().into_iter().map(|v| (v >> 8) as u8).collect(),
            other => other.into_rgb8().into_raw(),
        };
        Self::from_rgb(w, h, rgb)
    }

    /// The pixels of `[x0, x1) x [y0, y1)` as an image of their own (a tile of a large image).
    ///
    /// # Panics
    /// If the window is empty or not inside the image (a programming error: tiles are computed from the size).
    pub fn crop(&self, [x0, y0, x1, y1]: [usize; 4]) -> BgrImage {
        assert!(x0 < x1 && y0 < y1 && x1 <= self.width && y1 <= self.height, "a crop inside the image");
        let row = |y: usize| &self.data[(y * self.width + x0) * 3..(y * self.width + x1) * 3];
        let data = (y0..y1).flat_map(row).copied().collect();
        BgrImage { width: x1 - x0, height: y1 - y0, data }
    }

    /// The same pixels in R, G, B order.
    pub fn to_rgb(&self) -> Vec<u8> {
        let mut out = self.data.clone();
        out.chunks_exact_mut(3).for_each(|px| px.swap(0, 2));
        out
    }
}

/// `H x W x 3` pixels turned upright by an EXIF orientation (the same flips and transposes as OpenCV's
/// `ApplyExifOrientation`): `(width, height, pixels)`.
fn orient(width: usize, height: usize, pixels: Vec<u8>, orientation: Orientation) -> (usize, usize, Vec<u8>) {
    if orientation == Orientation::NoTransforms {
        return (width, height, pixels);
    }
    let buffer = RgbImage::from_raw(width as u32, height as u32, pixels).expect("3 bytes per pixel");
    let mut img = DynamicImage::ImageRgb8(buffer);
    img.apply_orientation(orientation);
    (img.width() as usize, img.height() as usize, img.into_rgb8().into_raw())
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageEncoder, codecs::png::PngEncoder};

    fn png(width: u32, height: u32, color: image::ExtendedColorType, raw: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        PngEncoder::new(&mut out).write_image(raw, width, height, color).unwrap();
        out
    }

    #[test]
    fn gray_rgba_and_16_bit_become_bgr() {
        let g = BgrImage::decode(&png(2, 1, image::ExtendedColorType::L8, &[7, 200]), "g").unwrap();
        assert_eq!(g.data, vec![7, 7, 7, 200, 200, 200]);
        let rgba = BgrImage::decode(&png(1, 1, image::ExtendedColorType::Rgba8, &[1, 2, 3, 0]), "a").unwrap();
        assert_eq!(rgba.data, vec![3, 2, 1], "alpha is dropped, not composited");
        let raw16: Vec<u8> = [0x1234u16, 0xff00, 0x00ff].iter().flat_map(|v| v.to_ne_bytes()).collect();
        let c16 = BgrImage::decode(&png(1, 1, image::ExtendedColorType::Rgb16, &raw16), "c").unwrap();
        assert_eq!(c16.data, vec![0x00, 0xff, 0x12]);
    }

    #[test]
    fn bad_bytes_are_typed_errors() {
        assert!(matches!(BgrImage::decode(&[], "e"), Err(ImageError::EmptyFile { .. })));
        assert!(matches!(BgrImage::decode(b"not an image at all", "t"), Err(ImageError::Decode { .. })));
        let mut cut = png(4, 4, image::ExtendedColorType::Rgb8, &[9; 48]);
        cut.truncate(cut.len() / 2);
        assert!(matches!(BgrImage::decode(&cut, "cut"), Err(ImageError::Decode { .. })));
        assert!(matches!(BgrImage::open("/nonexistent/x.png"), Err(ImageError::Io { .. })));
        assert!(matches!(BgrImage::from_bgr(2, 2, vec![0; 5]), Err(ImageError::BadBuffer { .. })));
    }
}
