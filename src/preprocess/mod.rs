//! Pre-processing, as mmdetection's test pipeline and `DetDataPreprocessor`: keep-ratio resize (OpenCV
//! arithmetic), channel order, `(x - mean) / std` in f32, zero padding bottom/right to a multiple of 32.

mod resize;

pub use resize::resize_linear;

use burn::tensor::{Device, Tensor, TensorData};

use crate::config::{ChannelOrder, DataConfig};
use crate::image::BgrImage;

/// Where the network input came from: mmdetection's `img_meta`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImageMeta {
    /// Original image `(h, w)`.
    pub ori_shape: (usize, usize),
    /// Resized, unpadded `(h, w)`: boxes are clipped to it.
    pub img_shape: (usize, usize),
    /// Padded `(h, w)`: the network input.
    pub pad_shape: (usize, usize),
    /// `(new_w / w, new_h / h)`: separate factors, as mmdetection stores them.
    pub scale_factor: (f64, f64),
}

/// The network input: `[1, 3, H, W]` row-major f32, and its metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Preprocessed {
    /// `[1, 3, H, W]` values, row-major.
    pub input: Vec<f32>,
    /// Where the input came from.
    pub meta: ImageMeta,
}

impl Preprocessed {
    /// The input as a tensor on `device`.
    pub fn to_tensor(&self, device: &Device) -> Tensor<4> {
        let (h, w) = self.meta.pad_shape;
        Tensor::from_data(TensorData::new(self.input.clone(), [1, 3, h, w]), device)
    }

    /// The network inputs of a batch as one `[N, 3, H, W]` tensor; every input must have the same padded shape.
    pub(crate) fn stack(batch: &[&Preprocessed], device: &Device) -> crate::error::Result<Tensor<4>> {
        let (h, w) = batch.first().map(|p| p.meta.pad_shape).ok_or_else(|| crate::error::Error::invalid_argument("an empty batch"))?;
        if let Some(p) = batch.iter().find(|p| p.meta.pad_shape != (h, w)) {
            return Err(crate::error::Error::invalid_argument(format!("a batch mixes padded shapes {:?} and {:?}", (h, w), p.meta.pad_shape)));
        }
        let mut values = Vec::with_capacity(batch.iter().map(|p| p.input.len()).sum());
        batch.iter().for_each(|p| values.extend_from_slice(&p.input));
        Ok(Tensor::from_data(TensorData::new(values, [batch.len(), 3, h, w]), device))
    }
}

/// mmcv `rescale_size`: the largest factor that fits `scale = (long, short)`, sides rounded with `int(x + 0.5)`.
pub fn rescaled_size(width: usize, height: usize, scale: [u32; 2]) -> (usize, usize) {
    let (long, short) = (scale[0].max(scale[1]) as f64, scale[0].min(scale[1]) as f64);
    let (w, h) = (width as f64, height as f64);
    let factor = (long / w.max(h)).min(short / w.min(h));
    (((w * factor + 0.5) as usize).max(1), ((h * factor + 0.5) as usize).max(1))
}

/// Resizes to `scale` (mmdetection's keep-ratio `Resize(scale=(long, short))`), normalises and pads one image;
/// `resized` is the 8-bit image the network saw (before normalising).
pub fn preprocess_with_resized(img: &BgrImage, cfg: &DataConfig, scale: [u32; 2]) -> (Preprocessed, BgrImage) {
    let (new_w, new_h) = rescaled_size(img.width, img.height, scale);
    let resized = if (new_w, new_h) == (img.width, img.height) { img.clone() } else { resize_linear(img, new_w, new_h) };
    let d = cfg.pad_size_divisor;
    let (pad_h, pad_w) = (new_h.div_ceil(d) * d, new_w.div_ceil(d) * d);
    let mut input = vec![0f32; 3 * pad_h * pad_w];
    for c in 0..3 {
        // The network's channel c is BGR channel c, or channel 2 - c when it wants RGB.
        let src_c = match cfg.channel_order {
            ChannelOrder::Bgr => c,
            ChannelOrder::Rgb => 2 - c,
        };
        let (mean, std) = (cfg.mean[c], cfg.std[c]);
        let plane = &mut input[c * pad_h * pad_w..(c + 1) * pad_h * pad_w];
        for y in 0..new_h {
            let src = &resized.data[y * new_w * 3..(y + 1) * new_w * 3];
            for (x, dst) in plane[y * pad_w..y * pad_w + new_w].iter_mut().enumerate() {
                *dst = (src[x * 3 + src_c] as f32 - mean) / std;
            }
        }
    }
    let meta = ImageMeta {
        ori_shape: (img.height, img.width),
        img_shape: (new_h, new_w),
        pad_shape: (pad_h, pad_w),
        scale_factor: (new_w as f64 / img.width as f64, new_h as f64 / img.height as f64),
    };
    (Preprocessed { input, meta }, resized)
}

/// Resizes, normalises and pads one image for the network.
pub fn preprocess(img: &BgrImage, cfg: &DataConfig, scale: [u32; 2]) -> Preprocessed {
    preprocess_with_resized(img, cfg, scale).0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rescale_follows_mmcv() {
        assert_eq!(rescaled_size(640, 480, [1333, 800]), (1067, 800));
        assert_eq!(rescaled_size(600, 400, [1333, 800]), (1200, 800));
        assert_eq!(rescaled_size(640, 480, [320, 240]), (320, 240));
        assert_eq!(rescaled_size(2000, 500, [1333, 800]), (1333, 333));
        assert_eq!(rescaled_size(480, 640, [1333, 800]), (800, 1067));
    }
}
