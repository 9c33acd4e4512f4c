//! Evaluation helpers: COCO RLE and detection matching (used by the parity tests and the CLI's JSON output).

pub mod coco_json;
pub mod matching;
pub mod rle;

pub use coco_json::CocoResult;
pub use matching::{DetRef, mask_overlap, match_detections};
pub use rle::{CocoRle, decode_dense, encode_dense};
