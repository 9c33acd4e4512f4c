//! A PNG encoder that uses every core, as pigz does for gzip: the rows are cut into strips, each strip is filtered
//! (Sub) and deflated on its own by fdeflate (the `png` crate's fastest compressor: one Huffman table tuned for
//! filtered images, runs of zeros; ~11 ms per 8 MB strip of the large_image example's 24 MP picture, against 20-28 ms
//! for zlib-rs level 1), and the strips are joined
//! into one zlib stream: each non-final strip's block loses its final-block bit and is followed by an empty stored
//! block, which byte-aligns the next strip's block. The Adler-32 is combined from the strips'.

use rayon::prelude::*;

use crate::image::BgrImage;

/// Bytes of pixels per strip (whole rows, at least one): a 24 MP picture gives every core a few strips, and a strip's
/// deflate stream stays far below an IDAT chunk's 2^31 bytes.
const STRIP_BYTES: usize = 8 << 20;

/// Draws on rows `y0..` of the picture (a strip's copy of them) before they are encoded.
pub(crate) type DrawRows<'a> = &'a (dyn Fn(usize, &mut [u8]) + Sync);

/// Writes the PNG of a BGR image (8-bit RGB, no interlace) to `out`, each strip drawn on by `draw` first.
pub(crate) fn write_bgr(img: &BgrImage, draw: Option<DrawRows>, out: impl std::io::Write) -> std::io::Result<()> {
    write_bgr_in_strips(img, draw, STRIP_BYTES, out)
}

pub(super) fn write_bgr_in_strips(img: &BgrImage, draw: Option<DrawRows>, strip_bytes: usize, out: impl std::io::Write) -> std::io::Result<()> {
    let stride = img.width * 3;
    let strip_rows = (strip_bytes / stride.max(1)).max(1);
    let strips: Vec<Strip> = img
        .data
        .par_chunks((stride * strip_rows).max(1))
        .enumerate()
        .map(|(i, rows)| {
            let filtered = match draw {
                Some(draw) => {
                    let mut drawn = rows.to_vec();
                    draw(i * strip_rows, &mut drawn);
                    sub_filtered_rgb(&drawn, stride)
                }
                None => sub_filtered_rgb(rows, stride),
            };
            Strip::deflate(&filtered, (i + 1) * strip_rows >= img.height)
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
    for strip in &strips {
        idat(strip.deflate_bytes())?;
        adler = adler32_combine(adler, strip.adler, strip.raw_len as u64);
    }
    idat(&adler.to_be_bytes())?;
    writer.finish().map_err(std::io::Error::other)
}

/// One strip's fdeflate zlib stream, rewritten so that the next strip's deflate blocks can follow it.
struct Strip {
    zlib: Vec<u8>,
    adler: u32,
    raw_len: usize,
}

impl Strip {
    fn deflate(filtered: &[u8], last: bool) -> std::io::Result<Self> {
        let mut zlib = fdeflate::compress_to_vec(filtered);
        let n = zlib.len();
        if n < 7 {
            return Err(std::io::Error::other("fdeflate wrote no deflate block"));
        }
        let adler = u32::from_be_bytes(zlib[n - 4..].try_into().expect("4 bytes"));
        zlib.truncate(n - 4);
        if !last {
            // fdeflate writes one block, final, starting at the first bit after the 2-byte zlib header, and ends
            // it with the end-of-block code, whose last bit is 1, then zero padding to the byte. The block is made
            // non-final, and an empty stored block (3 header bits, all zero, then alignment, LEN 0, NLEN 0xffff)
            // follows: in the padding where 3 bits are left there, else in one more byte.
            zlib[2] &= !1;
            let end = *zlib.last().expect("a block");
            if end == 0 {
                return Err(std::io::Error::other("fdeflate's stream does not end on its end-of-block code"));
            }
            let padding = end.leading_zeros();
            if padding < 3 {
                zlib.push(0);
            }
            zlib.extend_from_slice(&[0, 0, 0xff, 0xff]);
        }
        Ok(Self { zlib, adler, raw_len: filtered.len() })
    }

    /// The deflate blocks, without the zlib header.
    fn deflate_bytes(&self) -> &[u8] {
        &self.zlib[2..]
    }
}

/// BGR rows as PNG scanlines of RGB with the Sub filter (each byte minus the same channel of the pixel to its left):
/// the differences over the whole row (a loop that vectorises), then each pixel's B and R swapped.
fn sub_filtered_rgb(rows: &[u8], stride: usize) -> Vec<u8> {
    let mut out = vec![0u8; rows.len() + rows.len() / stride];
    for (row, line) in rows.chunks_exact(stride).zip(out.chunks_exact_mut(stride + 1)) {
        line[0] = 1; // filter type: Sub
        let line = &mut line[1..];
        line[..3].copy_from_slice(&row[..3]);
        for ((d, &cur), &left) in line[3..].iter_mut().zip(&row[3..]).zip(&row[..stride - 3]) {
            *d = cur.wrapping_sub(left);
        }
        for px in line.chunks_exact_mut(3) {
            px.swap(0, 2);
        }
    }
    out
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
            let adler = |d: &[u8]| Strip::deflate(d, true).unwrap().adler;
            let combined = adler32_combine(adler(a), adler(b), b.len() as u64);
            assert_eq!(combined, adler(&data), "cut at {cut}");
        }
    }

    #[test]
    fn joined_strips_inflate_to_their_concatenation_whatever_the_last_byte_padding() {
        use std::io::Read;
        let mut paddings = [false; 8];
        for k in 0..200u32 {
            let a: Vec<u8> = (0..k * 37 + 1).map(|i| (i.wrapping_mul(2654435761) >> (k % 24)) as u8 & (k % 7 + 1) as u8).collect();
            let b: Vec<u8> = (0..k + 5).map(|i| (i * k) as u8).collect();
            let raw = fdeflate::compress_to_vec(&a);
            paddings[raw[raw.len() - 5].leading_zeros() as usize] = true;
            let (sa, sb) = (Strip::deflate(&a, false).unwrap(), Strip::deflate(&b, true).unwrap());
            let mut zlib = vec![0x78, 0x01];
            zlib.extend_from_slice(sa.deflate_bytes());
            zlib.extend_from_slice(sb.deflate_bytes());
            zlib.extend_from_slice(&adler32_combine(sa.adler, sb.adler, b.len() as u64).to_be_bytes());
            let mut inflated = Vec::new();
            flate2::read::ZlibDecoder::new(&zlib[..]).read_to_end(&mut inflated).unwrap();
            assert_eq!(inflated, [a, b].concat(), "case {k}");
        }
        assert_eq!(paddings, [true; 8], "every padding of the first strip's last byte is exercised");
    }

    #[test]
    fn strips_decode_to_the_pixels() {
        // Three strips, the last one short; odd width; every byte value.
        let (w, h) = (37 * 1024, 2 * STRIP_BYTES / (37 * 3 * 1024) + 5);
        let data: Vec<u8> = (0..w * h * 3).map(|i| (i * 31 % 256) as u8 ^ (i / 97) as u8).collect();
        let img = BgrImage::from_bgr(w, h, data.clone()).unwrap();
        let mut png = Vec::new();
        write_bgr(&img, None, &mut png).unwrap();
        let mut reader = png::Decoder::new(std::io::Cursor::new(png)).read_info().unwrap();
        let mut rgb = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut rgb).unwrap();
        assert_eq!((info.width, info.height, info.color_type), (w as u32, h as u32, png::ColorType::Rgb));
        assert_eq!(rgb, img.to_rgb());
    }
}
