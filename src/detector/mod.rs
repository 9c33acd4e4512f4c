//! The detector: loads a model, preprocesses images, calls the network once per batch, postprocesses (torchvision's
//! `GeneralizedRCNN.forward`). The stages own their inference (`rpn::RpnHead::predict`, `roi_heads::RoiHead::predict`).

mod builder;
mod streams;

pub use builder::DetectorBuilder;
pub use streams::MAX_STREAMS;
pub(crate) use streams::{Stream, Streams};

use std::path::Path;
use std::sync::Arc;

use burn::tensor::Device;

use crate::config::{ModelConfig, TestConfig};
use crate::device::DeviceProfile;
use crate::error::Result;
use crate::image::BgrImage;
use crate::model::MaskRcnn;
use crate::output::Detections;
use crate::postprocess::detector_postprocess;
use crate::precision::Precision;
use crate::preprocess::{Preprocessed, preprocess};
use crate::timing::{Stage, StageClock, StageTimings};
use crate::weights::{Checkpoint, StateDict};

/// A loaded model ready to detect objects. Its architecture and weights are fixed once loaded; the test-time
/// settings ([`TestConfig`]: scale, thresholds) may change ([`Detector::test_config_mut`]).
pub struct Detector {
    model: MaskRcnn,
    config: ModelConfig,
    profile: Arc<DeviceProfile>,
    precision: Precision,
    classes: Vec<String>,
    streams: Streams,
}

impl Detector {
    /// A detector made step by step: model, weights (downloaded when not given), device, precision, threshold.
    pub fn builder(model: impl Into<String>) -> DetectorBuilder {
        DetectorBuilder { model: model.into(), ..DetectorBuilder::default() }
    }

    /// Builds the model of `config` for `weights`' classes and fills it with them: the heads' sizes come from the
    /// checkpoint (checked for consistency), the class names from its metadata when it has them, else the
    /// config's (when the counts agree), else `class_0..`.
    pub fn new(config: ModelConfig, weights: Checkpoint, device: Device) -> Result<Self> {
        let (model, classes) = weights.load_into(&config, &device)?;
        Ok(Self { model, config, profile: DeviceProfile::of(&device), precision: Precision::F32, classes, streams: Streams::new(1)? })
    }

    /// Loads a checkpoint (`.safetensors`, or an mmdetection / mmengine `.pth`) with mmdetection's key names.
    /// Sizes, keys and shapes are checked against the model before any tensor is read. A safetensors file's f32
    /// tensors are the parameters on flex, read in place from the mapped file: it must not be truncated or
    /// rewritten in place while the detector lives (replacing it by a rename is fine).
    pub fn from_checkpoint(config: ModelConfig, path: impl AsRef<Path>, device: Device) -> Result<Self> {
        Self::new(config.clone(), Checkpoint::open(path.as_ref(), &config)?, device)
    }

    /// [`Detector::from_checkpoint`] under its older name.
    pub fn from_safetensors(config: ModelConfig, path: impl AsRef<Path>, device: Device) -> Result<Self> {
        Self::from_checkpoint(config, path, device)
    }

    /// A detector from tensors already in memory (mmdetection's keys).
    pub fn from_state_dict(config: ModelConfig, weights: StateDict, device: Device) -> Result<Self> {
        Self::new(config, Checkpoint::from(weights), device)
    }

    /// The same detector with its activations in `precision` (weights and arithmetic stay f32: see
    /// [`Precision`]).
    pub fn with_precision(self, precision: Precision) -> Self {
        Self { precision, ..self }
    }

    /// The same detector running `streams` images at once on the host, each on its own pool of `threads /
    /// streams` threads (`RAYON_NUM_THREADS`, else the cores; rounded down, at least one): more images per second
    /// in [`predict_batch`](Self::predict_batch) (and so in sliced inference's tile batches) and in dataset runs,
    /// each image slower, `streams` images' activations in memory at once. Results are the same. On a GPU,
    /// streams change nothing. 1 to [`MAX_STREAMS`].
    pub fn with_streams(self, streams: usize) -> Result<Self> {
        Ok(Self { streams: Streams::new(streams)?, ..self })
    }

    /// How many images run at once (see [`with_streams`](Self::with_streams)): 1 on a GPU.
    pub fn streams(&self) -> usize {
        if self.profile.is_host() { self.streams.len() } else { 1 }
    }

    /// The network, for running single stages (tests and benches).
    #[doc(hidden)]
    pub fn model(&self) -> &MaskRcnn {
        &self.model
    }

    /// The config the detector was built from.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The test-time settings, to change on the loaded detector (input scale, proposal and score thresholds).
    pub fn test_config_mut(&mut self) -> &mut TestConfig {
        &mut self.config.test
    }

    /// The class names, in label order (the checkpoint's, or the config's).
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// Where the model runs.
    pub fn device(&self) -> &Device {
        self.profile.device()
    }

    /// What the crate knows of the device (adapter, limits).
    pub fn profile(&self) -> &DeviceProfile {
        &self.profile
    }

    /// The activations' precision (f32 unless [`Detector::with_precision`]).
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The network input of one image and its metadata (mmdetection's test pipeline and data preprocessor).
    pub fn preprocess(&self, img: &BgrImage) -> Preprocessed {
        preprocess(img, &self.config.model.data, self.config.test.scale)
    }

    /// Detects objects in one image.
    pub fn predict(&self, img: &BgrImage) -> Result<Detections> {
        self.predict_timed(img).map(|(d, _)| d)
    }

    /// Decodes and detects objects in one image file.
    pub fn predict_path(&self, path: impl AsRef<Path>) -> Result<Detections> {
        self.predict(&BgrImage::open(path)?)
    }

    /// [`predict`](Self::predict) with the wall time of each stage.
    pub fn predict_timed(&self, img: &BgrImage) -> Result<(Detections, StageTimings)> {
        self.on_host_pool(|| {
            let (mut out, timings) = self.predict_preprocessed_here(&[&self.preprocess(img)])?;
            Ok((out.remove(0), timings))
        })
    }

    /// Detects objects in several images: images of the same padded input shape (mmdetection pads each image
    /// alone to a multiple of 32, and GroupNorm normalises each image over its own padded map) go through the
    /// network as one batch; proposals and NMS stay per image. Each image's result is the one
    /// [`predict`](Self::predict) gives it alone (mmdetection's published AP was computed at batch size 1).
    /// With [streams](Self::with_streams) on the host, the images run one per stream instead (one image on one
    /// stream's threads), each on a stream no other caller holds: callers on several threads at once (a Ray
    /// actor's concurrent calls) keep every stream busy, where one caller's last image would leave the others idle.
    pub fn predict_batch(&self, images: &[BgrImage]) -> Result<Vec<Detections>> {
        if self.streams() > 1 {
            let one = |img: &BgrImage| self.predict_batch_here(std::slice::from_ref(img)).map(|mut d| d.remove(0));
            return self.streams.map(images, one).into_iter().collect();
        }
        self.on_host_pool(|| self.predict_batch_here(images))
    }

    fn predict_batch_here(&self, images: &[BgrImage]) -> Result<Vec<Detections>> {
        let pre: Vec<Preprocessed> = images.iter().map(|img| self.preprocess(img)).collect();
        let mut out: Vec<Option<Detections>> = vec![None; images.len()];
        let mut shapes: Vec<(usize, usize)> = pre.iter().map(|p| p.meta.pad_shape).collect();
        shapes.sort_unstable();
        shapes.dedup();
        for shape in shapes {
            let members: Vec<usize> = (0..pre.len()).filter(|&i| pre[i].meta.pad_shape == shape).collect();
            let batch: Vec<&Preprocessed> = members.iter().map(|&i| &pre[i]).collect();
            for (&i, d) in members.iter().zip(self.predict_preprocessed_here(&batch)?.0) {
                out[i] = Some(d);
            }
        }
        Ok(out.into_iter().flatten().collect())
    }

    /// The pipeline on preprocessed images that share one padded shape, as one batch, with each stage's time.
    pub fn predict_preprocessed(&self, batch: &[&Preprocessed]) -> Result<(Vec<Detections>, StageTimings)> {
        self.on_host_pool(|| self.predict_preprocessed_here(batch))
    }

    fn predict_preprocessed_here(&self, batch: &[&Preprocessed]) -> Result<(Vec<Detections>, StageTimings)> {
        let mut clock = StageClock::start();
        let input = Preprocessed::stack(batch, self.device())?;
        clock.lap(Stage::Preprocess);
        let shapes: Vec<(usize, usize)> = batch.iter().map(|p| p.meta.img_shape).collect();
        let out = self.model.predict(input, &shapes, &self.config.test, self.precision, &mut clock)?;
        let metas: Vec<_> = batch.iter().map(|p| p.meta).collect();
        let dets = detector_postprocess(out, &metas, &self.classes, self.config.test.rcnn.mask_thr_binary)?;
        clock.lap(Stage::MaskHead);
        Ok((dets, clock.timings))
    }

    /// Runs `f` on a worker of rayon's global pool when the model runs on the host (the caller blocks once), so
    /// that the host kernels' parallel loops fork inside the pool. Called from outside it, each loop is handed to
    /// the pool and its end back to the calling thread (and a one-thread pool's caller runs the GEMMs between):
    /// thousands of hand-overs per image, each a wait for a core when other processes share it. Measured on 2
    /// cores (benches/logs/host_pool_ab.txt): Python's `predict` with one thread 0.93x the time, a one-thread Ray
    /// actor's runnable-but-waiting time 7 s -> 1.7 s per 32 s job; the binary unchanged at one and two threads.
    /// Inside the pool, or on a GPU, `f` runs here. Public methods enter the pool once; their `_here` twins are
    /// what they call inside it.
    fn on_host_pool<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        if self.profile.is_host() { rayon::scope(|_| f()) } else { f() }
    }

    /// `work` once per stream at once, each handed its stream to run model calls in (on a GPU, or with one
    /// stream, once here): a dataset run's model loops.
    pub(crate) fn on_streams(&self, work: impl Fn(Stream<'_>) + Sync) {
        if self.profile.is_host() { self.streams.run_all(work) } else { work(Stream::HERE) }
    }
}
