//! From what a user has (nothing, a `.pth`, a `.safetensors`) to the safetensors file the model loads.

use std::path::{Path, PathBuf};

use super::checkpoint::Checkpoint;
use super::state_dict::StateDict;
use crate::config::ModelConfig;
use crate::error::WeightsError;

/// The cache directory: `$MASK_RCNN_BURN_CACHE`, else `$XDG_CACHE_HOME/mask-rcnn-burn`, else `~/.cache/mask-rcnn-burn`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MASK_RCNN_BURN_CACHE") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("mask-rcnn-burn")
}

/// Converts an mmdetection `.pth` checkpoint for `config`'s architecture to safetensors with the same keys and its
/// class names (written atomically): its size, keys and shapes are checked against the model before any tensor is
/// read.
pub fn convert_pth(pth: &Path, out: &Path, config: &ModelConfig) -> Result<StateDict, WeightsError> {
    let dict = Checkpoint::open(pth, config)?.into_state_dict(config)?;
    dict.write_safetensors(out)?;
    Ok(dict)
}

/// The safetensors file to load for `config`:
/// - a `.safetensors` path is used as is;
/// - a `.pth` path is converted once into the cache (`<cache>/converted/<stem>.safetensors`) and reused while
///   it is newer than the `.pth`;
/// - no path downloads the config's official checkpoint into the cache (sha256-checked), converts it once, and
///   reuses the converted file after.
pub fn resolve_weights(config: &ModelConfig, weights: Option<&Path>, progress: bool) -> Result<PathBuf, WeightsError> {
    resolve_weights_in(&cache_dir(), config, weights, progress)
}

/// [`resolve_weights`] with an explicit cache directory.
pub fn resolve_weights_in(cache: &Path, config: &ModelConfig, weights: Option<&Path>, progress: bool) -> Result<PathBuf, WeightsError> {
    let converted_of = |pth: &Path| -> PathBuf {
        let stem = pth.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "checkpoint".into());
        // Named by the file's absolute path too: two runs' `epoch_24.pth` are two checkpoints.
        let mut hasher = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(&std::path::absolute(pth).unwrap_or_else(|_| pth.to_path_buf()), &mut hasher);
        cache.join("converted").join(format!("{stem}-{:016x}.safetensors", std::hash::Hasher::finish(&hasher)))
    };
    let pth = match weights {
        Some(p) if p.extension().is_some_and(|e| e == "pth" || e == "pt") => p.to_path_buf(),
        Some(p) => return Ok(p.to_path_buf()),
        None => {
            let dest = cache.join(&config.checkpoint.file);
            let out = converted_of(&dest);
            if out.is_file() {
                return Ok(out);
            }
            download(config, &dest, progress)?;
            dest
        }
    };
    let out = converted_of(&pth);
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if out.is_file() && modified(&out) >= modified(&pth) {
        return Ok(out);
    }
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).map_err(|source| WeightsError::Io { path: dir.to_path_buf(), source })?;
    }
    convert_pth(&pth, &out, config)?;
    Ok(out)
}

#[cfg(feature = "download")]
fn download(config: &ModelConfig, dest: &Path, progress: bool) -> Result<(), WeightsError> {
    let prefix = config.checkpoint_hash_prefix().unwrap_or_default();
    super::download::fetch(&config.checkpoint.url, dest, prefix, progress)
}

#[cfg(not(feature = "download"))]
fn download(config: &ModelConfig, _dest: &Path, _progress: bool) -> Result<(), WeightsError> {
    Err(WeightsError::Download {
        url: config.checkpoint.url.clone(),
        message: "this build has no `download` feature: give a weights file".to_string(),
    })
}
