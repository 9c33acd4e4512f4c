//! `mask_rcnn_burn._native`: the Rust core of the Python package. The Python layer (`mask_rcnn_burn/`) validates
//! and converts inputs and wraps outputs in numpy arrays; this module decodes, predicts with the GIL released,
//! and hands results back as plain values (bytes, lists, JSON text made by the crate's own serialisation).

use std::path::PathBuf;

use mask_rcnn_burn::eval::CocoResult;
use mask_rcnn_burn::{BgrImage, Detections, Detector, DeviceSpec, Error, ErrorKind, Precision};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// The allocator CPU runs want (see `mask_rcnn_burn::alloc`): mimalloc, for this extension's own allocations.
#[global_allocator]
static ALLOC: mask_rcnn_burn::alloc::MiMalloc = mask_rcnn_burn::alloc::MiMalloc;

/// The package's exception classes (python/mask_rcnn_burn/errors.py), raised from here.
mod exceptions {
    pyo3::import_exception!(mask_rcnn_burn.errors, Error);
    pyo3::import_exception!(mask_rcnn_burn.errors, ImageError);
    pyo3::import_exception!(mask_rcnn_burn.errors, WeightsError);
    pyo3::import_exception!(mask_rcnn_burn.errors, ConfigError);
    pyo3::import_exception!(mask_rcnn_burn.errors, DeviceError);
    pyo3::import_exception!(mask_rcnn_burn.errors, DatasetError);
    pyo3::import_exception!(mask_rcnn_burn.errors, FileError);
}
use exceptions::{ConfigError, DatasetError, DeviceError, FileError, ImageError, WeightsError};

/// The crate's error as the Python exception of its kind, with the CLI's one-line message.
fn to_py(e: Error) -> PyErr {
    let message = e.one_line();
    let io = matches!(
        &e,
        Error::Image(mask_rcnn_burn::error::ImageError::Io { .. })
            | Error::Weights(mask_rcnn_burn::error::WeightsError::Io { .. })
            | Error::Config(mask_rcnn_burn::error::ConfigError::Io { .. })
            | Error::Dataset(mask_rcnn_burn::error::DatasetError::Io { .. })
            | Error::Io { .. }
    );
    if io {
        return FileError::new_err(message);
    }
    match e.kind() {
        ErrorKind::Image => ImageError::new_err(message),
        ErrorKind::Weights => WeightsError::new_err(message),
        ErrorKind::Config => ConfigError::new_err(message),
        ErrorKind::Device => DeviceError::new_err(message),
        ErrorKind::Dataset => DatasetError::new_err(message),
        ErrorKind::InvalidArgument => PyValueError::new_err(message),
        ErrorKind::Io => FileError::new_err(message),
        ErrorKind::Internal => exceptions::Error::new_err(message),
    }
}

/// An image handed over from Python: a file, encoded bytes, or pixels.
enum Input {
    Path(PathBuf),
    Encoded(Vec<u8>),
    /// `H x W x 3` (or `H x W` gray) u8 pixels, C-contiguous, in `order`.
    Pixels { data: Vec<u8>, height: usize, width: usize, channels: usize, rgb: bool },
}

impl Input {
    /// The image, decoded (files and bytes through the crate's decoders: JPEG as OpenCV's imread) or wrapped.
    fn image(self) -> Result<BgrImage, Error> {
        match self {
            Input::Path(p) => Ok(BgrImage::open(p)?),
            Input::Encoded(bytes) => Ok(BgrImage::decode(&bytes, "<bytes>")?),
            Input::Pixels { data, height, width, channels, rgb } => {
                let data = match channels {
                    1 => data.iter().flat_map(|&v| [v, v, v]).collect(),
                    3 => data,
                    _ => return Err(Error::invalid_argument(format!("an image array has 1 or 3 channels, not {channels}"))),
                };
                Ok(if rgb { BgrImage::from_rgb(width, height, data)? } else { BgrImage::from_bgr(width, height, data)? })
            }
        }
    }
}

/// The native detector (the Python `Detector` wraps it).
#[pyclass(frozen, module = "mask_rcnn_burn._native")]
struct NativeDetector {
    detector: Detector,
    device: String,
}

#[pymethods]
impl NativeDetector {
    #[new]
    #[pyo3(signature = (model, weights=None, device="auto", precision="f32", score_thr=None, classes=None, streams=1))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        model: String,
        weights: Option<PathBuf>,
        device: &str,
        precision: &str,
        score_thr: Option<f32>,
        classes: Option<Vec<String>>,
        streams: usize,
    ) -> PyResult<Self> {
        let spec: DeviceSpec = device.parse().map_err(to_py)?;
        let precision: Precision = precision.parse().map_err(PyValueError::new_err)?;
        let mut builder = Detector::builder(model).device(spec).precision(precision).streams(streams);
        if let Some(w) = weights {
            builder = builder.weights(w);
        }
        if let Some(t) = score_thr {
            builder = builder.score_thr(t);
        }
        if let Some(c) = classes {
            builder = builder.classes(c);
        }
        let detector = py.detach(|| builder.build()).map_err(to_py)?;
        let p = detector.profile();
        let device = format!("{} ({})", p.name(), p.api());
        Ok(Self { detector, device })
    }

    /// Detects objects in one image: `kind` is "path", "bytes" or "pixels".
    #[pyo3(signature = (kind, value, height=0, width=0, channels=3, rgb=false))]
    fn predict(&self, py: Python<'_>, kind: &str, value: &Bound<'_, PyAny>, height: usize, width: usize, channels: usize, rgb: bool) -> PyResult<NativeResult> {
        let input = input(kind, value, height, width, channels, rgb)?;
        let det = &self.detector;
        let out = py.detach(move || input.image().and_then(|img| det.predict(&img))).map_err(to_py)?;
        Ok(NativeResult { detections: out })
    }

    /// Detects objects in several images (same-shape images batched): `items` are `(kind, value, height, width,
    /// channels, rgb)` tuples.
    #[allow(clippy::type_complexity)]
    fn predict_batch(&self, py: Python<'_>, items: Vec<(String, Bound<'_, PyAny>, usize, usize, usize, bool)>) -> PyResult<Vec<NativeResult>> {
        let inputs = items.iter().map(|(k, v, h, w, c, rgb)| input(k, v, *h, *w, *c, *rgb)).collect::<PyResult<Vec<_>>>()?;
        let det = &self.detector;
        let out = py
            .detach(move || {
                let images = inputs.into_iter().map(Input::image).collect::<Result<Vec<_>, _>>()?;
                det.predict_batch(&images)
            })
            .map_err(to_py)?;
        Ok(out.into_iter().map(|detections| NativeResult { detections }).collect())
    }

    /// Sliced inference (`mask_rcnn_burn::sliced`) of one image.
    #[pyo3(signature = (kind, value, height, width, channels, rgb, slice, overlap, full_image, merge, metric, threshold, class_agnostic, max_detections))]
    #[allow(clippy::too_many_arguments)]
    fn predict_sliced(
        &self,
        py: Python<'_>,
        kind: &str,
        value: &Bound<'_, PyAny>,
        height: usize,
        width: usize,
        channels: usize,
        rgb: bool,
        slice: (usize, usize),
        overlap: (f64, f64),
        full_image: bool,
        merge: &str,
        metric: &str,
        threshold: f64,
        class_agnostic: bool,
        max_detections: Option<usize>,
    ) -> PyResult<NativeResult> {
        use mask_rcnn_burn::sliced::{MatchMetric, MergeConfig, MergeKind, SliceConfig};
        let kind_of = match merge {
            "greedy-nmm" | "greedynmm" => MergeKind::GreedyNmm,
            "nmm" => MergeKind::Nmm,
            "nms" => MergeKind::Nms,
            other => return Err(PyValueError::new_err(format!("merge must be 'greedy-nmm', 'nmm' or 'nms', not {other:?}"))),
        };
        let metric = match metric {
            "ios" => MatchMetric::Ios,
            "iou" => MatchMetric::Iou,
            other => return Err(PyValueError::new_err(format!("match_metric must be 'ios' or 'iou', not {other:?}"))),
        };
        let config = SliceConfig {
            width: slice.0,
            height: slice.1,
            overlap_width: overlap.0,
            overlap_height: overlap.1,
            full_image,
            merge: MergeConfig { kind: kind_of, metric, threshold, class_agnostic },
            max_detections,
            ..SliceConfig::default()
        };
        let input = input(kind, value, height, width, channels, rgb)?;
        let det = &self.detector;
        let out = py.detach(move || input.image().and_then(|img| det.predict_sliced(&img, &config))).map_err(to_py)?;
        Ok(NativeResult { detections: out })
    }

    /// Class names in label order.
    #[getter]
    fn classes(&self) -> Vec<String> {
        self.detector.classes().to_vec()
    }

    /// The model config's name.
    #[getter]
    fn config_name(&self) -> String {
        self.detector.config().name.clone()
    }

    /// Images run at once (1 on a GPU).
    #[getter]
    fn streams(&self) -> usize {
        self.detector.streams()
    }

    /// The device's adapter and API.
    #[getter]
    fn device(&self) -> String {
        self.device.clone()
    }

    /// The dataset category id of each label (COCO's for COCO's 80 classes, else 1..N).
    #[getter]
    fn category_ids(&self) -> PyResult<Vec<u32>> {
        let d = &self.detector;
        mask_rcnn_burn::dataset::category_ids(d.classes(), &d.config().dataset, None).map_err(PyValueError::new_err)
    }
}

/// Reads an input's value while the GIL is held (bytes copied out of Python objects).
fn input(kind: &str, value: &Bound<'_, PyAny>, height: usize, width: usize, channels: usize, rgb: bool) -> PyResult<Input> {
    match kind {
        "path" => Ok(Input::Path(value.extract()?)),
        "bytes" => Ok(Input::Encoded(value.extract::<Vec<u8>>()?)),
        "pixels" => {
            let data: Vec<u8> = value.extract()?;
            if height == 0 || width == 0 || data.len() != height * width * channels {
                return Err(PyValueError::new_err(format!("{} bytes are not a {height}x{width}x{channels} image", data.len())));
            }
            Ok(Input::Pixels { data, height, width, channels, rgb })
        }
        other => Err(PyValueError::new_err(format!("unknown input kind `{other}`"))),
    }
}

/// One image's detections, kept in Rust until Python asks for them.
#[pyclass(frozen, module = "mask_rcnn_burn._native")]
struct NativeResult {
    detections: Detections,
}

#[pymethods]
impl NativeResult {
    fn __len__(&self) -> usize {
        self.detections.len()
    }

    /// `(height, width)` of the image.
    #[getter]
    fn image_size(&self) -> (usize, usize) {
        (self.detections.image_height, self.detections.image_width)
    }

    /// Boxes as little-endian f32 bytes, `(N, 4)` row-major.
    fn boxes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let v: Vec<u8> = self.detections.items.iter().flat_map(|d| d.bbox).flat_map(f32::to_le_bytes).collect();
        PyBytes::new(py, &v)
    }

    /// Scores as little-endian f32 bytes.
    fn scores<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let v: Vec<u8> = self.detections.items.iter().flat_map(|d| d.score.to_le_bytes()).collect();
        PyBytes::new(py, &v)
    }

    /// Labels as little-endian i64 bytes.
    fn labels<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let v: Vec<u8> = self.detections.items.iter().flat_map(|d| (d.label as i64).to_le_bytes()).collect();
        PyBytes::new(py, &v)
    }

    /// Class names.
    fn class_names(&self) -> Vec<String> {
        self.detections.items.iter().map(|d| d.class_name.clone()).collect()
    }

    /// Each mask's window `(x0, y0, x1, y1)` and its row-major 0/1 bytes.
    fn mask_windows<'py>(&self, py: Python<'py>) -> Vec<((usize, usize, usize, usize), Bound<'py, PyBytes>)> {
        self.detections.items.iter().map(|d| ((d.mask.x0, d.mask.y0, d.mask.x1, d.mask.y1), PyBytes::new(py, &d.mask.window))).collect()
    }

    /// COCO RLE of each mask: `(counts, height, width)`, built from the windows.
    fn rle(&self, py: Python<'_>) -> Vec<(String, u32, u32)> {
        let items = &self.detections.items;
        py.detach(|| {
            items
                .iter()
                .map(|d| {
                    let r = d.mask.to_coco_rle();
                    (r.counts, r.size[0], r.size[1])
                })
                .collect()
        })
    }

    /// The example binary's COCO results JSON entries for this image, as JSON text (serialised as the binary does).
    fn to_coco_json(&self, image_id: u64, category_ids: Vec<u32>) -> PyResult<String> {
        if let Some(d) = self.detections.items.iter().find(|d| d.label >= category_ids.len()) {
            return Err(PyValueError::new_err(format!("label {} has no category id ({} given)", d.label, category_ids.len())));
        }
        let entries: Vec<CocoResult> = self.detections.to_coco_results(image_id, &category_ids);
        serde_json::to_string(&entries).map_err(|e| PyValueError::new_err(e.to_string()))
    }
}

/// The crate's version.
#[pyfunction]
fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// Decodes a file or encoded bytes as the detector does (`kind`: "path" or "bytes"): `(BGR bytes, height, width)`.
#[pyfunction]
fn decode<'py>(py: Python<'py>, kind: &str, value: &Bound<'py, PyAny>) -> PyResult<(Bound<'py, PyBytes>, usize, usize)> {
    let input = input(kind, value, 0, 0, 3, false)?;
    let img = py.detach(move || input.image()).map_err(to_py)?;
    Ok((PyBytes::new(py, &img.data), img.height, img.width))
}

/// Writes the synthetic weights of a synth-v1 manifest as safetensors (the parity fixtures' weights; tests only).
#[pyfunction]
fn _write_synth_weights(manifest: PathBuf, out: PathBuf) -> PyResult<()> {
    let dict = mask_rcnn_burn::weights::synth::Manifest::from_file(manifest).and_then(|m| m.generate()).map_err(|e| to_py(e.into()))?;
    dict.write_safetensors(out).map_err(|e| to_py(e.into()))
}

/// The adapters `wgpu:N` chooses from: `(N, name, device type, api)`.
#[pyfunction]
fn adapters() -> Vec<(usize, String, String, String)> {
    mask_rcnn_burn::device::adapters().into_iter().map(|a| (a.index, a.name, a.device_type, a.api)).collect()
}

/// COCO evaluation of a results file against an instances file (the binary's, by hotcoco: pycocotools' numbers):
/// `{"bbox": {"stats": {...}, "lines": [...]}, "segm": ...}` as JSON text.
#[pyfunction]
fn evaluate(py: Python<'_>, annotations: PathBuf, results: PathBuf) -> PyResult<String> {
    let eval = py.detach(|| mask_rcnn_burn::eval::evaluate(&annotations, &results)).map_err(|e| to_py(e.into()))?;
    let side = |s: &mask_rcnn_burn::eval::EvalSummary| serde_json::json!({"stats": s.stats, "lines": s.lines});
    Ok(serde_json::json!({"bbox": side(&eval.bbox), "segm": side(&eval.segm)}).to_string())
}

/// The built-in model configs' aliases.
#[pyfunction]
fn models() -> Vec<&'static str> {
    mask_rcnn_burn::ModelConfig::builtin_names()
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // Freed tensor memory is reused rather than returned and faulted in again; the process's huge-page mode is
    // the user's and left alone.
    mask_rcnn_burn::alloc::retain_freed_allocations();
    m.add("MAX_STREAMS", mask_rcnn_burn::MAX_STREAMS)?;
    m.add_class::<NativeDetector>()?;
    m.add_class::<NativeResult>()?;
    m.add_function(wrap_pyfunction!(version, m)?)?;
    m.add_function(wrap_pyfunction!(models, m)?)?;
    m.add_function(wrap_pyfunction!(decode, m)?)?;
    m.add_function(wrap_pyfunction!(adapters, m)?)?;
    m.add_function(wrap_pyfunction!(evaluate, m)?)?;
    m.add_function(wrap_pyfunction!(_write_synth_weights, m)?)?;
    Ok(())
}
