//! A PNG encoder that uses every core, as pigz does for gzip: the rows are cut into strips, each strip is filtered
//! (Sub) and deflated on its own, ending on a sync flush (a byte-aligned empty stored block), and the strips joined
//! are one valid zlib stream; its Adler-32 is combined from the strips'. The `png` crate writes the chunks.

use flate2::{Compress, Compression, FlushCompress, Status};
use rayon::prelude::*;

use crate::image::BgrImage;

/// Bytes of pixels per strip (whole rows, at least one): a 24 MP picture gives every core a few strips, and a strip's
/// deflate stream stays far below an IDAT chunk's 2^31 bytes.
const STRIP_BYTES: usize = 8 << 20;

/// zlib level 1 (zlib-rs' fastest real compression): with the Sub filter, about 3x smaller than the pixels.
const LEVEL: u32 = 1;

/// Writes the PNG of a BGR image (8-bit RGB, no interlace) to `out`.
pub(crate) fn write_bgr(img: &BgrImage, out: impl std::io::Write) -> std::io::Result<()> {
    let stride = img.width * 3;
    let strip_rows = (STRIP_BYTES / stride.max(1)).max(1);
    let strips: Vec<(Vec<u8>, u32, usize)> = img
        .data
        .par_chunks((stride * strip_rows).max(1))
        .enumerate()
        .map(|(i, rows)| {
            let last = (i + 1) * strip_rows >= img.height;
            let filtered = sub_filtered_rgb(rows, stride);
            let adler = simd_adler32::adler32(&filtered.as_slice());
            deflate(&filtered, last).map(|z| (z, adler, filtered.len()))
        })
        .collect::<std::io::Result<_>>()?;

    let mut encoder = png::Encoder::new(out, img.width as u32, img.height as u32);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(std::io::Error::other)?;
    // The zlib stream may be cut anywhere between IDAT chunks: its header, then one chunk per strip, then the checksum.
    let mut idat = |data: &[u8]| writer.write_chunk(png::chunk::IDAT, data).map_err(std::io::Error::other);
    idat(&[0x78, 0x01])?; // deflate, 32 KiB window, "fastest" level hint; 0x7801 is a multiple of 31
    let mut adler = 1;
    for (z, a, len) in &strips {
        idat(z)?;
        adler = adler32_combine(adler, *a, *len as u64);
    }
    idat(&adler.to_be_bytes())?;
    writer.finish().map_err(std::io::Error::other)
}

/// BGR rows as PNG scanlines of RGB with the Sub filter (each byte minus the same channel of the pixel to its left).
fn sub_filtered_rgb(rows: &[u8], stride: usize) -> Vec<u8> {
    let mut out = vec![0u8; rows.len() + rows.len() / stride];
    for (row, line) in rows.chunks_exact(stride).zip(out.chunks_exact_mut(stride + 1)) {
        line[0] = 1; // filter type: Sub
        let line = &mut line[1..];
        line[..3].copy_from_slice(&[row[2], row[1], row[0]]);
        for ((d, cur), left) in line[3..].chunks_exact_mut(3).zip(row[3..].chunks_exact(3)).zip(row.chunks_exact(3)) {
            d[0] = cur[2].wrapping_sub(left[2]);
            d[1] = cur[1].wrapping_sub(left[1]);
            d[2] = cur[0].wrapping_sub(left[0]);
        }
    }
    out
}

/// Raw deflate of `data`: the stream's final block when `last`, else blocks ending on a sync flush so that the
/// next strip's blocks can follow.
fn deflate(data: &[u8], last: bool) -> std::io::Result<Vec<u8>> {
    let mut c = Compress::new(Compression::new(LEVEL), false);
    let mut out = Vec::with_capacity(data.len() / 2 + 1024);
    let flush = if last { FlushCompress::Finish } else { FlushCompress::Sync };
    loop {
        let status = c.compress_vec(&data[c.total_in() as usize..], &mut out, flush).map_err(std::io::Error::other)?;
        // Done: Finish has ended the stream; Sync has consumed everything and left room (its flush is complete).
        let done = if last { status == Status::StreamEnd } else { c.total_in() as usize == data.len() && out.len() < out.capacity() };
        if done {
            return Ok(out);
        }
        out.reserve(out.capacity().max(1 << 16));
    }
}

/// zlib's `adler32_combine`: the Adler-32 of `A || B` from those of `A` and `B` and the length of `B`.
fn adler32_combine(a: u32, b: u32, len_b: u64) -> u32 {
    const BASE: u64 = 65521;
    let rem = len_b % BASE;
    let mut sum1 = u64::from(a & 0xffff);
    let mut sum2 = rem * sum1 % BASE;
    sum1 += u64::from(b & 0xffff) + BASE - 1;
    sum2 += u64::from(a >> 16) + u64::from(b >> 16) + BASE - rem;
    sum1 %= BASE;
    sum2 %= BASE;
    (sum1 | sum2 << 16) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adler32_combines_as_over_the_whole() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7919 % 251) as u8).collect();
        for cut in [0, 1, 65520, 65521, 100_000, 200_000] {
            let (a, b) = data.split_at(cut);
            let combined = adler32_combine(simd_adler32::adler32(&a), simd_adler32::adler32(&b), b.len() as u64);
            assert_eq!(combined, simd_adler32::adler32(&data.as_slice()), "cut at {cut}");
        }
    }

    #[test]
    fn strips_decode_to_the_pixels() {
        // Three strips, the last one short; odd width; every byte value.
        let (w, h) = (37 * 1024, 2 * STRIP_BYTES / (37 * 3 * 1024) + 5);
        let data: Vec<u8> = (0..w * h * 3).map(|i| (i * 31 % 256) as u8 ^ (i / 97) as u8).collect();
        let img = BgrImage::from_bgr(w, h, data.clone()).unwrap();
        let mut png = Vec::new();
        write_bgr(&img, &mut png).unwrap();
        let mut reader = png::Decoder::new(std::io::Cursor::new(png)).read_info().unwrap();
        let mut rgb = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut rgb).unwrap();
        assert_eq!((info.width, info.height, info.color_type), (w as u32, h as u32, png::ColorType::Rgb));
        assert_eq!(rgb, img.to_rgb());
    }
}
