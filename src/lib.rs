//! # mask-rcnn-burn
//!
//! The Group Normalization Mask R-CNN (Wu & He, ECCV 2018) exactly as mmdetection publishes it
//! (ResNet-50/101-FPN, GN in backbone, FPN and both heads), on Burn: wgpu on any GPU, `flex` on the CPU.
//!
//! A [`Detector`] is built from a model config (an alias such as `r50-2x`, an mmdetection config name, or a
//! TOML file), a checkpoint (downloaded when not given) and a device; it takes [`BgrImage`]s and gives
//! [`Detections`]: boxes, scores, class names and pixel masks. [`sliced`] runs one tile by tile over large images,
//! [`dataset`] over folders and COCO sets; [`eval`] writes COCO results and computes AP, [`render`] draws them.
//!
//! ```no_run
//! use mask_rcnn_burn::{BgrImage, Detector, DeviceSpec};
//! let detector = Detector::builder("r50-2x").weights("weights/r50-2x.safetensors").device(DeviceSpec::Cpu).build()?;
//! let detections = detector.predict(&BgrImage::open("demo/coffee.jpg")?)?;
//! for d in &detections.items {
//!     println!("{} {:.3} {:?} {} px", d.class_name, d.score, d.bbox, d.mask.area());
//! }
//! # Ok::<(), mask_rcnn_burn::Error>(())
//! ```

#![warn(missing_docs)]

// The public face: what a user calls.
#[cfg(feature = "mimalloc")]
pub mod alloc;
pub mod config;
pub mod dataset;
pub mod device;
pub mod error;
#[cfg(feature = "eval")]
pub mod eval;
pub mod image;
#[cfg(feature = "render")]
pub mod render;
pub mod sliced;
pub mod weights;

pub use config::ModelConfig;
pub use detector::{Detector, DetectorBuilder, MAX_STREAMS};
pub use device::{DeviceProfile, DeviceSpec};
pub use error::{Error, ErrorKind, Result};
pub use image::{BgrImage, ImageLimits};
pub use output::{Detection, Detections};
pub use precision::Precision;
pub use preprocess::{ImageMeta, Preprocessed};
pub use structures::{BBox, Mask};
pub use timing::StageTimings;

// The pipeline, in data-flow order: image -> preprocess -> backbone -> neck -> rpn -> roi_heads -> postprocess
// -> output; `detector` runs it, `model` holds the network; `ops`, `layers` and `structures` are below them.
mod backbone;
mod detector;
mod fs;
mod layers;
mod model;
mod neck;
mod ops;
mod output;
mod postprocess;
mod precision;
mod preprocess;
mod roi_heads;
mod rpn;
mod structures;
mod timing;

#[doc(hidden)]
pub mod internals;
