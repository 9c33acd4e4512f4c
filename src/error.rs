//! Typed errors: every bad input says what is wrong and where, never a panic.

use std::path::PathBuf;

/// Any error of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Weights(#[from] WeightsError),
    /// A GPU device was asked for where wgpu finds no Vulkan, Metal or DX12 adapter.
    #[error("--device {requested}: wgpu finds no Vulkan, Metal or DX12 adapter (OpenGL is not supported; install a Vulkan driver, e.g. mesa-vulkan-drivers, or use --device flex)")]
    NoGpu { requested: &'static str },
    /// The backend failed while running the model (device lost, out of memory...), or a stage's output was
    /// not what the next stage needs.
    #[error("backend error during {stage}: {source}")]
    Backend {
        /// The pipeline stage.
        stage: &'static str,
        /// The backend's own error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// A model configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config {origin} is not valid TOML for a model config: {message}")]
    Parse { origin: String, message: String },
    #[error("config {origin}: `{field}` {reason}")]
    Invalid {
        origin: String,
        field: &'static str,
        reason: String,
    },
    #[error("unknown model config `{name}`; known: {known}")]
    UnknownName { name: String, known: String },
    #[error("config {origin}: `base` chain is longer than {max} files (a cycle?)")]
    BaseTooDeep { origin: String, max: usize },
}

/// An image that cannot be decoded into pixels.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("cannot read image {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("image {origin} is empty (0 bytes)")]
    EmptyFile { origin: String },
    #[error("image {origin} cannot be decoded: {message}")]
    Decode { origin: String, message: String },
    #[error("image {origin} has no pixels ({width}x{height})")]
    NoPixels {
        origin: String,
        width: u32,
        height: u32,
    },
    /// A JPEG that ends before its EOI marker: mmdetection's loader (`cv2.imdecode`) rejects it too.
    #[error("image {origin} is truncated (the JPEG data end before its EOI marker)")]
    Truncated { origin: String },
    /// The header claims more pixels than the decoder's limit allows (checked before allocating).
    #[error("image {origin} is {width}x{height} pixels, over the limit of {max_pixels} pixels")]
    TooLarge {
        origin: String,
        width: u32,
        height: u32,
        max_pixels: u64,
    },
    #[error("image buffer of {len} bytes does not hold {height}x{width}x3 pixels")]
    BadBuffer { len: usize, height: usize, width: usize },
}

/// A weights file that does not fit the model.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("cannot read weights {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Truncated, corrupt or not a safetensors file at all.
    #[error("weights {origin} are not a readable safetensors file: {message}")]
    Corrupt { origin: String, message: String },
    #[error("weights {origin}: tensor `{key}` has dtype {dtype}; only F32, F16, BF16 and F64 are accepted")]
    Dtype {
        origin: String,
        key: String,
        dtype: String,
    },
    #[error("weights {origin}: {count} tensor(s) the model needs are missing, e.g. {}{hint}", preview(.keys))]
    Missing {
        origin: String,
        count: usize,
        keys: Vec<String>,
        hint: String,
    },
    #[error("weights {origin}: {count} tensor(s) the model does not have, e.g. {}{hint}", preview(.keys))]
    Unexpected {
        origin: String,
        count: usize,
        keys: Vec<String>,
        hint: String,
    },
    #[error("weights {origin}: tensor `{key}` has shape {found:?}, the model needs {expected:?}")]
    Shape {
        origin: String,
        key: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("weights {origin}: tensor `{key}` holds non-finite values")]
    NonFinite { origin: String, key: String },
    #[error("cannot download {url}: {message}")]
    Download { url: String, message: String },
    #[error("{origin}: sha256 {found} does not start with the published {expected}; the file was deleted")]
    HashMismatch { origin: String, expected: String, found: String },
    #[error("checkpoint {origin} cannot be converted: {message}")]
    Checkpoint { origin: String, message: String },
}

fn preview(keys: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut s = keys
        .iter()
        .take(SHOWN)
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if keys.len() > SHOWN {
        s.push_str(&format!(" and {} more", keys.len() - SHOWN));
    }
    s
}

impl Error {
    /// A backend failure during `stage`, keeping the backend's error (or a message) as the source.
    pub fn backend(stage: &'static str, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Backend { stage, source: source.into() }
    }
}

/// This crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
