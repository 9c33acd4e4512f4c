//! Sliced (tiled) inference for large images (aerial scenes, slides, drone photos), as SAHI does it: overlapping
//! tiles at native resolution ([`slice_boxes`]), optionally plus the whole image (SAHI's "standard prediction"),
//! tiles of one size batched through the network, each tile's boxes and masks moved to the image's coordinates,
//! then merged ([`merge`]: greedy non-maximum merging by intersection over the smaller box, SAHI's default).
//!
//! Memory is the image plus the detections: tiles are cut a batch at a time, and masks stay windows of their
//! boxes. docs/SAHI.md records SAHI's behaviour and where this differs.

mod merge;
mod order;
mod slices;

pub use merge::{MatchMetric, MergeConfig, MergeKind, merge};
pub use slices::slice_boxes;

use crate::detector::Detector;
use crate::error::{Error, Result};
use crate::image::BgrImage;
use crate::output::{Detection, Detections};

/// How an image is sliced and its tiles' detections merged; the defaults are SAHI's `get_sliced_prediction`'s
/// (with 512 x 512 tiles).
#[derive(Debug, Clone, PartialEq)]
pub struct SliceConfig {
    /// Tile width in pixels.
    pub width: usize,
    /// Tile height in pixels.
    pub height: usize,
    /// Overlap of horizontally neighbouring tiles, as a fraction of the tile width (in [0, 1)).
    pub overlap_width: f64,
    /// Overlap of vertically neighbouring tiles, as a fraction of the tile height.
    pub overlap_height: f64,
    /// Also predict on the whole image (SAHI's `perform_standard_pred`), for objects larger than a tile.
    pub full_image: bool,
    /// How overlapping detections of neighbouring tiles are merged.
    pub merge: MergeConfig,
    /// Keep at most this many detections (the best-scoring) after merging.
    pub max_detections: Option<usize>,
    /// Tiles per network batch.
    pub batch: usize,
}

impl Default for SliceConfig {
    fn default() -> Self {
        Self {
            width: 512,
            height: 512,
            overlap_width: 0.2,
            overlap_height: 0.2,
            full_image: true,
            merge: MergeConfig::default(),
            max_detections: None,
            batch: 4,
        }
    }
}

impl SliceConfig {
    /// Tile sizes of at least one pixel, overlaps in [0, 1) that leave tiles stepping forward, a batch of at least one.
    pub fn validate(&self) -> Result<()> {
        let step = |size: usize, ratio: f64| size > 0 && (0.0..1.0).contains(&ratio) && ((ratio * size as f64) as usize) < size;
        if !step(self.width, self.overlap_width) || !step(self.height, self.overlap_height) {
            return Err(Error::invalid_argument(format!(
                "slices of {}x{} with overlap {} x {}: sizes must be positive and overlaps in [0, 1)",
                self.width, self.height, self.overlap_width, self.overlap_height
            )));
        }
        if self.batch == 0 || !(0.0..=1.0).contains(&self.merge.threshold) {
            return Err(Error::invalid_argument("a slice batch of at least 1 and a merge threshold in [0, 1]"));
        }
        Ok(())
    }
}

/// Where a sliced prediction stands, handed to the progress callback after each batch of tiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SliceProgress {
    /// Predictions made (tiles, and the whole image last).
    pub done: usize,
    /// Predictions to make.
    pub total: usize,
}

impl Detector {
    /// Detects objects in a large image tile by tile (see [`crate::sliced`]); the detections are in the image's
    /// coordinates, by decreasing score.
    pub fn predict_sliced(&self, img: &BgrImage, config: &SliceConfig) -> Result<Detections> {
        self.predict_sliced_with_progress(img, config, |_| {})
    }

    /// [`Detector::predict_sliced`], calling `on_progress` after each batch of tiles (and after the whole image).
    pub fn predict_sliced_with_progress(&self, img: &BgrImage, config: &SliceConfig, mut on_progress: impl FnMut(SliceProgress)) -> Result<Detections> {
        config.validate()?;
        let (width, height) = (img.width, img.height);
        let tiles = slice_boxes(width, height, config.width, config.height, config.overlap_width, config.overlap_height);
        // SAHI adds the whole image only when there is more than one tile (one tile is the whole image).
        let full = config.full_image && tiles.len() > 1;
        let total = tiles.len() + usize::from(full);
        let mut found: Vec<Detection> = Vec::new();
        let mut done = 0;
        for group in tiles.chunks(config.batch) {
            let crops: Vec<BgrImage> = group.iter().map(|t| img.crop(*t)).collect();
            for (tile, dets) in group.iter().zip(self.predict_batch(&crops)?) {
                found.extend(dets.items.into_iter().map(|d| d.placed(tile[0], tile[1], width, height)));
            }
            done += group.len();
            on_progress(SliceProgress { done, total });
        }
        if full {
            found.extend(self.predict(img)?.items);
            on_progress(SliceProgress { done: total, total });
        }
        let mut items = merge(found, &config.merge);
        items.sort_by(|a, b| b.score.total_cmp(&a.score));
        if let Some(max) = config.max_detections {
            items.truncate(max);
        }
        Ok(Detections { image_width: width, image_height: height, items })
    }
}

impl Detection {
    /// This detection of a tile whose top-left corner is `(dx, dy)` in a `width x height` image, in the image's
    /// coordinates.
    fn placed(self, dx: usize, dy: usize, width: usize, height: usize) -> Detection {
        let [x1, y1, x2, y2] = self.bbox;
        let (fx, fy) = (dx as f32, dy as f32);
        Detection { bbox: [x1 + fx, y1 + fy, x2 + fx, y2 + fy], mask: self.mask.placed(dx, dy, width, height), ..self }
    }
}
