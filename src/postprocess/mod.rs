//! The last stage: detections back in the original image (detectron2's `postprocessing.py`).

mod detector_postprocess;

pub use detector_postprocess::detector_postprocess;
