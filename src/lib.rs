//! # mask-rcnn-burn
//!
//! The Group Normalization Mask R-CNN (Wu & He, ECCV 2018) exactly as mmdetection publishes it
//! (ResNet-50/101-FPN, GN in backbone, FPN and both heads), on Burn: wgpu on any GPU, `flex` on the CPU.
//!
//! The modules follow the data flow: [`image`] -> [`preprocess`] -> [`backbone`] -> [`neck`] -> [`rpn`] ->
//! [`roi_heads`] -> [`postprocess`] -> [`output`]; [`detector`] runs them in order, [`weights`] loads
//! mmdetection checkpoints, [`config`] holds every setting.
//!
//! ```no_run
//! use mask_rcnn_burn::{BgrImage, Detector, ModelConfig};
//! let config = ModelConfig::named("r50-2x")?;
//! let detector = Detector::from_safetensors(config, "weights/r50-2x.safetensors", burn::tensor::Device::flex())?;
//! let detections = detector.predict(&BgrImage::open("demo/coffee.jpg")?)?;
//! for d in &detections.items {
//!     println!("{} {:.3} {:?} {} px", d.class_name, d.score, d.bbox, d.mask.area());
//! }
//! # Ok::<(), mask_rcnn_burn::Error>(())
//! ```

#![warn(missing_docs)]

#[cfg(feature = "mimalloc")]
pub mod alloc;
pub mod backbone;
pub mod config;
pub mod dataset;
pub mod detector;
pub mod device;
pub mod error;
#[cfg(feature = "eval")]
pub mod eval;
pub mod fs;
pub mod image;
pub mod layers;
pub mod model;
pub mod neck;
pub mod ops;
pub mod output;
pub mod postprocess;
pub mod precision;
pub mod preprocess;
#[cfg(feature = "render")]
pub mod render;
pub mod roi_heads;
pub mod rpn;
pub mod structures;
pub mod weights;

pub use config::ModelConfig;
pub use detector::{Detector, StageTimings};
pub use error::{Error, Result};
pub use image::BgrImage;
pub use output::{Detection, Detections};
pub use structures::Mask;
