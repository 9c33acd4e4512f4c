//! [`DetectorBuilder`]: a detector made step by step (model, weights, device, precision, threshold, classes).

use std::path::PathBuf;

use super::Detector;
use crate::config::ModelConfig;
use crate::device::{DeviceProfile, DeviceSpec};
use crate::error::{Error, Result};
use crate::precision::Precision;

/// What [`Detector::builder`] collects. `build` resolves the model config, the weights (downloading the config's
/// official checkpoint when none is given), the device, and loads.
#[derive(Debug, Clone, Default)]
pub struct DetectorBuilder {
    pub(super) model: String,
    pub(super) weights: Option<PathBuf>,
    pub(super) device: Option<DeviceSpec>,
    pub(super) precision: Precision,
    pub(super) score_thr: Option<f32>,
    pub(super) classes: Option<Vec<String>>,
    pub(super) progress: bool,
    pub(super) streams: Option<usize>,
}

impl DetectorBuilder {
    /// A `.safetensors` or `.pth` checkpoint (default: the config's official one, downloaded into the cache).
    pub fn weights(mut self, path: impl Into<PathBuf>) -> Self {
        self.weights = Some(path.into());
        self
    }

    /// Where to run (default: [`DeviceSpec::Auto`]).
    pub fn device(mut self, spec: DeviceSpec) -> Self {
        self.device = Some(spec);
        self
    }

    /// The activations' precision (default f32).
    pub fn precision(mut self, precision: Precision) -> Self {
        self.precision = precision;
        self
    }

    /// Keep detections scoring above this (default: the config's, 0.05).
    pub fn score_thr(mut self, thr: f32) -> Self {
        self.score_thr = Some(thr);
        self
    }

    /// Class names in label order, overriding the checkpoint's and the config's.
    pub fn classes(mut self, names: Vec<String>) -> Self {
        self.classes = Some(names);
        self
    }

    /// Images run at once on the host, each on its own share of the threads (default 1: see
    /// [`Detector::with_streams`]).
    pub fn streams(mut self, streams: usize) -> Self {
        self.streams = Some(streams);
        self
    }

    /// Show a progress bar while downloading weights.
    pub fn progress(mut self, show: bool) -> Self {
        self.progress = show;
        self
    }

    /// Resolves everything and loads the model; with [`DeviceSpec::Auto`], also says which device was chosen.
    pub fn build_explained(self) -> Result<(Detector, String)> {
        // Checked (and the pools started) before anything loads.
        let streams = self.streams.map(super::Streams::new).transpose()?;
        let mut config = ModelConfig::from_name_or_file(&self.model)?;
        if let Some(thr) = self.score_thr {
            if !(0.0..=1.0).contains(&thr) {
                return Err(Error::invalid_argument(format!("score threshold {thr} is not in [0, 1]")));
            }
            config.test.rcnn.score_thr = thr;
        }
        let weights = crate::weights::resolve_weights(&config, self.weights.as_deref(), self.progress)?;
        let (profile, why) = DeviceProfile::resolve(self.device.unwrap_or(DeviceSpec::Auto))?;
        let mut detector = Detector::from_checkpoint(config, weights, profile.device().clone())?.with_precision(self.precision);
        if let Some(streams) = streams {
            detector.streams = streams;
        }
        if let Some(names) = self.classes {
            if names.len() != detector.classes.len() {
                return Err(Error::invalid_argument(format!("{} class names for a model of {} classes", names.len(), detector.classes.len())));
            }
            detector.classes = names;
        }
        Ok((detector, why))
    }

    /// Resolves everything and loads the model.
    pub fn build(self) -> Result<Detector> {
        self.build_explained().map(|(d, _)| d)
    }
}
