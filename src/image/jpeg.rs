//! JPEG decoding exactly as OpenCV's `imread(IMREAD_COLOR)` does it (what mmdetection's loader calls):
//! libjpeg-turbo's decoder as `mozjpeg-sys` bundles it (compiled by `cc`; its SIMD code where `nasm` is installed,
//! which libjpeg-turbo keeps bit-exact with the C code), through its TurboJPEG API, with OpenCV's settings — integer IDCT
//! (`JDCT_ISLOW`), fancy chroma upsampling, libjpeg's fixed-point YCbCr->BGR, grey replicated to three channels —
//! and OpenCV's own steps after it: CMYK/YCCK decoded to CMYK by libjpeg, then `icvCvt_CMYK2BGR_8u_C4C3R`;
//! EXIF orientation (the first APP1 `Exif` segment) applied to the decoded pixels.
//!
//! Damaged files follow mmdetection's loader, `cv2.imdecode` on the file's bytes (not `cv2.imread`, which differs
//! here): libjpeg *warnings* inside complete data (corrupt entropy-coded data, extraneous bytes) still give the
//! image libjpeg produced; a file that ends before its EOI marker makes imdecode's suspending source stop
//! before the last rows, and cv2 returns `None` (imread would return the image with a mid-grey bottom): here
//! [`ImageError::Truncated`]. A libjpeg *error* (no frame header, bad marker lengths, unsupported layouts) is
//! `None` in cv2 and [`ImageError::Decode`] here. Checked on tests/fixtures/jpeg (tests/jpeg.rs).

use std::ffi::{CStr, c_int, c_ulong, c_void};
use std::ptr::NonNull;

use image::metadata::Orientation;

use super::ImageLimits;
use crate::error::ImageError;

/// The TurboJPEG 2 functions and constants used here (`turbojpeg.h` of the bundled source; `mozjpeg-sys` compiles
/// and links them but declares only the libjpeg API).
mod tj {
    use super::{c_int, c_ulong, c_void};
    // Linked through this crate: its build script compiles turbojpeg.c into the static library it links.
    use mozjpeg_sys as _;

    pub const TJPF_BGR: c_int = 1;
    pub const TJPF_CMYK: c_int = 11;
    pub const TJCS_CMYK: c_int = 3;
    pub const TJCS_YCCK: c_int = 4;
    pub const TJERR_WARNING: c_int = 0;
    /// Refuse progressive files of more than 500 scans (built to take unbounded time; libjpeg-turbo's own tools
    /// use the same limit).
    pub const TJFLAG_LIMITSCANS: c_int = 32768;

    unsafe extern "C" {
        pub fn tjInitDecompress() -> *mut c_void;
        pub fn tjDecompressHeader3(
            handle: *mut c_void,
            jpeg: *const u8,
            size: c_ulong,
            width: *mut c_int,
            height: *mut c_int,
            subsampling: *mut c_int,
            colorspace: *mut c_int,
        ) -> c_int;
        #[allow(clippy::too_many_arguments)]
        pub fn tjDecompress2(
            handle: *mut c_void,
            jpeg: *const u8,
            size: c_ulong,
            out: *mut u8,
            width: c_int,
            pitch: c_int,
            height: c_int,
            pixel_format: c_int,
            flags: c_int,
        ) -> c_int;
        pub fn tjGetErrorStr2(handle: *mut c_void) -> *mut std::ffi::c_char;
        pub fn tjGetErrorCode(handle: *mut c_void) -> c_int;
        pub fn tjDestroy(handle: *mut c_void) -> c_int;
    }
}

/// Whether `bytes` start like a JPEG (SOI marker).
pub(super) fn is_jpeg(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0xFF, 0xD8, 0xFF])
}

/// Decodes a JPEG into `H x W x 3` BGR bytes with its EXIF orientation applied: `(width, height, bgr)`.
pub(super) fn decode(bytes: &[u8], origin: &str, limits: &ImageLimits) -> Result<(usize, usize, Vec<u8>), ImageError> {
    if !reaches_eoi(bytes) {
        return Err(ImageError::Truncated { origin: origin.to_string() });
    }
    let mut decoder = Decompressor::new(origin)?;
    let header = decoder.read_header(bytes)?;
    limits.check(origin, header.width, header.height)?;
    let (width, height) = (header.width as usize, header.height as usize);
    let bgr = if header.four_channel {
        cmyk_to_bgr(&decoder.decompress(bytes, width, height, Layout::Cmyk)?)
    } else {
        decoder.decompress(bytes, width, height, Layout::Bgr)?
    };
    Ok(super::orient(width, height, bgr, exif_orientation(bytes)))
}

/// OpenCV's `icvCvt_CMYK2BGR_8u_C4C3R`: libjpeg's CMYK (Adobe's inverted convention) to BGR.
fn cmyk_to_bgr(cmyk: &[u8]) -> Vec<u8> {
    let ink = |v: u8, k: u8| {
        let (v, k) = (v as u32, k as u32);
        (k - (((255 - v) * k) >> 8)) as u8
    };
    cmyk.chunks_exact(4).flat_map(|p| [ink(p[2], p[3]), ink(p[1], p[3]), ink(p[0], p[3])]).collect()
}

/// The orientation in the file's first APP1 `Exif` segment (OpenCV's `ExifReader` reads that one), if valid.
fn exif_orientation(bytes: &[u8]) -> Orientation {
    app1_exif(bytes).and_then(Orientation::from_exif_chunk).unwrap_or(Orientation::NoTransforms)
}

/// The TIFF payload of the first APP1 segment that starts with `Exif\0\0`, looked for among the markers before
/// the first scan.
fn app1_exif(bytes: &[u8]) -> Option<&[u8]> {
    let mut pos = 2; // after SOI
    loop {
        // Any number of 0xFF fill bytes may precede a marker code.
        while *bytes.get(pos)? == 0xFF && *bytes.get(pos + 1)? == 0xFF {
            pos += 1;
        }
        if *bytes.get(pos)? != 0xFF {
            return None;
        }
        let marker = *bytes.get(pos + 1)?;
        match marker {
            0xDA | 0xD9 => return None, // start of scan, end of image: no metadata past here
            0x01 | 0xD0..=0xD7 => {
                pos += 2; // standalone markers carry no length
                continue;
            }
            _ => {}
        }
        let len = u16::from_be_bytes([*bytes.get(pos + 2)?, *bytes.get(pos + 3)?]) as usize;
        let payload = bytes.get(pos + 4..pos + 2 + len.max(2))?;
        if marker == 0xE1
            && let Some(tiff) = payload.strip_prefix(b"Exif\0\0")
        {
            return Some(tiff);
        }
        pos += 2 + len;
    }
}

/// Whether the marker structure runs to an EOI marker inside `bytes`: segments skipped by their lengths,
/// entropy-coded data scanned to the next marker (`FF 00` stuffing, `FF D0..D7` restarts and fill bytes stay
/// inside it). libjpeg reads no further than EOI, so without one it asks for bytes past the end.
fn reaches_eoi(bytes: &[u8]) -> bool {
    let mut pos = 2; // after SOI
    let mut in_scan = false;
    while pos + 1 < bytes.len() {
        if bytes[pos] != 0xFF {
            pos += 1; // entropy-coded data, or extraneous bytes libjpeg skips (with a warning) to the next marker
            continue;
        }
        let code = bytes[pos + 1];
        match code {
            0xFF => pos += 1,                          // fill byte before a marker
            0x00 | 0xD0..=0xD7 if in_scan => pos += 2, // stuffed 0xFF, restart marker
            0xD9 => return true,
            0x01 | 0xD0..=0xD7 => pos += 2,
            _ => {
                let Some(len) = bytes.get(pos + 2..pos + 4) else { return false };
                pos += 2 + u16::from_be_bytes([len[0], len[1]]) as usize;
                in_scan = code == 0xDA;
            }
        }
    }
    false
}

/// What the header says.
struct Header {
    width: u32,
    height: u32,
    /// CMYK or YCCK: libjpeg-turbo decodes those to CMYK only.
    four_channel: bool,
}

#[derive(Clone, Copy)]
enum Layout {
    Bgr,
    Cmyk,
}

impl Layout {
    fn pixel_format(self) -> c_int {
        match self {
            Self::Bgr => tj::TJPF_BGR,
            Self::Cmyk => tj::TJPF_CMYK,
        }
    }

    fn channels(self) -> usize {
        match self {
            Self::Bgr => 3,
            Self::Cmyk => 4,
        }
    }
}

/// An owned TurboJPEG decompression instance.
struct Decompressor<'a> {
    handle: NonNull<c_void>,
    origin: &'a str,
}

impl<'a> Decompressor<'a> {
    fn new(origin: &'a str) -> Result<Self, ImageError> {
        // SAFETY: tjInitDecompress has no preconditions; it returns NULL on failure, which is checked.
        let handle = unsafe { tj::tjInitDecompress() };
        let handle = NonNull::new(handle).ok_or_else(|| ImageError::Decode {
            origin: origin.to_string(),
            message: "libjpeg-turbo could not create a decoder (out of memory?)".to_string(),
        })?;
        Ok(Self { handle, origin })
    }

    /// `bytes`' length as the C API takes it (a slice longer than `c_ulong` can say is refused, not truncated).
    fn size(&self, bytes: &[u8]) -> Result<c_ulong, ImageError> {
        c_ulong::try_from(bytes.len()).map_err(|_| ImageError::Decode { origin: self.origin.to_string(), message: "too many bytes".into() })
    }

    fn read_header(&mut self, bytes: &[u8]) -> Result<Header, ImageError> {
        let (mut width, mut height, mut subsampling, mut colorspace) = (0, 0, 0, 0);
        let size = self.size(bytes)?;
        // SAFETY: the handle is live; `bytes` is a valid slice of `size` bytes, which libjpeg-turbo only reads (its
        // memory source never writes to or reads past the given size); the four outputs are valid `c_int`s.
        let status = unsafe {
            tj::tjDecompressHeader3(self.handle.as_ptr(), bytes.as_ptr(), size, &mut width, &mut height, &mut subsampling, &mut colorspace)
        };
        self.check(status)?;
        if width <= 0 || height <= 0 {
            return Err(ImageError::NoPixels { origin: self.origin.to_string(), width: width.max(0) as u32, height: height.max(0) as u32 });
        }
        let four_channel = colorspace == tj::TJCS_CMYK || colorspace == tj::TJCS_YCCK;
        Ok(Header { width: width as u32, height: height as u32, four_channel })
    }

    fn decompress(&mut self, bytes: &[u8], width: usize, height: usize, layout: Layout) -> Result<Vec<u8>, ImageError> {
        let pitch = width * layout.channels();
        let too_large = || ImageError::Decode { origin: self.origin.to_string(), message: "too large for libjpeg-turbo".into() };
        let (c_width, c_height, c_pitch) =
            (c_int::try_from(width).map_err(|_| too_large())?, c_int::try_from(height).map_err(|_| too_large())?, c_int::try_from(pitch).map_err(|_| too_large())?);
        let size = self.size(bytes)?;
        let mut out = vec![0u8; pitch * height];
        // SAFETY: the handle is live; `bytes` is read-only input of `size` bytes; `out` holds exactly `height` rows of
        // `pitch` bytes, and `width` x `height` is the size the header (read from these same bytes) gives, so at
        // scaling 1/1 libjpeg-turbo writes `height` rows of `width` pixels of this format inside it.
        let status = unsafe {
            tj::tjDecompress2(
                self.handle.as_ptr(),
                bytes.as_ptr(),
                size,
                out.as_mut_ptr(),
                c_width,
                c_pitch,
                c_height,
                layout.pixel_format(),
                tj::TJFLAG_LIMITSCANS,
            )
        };
        self.check(status)?;
        Ok(out)
    }

    /// A failed call is an error unless libjpeg only warned: then the output is what cv2 returns too.
    fn check(&self, status: c_int) -> Result<(), ImageError> {
        // SAFETY: the handle is live; tjGetErrorCode only reads it.
        if status == 0 || unsafe { tj::tjGetErrorCode(self.handle.as_ptr()) } == tj::TJERR_WARNING {
            Ok(())
        } else {
            Err(self.error())
        }
    }

    fn error(&self) -> ImageError {
        // SAFETY: the handle is live; tjGetErrorStr2 returns a pointer to a NUL-terminated string owned by the
        // instance (or a static one), valid until the next call on it, and it is copied out at once.
        let message = unsafe { CStr::from_ptr(tj::tjGetErrorStr2(self.handle.as_ptr())) }.to_string_lossy().into_owned();
        ImageError::Decode { origin: self.origin.to_string(), message: format!("libjpeg-turbo: {message}") }
    }
}

impl Drop for Decompressor<'_> {
    fn drop(&mut self) {
        // SAFETY: the handle came from tjInitDecompress and is destroyed exactly once, here.
        unsafe { tj::tjDestroy(self.handle.as_ptr()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmyk_follows_opencv() {
        // c = k - ((255 - c) * k >> 8), output B, G, R = y, m, c.
        assert_eq!(cmyk_to_bgr(&[255, 255, 255, 255, 0, 128, 255, 200]), vec![255, 255, 255, 200, 101, 1]);
    }

    #[test]
    fn eoi_is_found_past_stuffing_and_restarts() {
        let scan = [0xFF, 0xDA, 0x00, 0x02, 0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD3, 0x56, 0xFF, 0xFF, 0xD9];
        let jpeg = [&[0xFF, 0xD8][..], &[0xFF, 0xDB, 0x00, 0x03, 0xD9], &scan].concat();
        assert!(reaches_eoi(&jpeg));
        // A length that hides a D9 byte is skipped; cut anywhere before the final marker: truncated.
        for cut in 0..jpeg.len() {
            assert!(!reaches_eoi(&jpeg[..cut]), "cut at {cut}");
        }
    }

    #[test]
    fn exif_segment_is_found_after_other_markers() {
        // SOI, APP0 (JFIF, 16 bytes), APP1 Exif with a little-endian TIFF whose IFD0 holds orientation 6.
        let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10];
        jpeg.extend_from_slice(b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0");
        let tiff: Vec<u8> = [&b"II*\0\x08\0\0\0\x01\0"[..], &[0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0], &[0, 0, 0, 0]].concat();
        let len = (2 + 6 + tiff.len()) as u16;
        jpeg.extend_from_slice(&[0xFF, 0xE1]);
        jpeg.extend_from_slice(&len.to_be_bytes());
        jpeg.extend_from_slice(b"Exif\0\0");
        jpeg.extend_from_slice(&tiff);
        jpeg.extend_from_slice(&[0xFF, 0xDA, 0, 2]);
        assert_eq!(exif_orientation(&jpeg), Orientation::Rotate90);
        // Cut inside the segment: no orientation, no panic.
        for cut in 0..jpeg.len() {
            let _ = exif_orientation(&jpeg[..cut]);
        }
    }
}
