//! Evaluation: COCO results JSON and RLE, COCO AP by hotcoco, and detection matching (the parity tests).

pub mod coco_eval;
pub mod coco_json;
#[doc(hidden)]
pub mod matching;
pub mod rle;

pub use coco_eval::{CocoEvaluation, EvalSummary, evaluate};
pub use coco_json::CocoResult;
pub use matching::{DetRef, mask_overlap, match_detections};
pub use rle::{CocoRle, decode_dense, encode_dense};
