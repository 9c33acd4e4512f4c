//! Typed errors: every bad input says what is wrong and where, never a panic.

use std::path::PathBuf;

/// Any error of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The model config.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The input image.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The weights file.
    #[error(transparent)]
    Weights(#[from] WeightsError),
    /// The dataset's inputs or annotations.
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    /// An argument outside what the call accepts (a device name, a batch of mixed shapes, an out-of-range
    /// threshold): the caller's mistake, reported before any work.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A GPU device was asked for where wgpu finds no Vulkan, Metal or DX12 adapter.
    #[error("--device {requested}: wgpu finds no Vulkan, Metal or DX12 adapter (OpenGL is not supported; install a Vulkan driver, e.g. mesa-vulkan-drivers, or use --device cpu)")]
    NoGpu {
        /// The device asked for.
        requested: String,
    },
    /// A device this crate cannot run on.
    #[error("device {device} is not supported: {reason}")]
    UnsupportedDevice {
        /// The device.
        device: String,
        /// Why.
        reason: String,
    },
    /// The device failed while running the model (device lost, out of memory, a failed read-back).
    #[error("device failure during {stage}: {source}")]
    Device {
        /// The pipeline stage.
        stage: &'static str,
        /// The backend's own error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Reading or writing a file that is neither an image, weights, config nor annotations (an output).
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A broken invariant inside the pipeline: a bug of this crate, never the input's fault.
    #[error("internal error in {stage}: {message}")]
    Internal {
        /// The pipeline stage.
        stage: &'static str,
        /// What went wrong.
        message: String,
    },
}

/// What kind of failure an [`Error`] is, for callers that branch on it (the Python binding maps each to an
/// exception class).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// [`Error::Config`].
    Config,
    /// [`Error::Image`].
    Image,
    /// [`Error::Weights`].
    Weights,
    /// [`Error::Dataset`].
    Dataset,
    /// [`Error::InvalidArgument`].
    InvalidArgument,
    /// [`Error::NoGpu`], [`Error::UnsupportedDevice`], [`Error::Device`].
    Device,
    /// [`Error::Io`].
    Io,
    /// [`Error::Internal`].
    Internal,
}

/// A model configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file cannot be read.
    #[error("cannot read config {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Not TOML, or not the shape of a model config.
    #[error("config {origin} is not valid TOML for a model config: {message}")]
    Parse {
        /// What was read (a path, or a name for in-memory data).
        origin: String,
        /// What went wrong.
        message: String,
    },
    /// A value no published model can have.
    #[error("config {origin}: `{field}` {reason}")]
    Invalid {
        /// What was read (a path, or a name for in-memory data).
        origin: String,
        /// The offending key.
        field: &'static str,
        /// Why it is wrong.
        reason: String,
    },
    /// No built-in config has this name.
    #[error("unknown model config `{name}`; known: {known}")]
    UnknownName {
        /// The name asked for.
        name: String,
        /// The names that exist.
        known: String,
    },
    /// `base` files chain further than the limit (likely a cycle).
    #[error("config {origin}: `base` chain is longer than {max} files (a cycle?)")]
    BaseTooDeep {
        /// What was read (a path, or a name for in-memory data).
        origin: String,
        /// The limit.
        max: usize,
    },
}

/// An image that cannot be decoded into pixels.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The image file cannot be read.
    #[error("cannot read image {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file has no bytes.
    #[error("image {origin} is empty (0 bytes)")]
    EmptyFile {
        /// What was read (a path, or a name for in-memory data).
        origin: String,
    },
    /// The bytes are not a decodable PNG or JPEG.
    #[error("image {origin} cannot be decoded: {message}")]
    Decode {
        /// What was read (a path, or a name for in-memory data).
        origin: String,
        /// What went wrong.
        message: String,
    },
    /// The header declares a zero-sized image.
    #[error("image {origin} has no pixels ({width}x{height})")]
    NoPixels {
        /// What was read (a path, or a name for in-memory data).
        origin: String,
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
    },
    /// A JPEG that ends before its EOI marker: mmdetection's loader (`cv2.imdecode`) rejects it too.
    #[error("image {origin} is truncated (the JPEG data end before its EOI marker)")]
    Truncated {
        /// What was read (a path, or a name for in-memory data).
        origin: String,
    },
    /// The header claims more pixels than the decoder's limit allows (checked before allocating).
    #[error("image {origin} is {width}x{height} pixels, over the limit of {max_pixels} pixels")]
    TooLarge {
        /// What was read (a path, or a name for in-memory data).
        origin: String,
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// The limit, in pixels.
        max_pixels: u64,
    },
    /// A file larger than any image within the limits can be (read no further than the limit).
    #[error("image {origin} is larger than {max_bytes} bytes, more than any image within the pixel limit can take")]
    FileTooLarge {
        /// The file.
        origin: String,
        /// The limit, in bytes.
        max_bytes: u64,
    },
    /// A pixel buffer whose length does not match its size.
    #[error("image buffer of {len} bytes does not hold {height}x{width}x3 pixels")]
    BadBuffer {
        /// Bytes given.
        len: usize,
        /// Height in pixels.
        height: usize,
        /// Width in pixels.
        width: usize,
    },
}

/// Inputs of a dataset run that cannot be used (checked before any work starts).
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// An input path that is neither a file nor a folder.
    #[error("input {path} is neither a file nor a folder")]
    NoSuchInput {
        /// The path given.
        path: PathBuf,
    },
    /// A folder or annotations file that cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An annotations file that is not a usable COCO instances file.
    #[error("annotations {path}: {message}")]
    Annotations {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
}

/// A weights file that does not fit the model.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// The weights file cannot be read.
    #[error("cannot read weights {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Truncated, corrupt or not a safetensors file at all.
    #[error("weights {origin} are not a readable safetensors file: {message}")]
    Corrupt {
        /// What was read (a path, or a name for in-memory data).
        origin: String,
        /// What went wrong.
        message: String,
    },
    /// A tensor of a non-float dtype.
    #[error("weights {origin}: tensor `{key}` has dtype {dtype}; only F32, F16, BF16 and F64 are accepted")]
    Dtype {
        /// What was read (a path, or a name for in-memory data).
        origin: String,
        /// The tensor's key.
        key: String,
        /// Its dtype.
        dtype: String,
    },
    /// Tensors the model needs are absent.
    #[error("weights {origin}: {count} tensor(s) the model needs are missing, e.g. {}{hint}", preview(.keys))]
    Missing {
        /// What was read (a path, or a name for in-memory data).
        origin: String,
        /// How many.
        count: usize,
        /// Their keys.
        keys: Vec<String>,
        /// A likely cause, when one is known.
        hint: String,
    },
    /// Tensors the model does not have.
    #[error("weights {origin}: {count} tensor(s) the model does not have, e.g. {}{hint}", preview(.keys))]
    Unexpected {
        /// What was read (a path, or a name for in-memory data).
        origin: String,
        /// How many.
        count: usize,
        /// Their keys.
        keys: Vec<String>,
        /// A likely cause, when one is known.
        hint: String,
    },
    /// A tensor of the wrong shape.
    #[error("weights {origin}: tensor `{key}` has shape {found:?}, the model needs {expected:?}")]
    Shape {
        /// What was read (a path, or a name for in-memory data).
        origin: String,
        /// The tensor's key.
        key: String,
        /// What was expected.
        expected: Vec<usize>,
        /// What the file holds.
        found: Vec<usize>,
    },
    /// A file larger than the model's tensors can take, or tensors declaring more bytes than the file holds:
    /// refused before the data is read.
    #[error("weights {origin}: {what} ({size} bytes; at most {max} fit)")]
    TooLarge {
        /// What was read (a path, or a name for in-memory data).
        origin: String,
        /// What is too large.
        what: String,
        /// Its size in bytes.
        size: u64,
        /// The bound it broke.
        max: u64,
    },
    /// A tensor holding NaN or infinity.
    #[error("weights {origin}: tensor `{key}` holds non-finite values")]
    NonFinite {
        /// What was read (a path, or a name for in-memory data).
        origin: String,
        /// The tensor's key.
        key: String,
    },
    /// The checkpoint could not be downloaded.
    #[error("cannot download {url}: {message}")]
    Download {
        /// The address.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// A downloaded file whose sha256 is not the published one.
    #[error("{origin}: sha256 {found} does not start with the published {expected}; the file was deleted")]
    HashMismatch {
        /// What was read (a path, or a name for in-memory data).
        origin: String,
        /// What was expected.
        expected: String,
        /// What the file holds.
        found: String,
    },
    /// A `.pth` checkpoint that cannot be read.
    #[error("checkpoint {origin} cannot be converted: {message}")]
    Checkpoint {
        /// What was read (a path, or a name for in-memory data).
        origin: String,
        /// What went wrong.
        message: String,
    },
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
    /// A device failure during `stage`, keeping the backend's error (or a message) as the source.
    pub fn device(stage: &'static str, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Device { stage, source: source.into() }
    }

    /// An invalid argument, described by `message`.
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::InvalidArgument(message.into())
    }

    /// A broken invariant in `stage` (a bug).
    pub fn internal(stage: &'static str, message: impl Into<String>) -> Self {
        Self::Internal { stage, message: message.into() }
    }

    /// Which kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Config(_) => ErrorKind::Config,
            Self::Image(_) => ErrorKind::Image,
            Self::Weights(_) => ErrorKind::Weights,
            Self::Dataset(_) => ErrorKind::Dataset,
            Self::InvalidArgument(_) => ErrorKind::InvalidArgument,
            Self::NoGpu { .. } | Self::UnsupportedDevice { .. } | Self::Device { .. } => ErrorKind::Device,
            Self::Io { .. } => ErrorKind::Io,
            Self::Internal { .. } => ErrorKind::Internal,
        }
    }

    /// The message and every cause after it, on one line (what the CLI prints).
    pub fn one_line(&self) -> String {
        let mut line = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            let text = cause.to_string();
            if !line.ends_with(&text) {
                line.push_str(": ");
                line.push_str(&text);
            }
            source = cause.source();
        }
        line.replace('\n', " ")
    }
}

/// This crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
