//! Image decoding: this crate's JPEG path (libjpeg-turbo with OpenCV's settings) against the `image` crate's
//! decoder it replaced (zune-jpeg), on the 640x480 fixture photo and a ~12 MP photo-like JPEG made in memory.
//!
//!     cargo bench --bench decode

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use image::codecs::jpeg::JpegEncoder;
use image::{ExtendedColorType, ImageEncoder};
use mask_rcnn_burn::BgrImage;

/// The hopper fixture re-encoded at quality 85 (4:2:0, OpenCV's and the `image` crate's default layout).
fn hopper_jpeg() -> Vec<u8> {
    let png = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/images/hopper_640x480.png");
    let img = BgrImage::open(png).unwrap();
    encode(&img.to_rgb(), img.width, img.height)
}

/// 4000x3000 of smooth gradients with texture, so the entropy-coded data has a photo's density.
fn twelve_mp_jpeg() -> Vec<u8> {
    let (w, h) = (4000usize, 3000usize);
    let mut rgb = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            let t = ((x * 7 + y * 13) % 23) as u8;
            rgb.extend_from_slice(&[(x * 255 / w) as u8 ^ t, (y * 255 / h) as u8, ((x + y) % 256) as u8 / 2 + t]);
        }
    }
    encode(&rgb, w, h)
}

fn encode(rgb: &[u8], width: usize, height: usize) -> Vec<u8> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, 85).write_image(rgb, width as u32, height as u32, ExtendedColorType::Rgb8).unwrap();
    out
}

fn decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode");
    g.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(10));
    for (name, bytes) in [("640x480", hopper_jpeg()), ("4000x3000", twelve_mp_jpeg())] {
        g.bench_function(format!("libjpeg-turbo/{name}"), |b| b.iter(|| BgrImage::decode(&bytes, name).unwrap()));
        g.bench_function(format!("image-crate/{name}"), |b| b.iter(|| image::load_from_memory(&bytes).unwrap().into_rgb8()));
    }
    g.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
