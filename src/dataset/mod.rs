//! Running a detector over many images: files, folders or a COCO instances file ([`source`]), decoded ahead
//! and batched by shape, results in input order ([`runner`]).

pub mod runner;
pub mod source;

pub use runner::{Outcome, RunSummary, RunnerConfig, run};
pub use source::{ImageEntry, coco_images, image_files};
