//! Wall time of each stage of a prediction, taken by the stages themselves as they finish.

use std::time::{Duration, Instant};

/// Wall time of each stage of one `predict` (the device is synchronised where a stage reads back).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StageTimings {
    /// Resize, normalise, pad, upload.
    pub preprocess: Duration,
    /// Backbone and FPN (device synchronised at the end).
    pub backbone_fpn: Duration,
    /// RPN head, read-back, top-k, decoding, NMS.
    pub rpn: Duration,
    /// RoIAlign, box head, read-back, per-class NMS.
    pub box_head: Duration,
    /// RoIAlign, mask head, paste, read-back.
    pub mask_head: Duration,
}

impl std::ops::AddAssign for StageTimings {
    fn add_assign(&mut self, other: Self) {
        self.preprocess += other.preprocess;
        self.backbone_fpn += other.backbone_fpn;
        self.rpn += other.rpn;
        self.box_head += other.box_head;
        self.mask_head += other.mask_head;
    }
}

impl StageTimings {
    /// The sum of the stages.
    pub fn total(&self) -> Duration {
        self.preprocess + self.backbone_fpn + self.rpn + self.box_head + self.mask_head
    }
}

/// A stage of [`StageTimings`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    Preprocess,
    BackboneFpn,
    Rpn,
    BoxHead,
    MaskHead,
}

/// Adds the time since the previous lap to the stage that just finished.
pub(crate) struct StageClock {
    last: Instant,
    /// What has been timed so far.
    pub(crate) timings: StageTimings,
}

impl StageClock {
    pub(crate) fn start() -> Self {
        Self { last: Instant::now(), timings: StageTimings::default() }
    }

    /// `stage` ended now.
    pub(crate) fn lap(&mut self, stage: Stage) {
        let now = Instant::now();
        let t = &mut self.timings;
        let slot = match stage {
            Stage::Preprocess => &mut t.preprocess,
            Stage::BackboneFpn => &mut t.backbone_fpn,
            Stage::Rpn => &mut t.rpn,
            Stage::BoxHead => &mut t.box_head,
            Stage::MaskHead => &mut t.mask_head,
        };
        *slot += now - self.last;
        self.last = now;
    }
}
