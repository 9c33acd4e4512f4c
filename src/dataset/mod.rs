//! Running a detector over many images: files, folders or a COCO instances file (`source`), decoded ahead
//! and batched by shape, results in input order ([`run`]).

mod runner;
mod source;

pub use runner::{Outcome, RunSummary, RunnerConfig, run};
pub use source::{CocoCategory, ImageEntry, MAX_ANNOTATIONS_BYTES, category_ids, coco_categories, coco_images, image_files};
