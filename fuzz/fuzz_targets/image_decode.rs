//! Any bytes -> `BgrImage`: a typed error or an image of the size the limits allow, never a panic or an
//! allocation past the limits (PNG through the `image` crate, JPEG through libjpeg-turbo).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mask_rcnn_burn::image::{BgrImage, ImageLimits};

/// 4 megapixels: small enough that libFuzzer's 2 GB RSS limit catches a decoder allocating past the cap.
const LIMITS: ImageLimits = ImageLimits { max_pixels: 4 << 20 };

fuzz_target!(|data: &[u8]| {
    if let Ok(image) = BgrImage::decode_with_limits(data, "fuzz input", &LIMITS) {
        assert_eq!(image.data.len(), image.width * image.height * 3);
        assert!((image.width * image.height) as u64 <= LIMITS.max_pixels);
    }
});
