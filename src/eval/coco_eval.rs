//! COCO evaluation of a results file against an instances file, by hotcoco (pycocotools' algorithm and numbers:
//! the 12 summary values of `COCOeval.summarize()`, for boxes and for masks).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use hotcoco::params::IouType;
use hotcoco::{COCO, COCOeval};
use serde::Serialize;

use crate::error::DatasetError;

/// The names of `COCOeval.stats`, in its order.
pub const STAT_NAMES: [&str; 12] = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"];

/// One IoU type's summary: pycocotools' 12 numbers (-1 where a category of sizes has no ground truth).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalSummary {
    /// `stats` by name (`AP`, `AP50`, ... `ARl`).
    #[serde(flatten)]
    pub stats: BTreeMap<String, f64>,
    /// The printed summary, as `COCOeval.summarize()` prints it.
    #[serde(skip)]
    pub lines: Vec<String>,
}

/// Box and mask results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CocoEvaluation {
    /// `iouType='bbox'`.
    pub bbox: EvalSummary,
    /// `iouType='segm'`.
    pub segm: EvalSummary,
}

impl EvalSummary {
    /// The 12 numbers in `COCOeval.stats` order.
    pub fn ordered(&self) -> Vec<f64> {
        STAT_NAMES.iter().map(|n| self.stats[*n]).collect()
    }
}

/// Evaluates `results` (a COCO results JSON array: `image_id`, `category_id`, `bbox`, `score`, `segmentation`)
/// against `annotations` (a COCO instances file) with pycocotools' default parameters.
pub fn evaluate(annotations: &Path, results: &Path) -> Result<CocoEvaluation, DatasetError> {
    let failed = |path: &Path| {
        let path = path.to_path_buf();
        move |e: hotcoco::error::Error| DatasetError::Annotations { path: path.clone(), message: e.to_string() }
    };
    let gt = Arc::new(COCO::new(annotations).map_err(failed(annotations))?);
    let dt = Arc::new(gt.load_res(results).map_err(failed(results))?);
    let summary = |iou_type| -> Result<EvalSummary, DatasetError> {
        let mut eval = COCOeval::new(Arc::clone(&gt), Arc::clone(&dt), iou_type);
        eval.evaluate().map_err(failed(results))?;
        eval.accumulate();
        let lines = eval.summarize_lines();
        let values = eval.stats().map(|s| s.to_vec()).unwrap_or_default();
        let stats = STAT_NAMES.iter().map(|n| n.to_string()).zip(values).collect();
        Ok(EvalSummary { stats, lines })
    };
    Ok(CocoEvaluation { bbox: summary(IouType::Bbox)?, segm: summary(IouType::Segm)? })
}
