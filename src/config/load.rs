//! Reading configs: the built-in TOML files, files on disk, and `base` chains merged key by key.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::ConfigError;

/// The published configs (mmdetection 3.3's `configs/gn`, `configs/gn+ws`, `configs/scratch`), by file name (without
/// `.toml`), with the short aliases the CLI accepts.
pub(super) const BUILTIN: [(&str, &str, &str); 15] = [
    ("mask-rcnn_r50_fpn_gn-all_2x_coco", "r50-2x", include_str!("../../configs/mask-rcnn_r50_fpn_gn-all_2x_coco.toml")),
    ("mask-rcnn_r50_fpn_gn-all_3x_coco", "r50-3x", include_str!("../../configs/mask-rcnn_r50_fpn_gn-all_3x_coco.toml")),
    ("mask-rcnn_r101_fpn_gn-all_2x_coco", "r101-2x", include_str!("../../configs/mask-rcnn_r101_fpn_gn-all_2x_coco.toml")),
    ("mask-rcnn_r101_fpn_gn-all_3x_coco", "r101-3x", include_str!("../../configs/mask-rcnn_r101_fpn_gn-all_3x_coco.toml")),
    ("mask-rcnn_r50-contrib_fpn_gn-all_2x_coco", "r50c-2x", include_str!("../../configs/mask-rcnn_r50-contrib_fpn_gn-all_2x_coco.toml")),
    ("mask-rcnn_r50-contrib_fpn_gn-all_3x_coco", "r50c-3x", include_str!("../../configs/mask-rcnn_r50-contrib_fpn_gn-all_3x_coco.toml")),
    ("mask-rcnn_r50_fpn_gn-ws-all_2x_coco", "r50-ws-2x", include_str!("../../configs/mask-rcnn_r50_fpn_gn-ws-all_2x_coco.toml")),
    ("mask-rcnn_r50_fpn_gn-ws-all_20-23-24e_coco", "r50-ws-24e", include_str!("../../configs/mask-rcnn_r50_fpn_gn-ws-all_20-23-24e_coco.toml")),
    ("mask-rcnn_r101_fpn_gn-ws-all_2x_coco", "r101-ws-2x", include_str!("../../configs/mask-rcnn_r101_fpn_gn-ws-all_2x_coco.toml")),
    ("mask-rcnn_r101_fpn_gn-ws-all_20-23-24e_coco", "r101-ws-24e", include_str!("../../configs/mask-rcnn_r101_fpn_gn-ws-all_20-23-24e_coco.toml")),
    ("mask-rcnn_x50-32x4d_fpn_gn-ws-all_2x_coco", "x50-ws-2x", include_str!("../../configs/mask-rcnn_x50-32x4d_fpn_gn-ws-all_2x_coco.toml")),
    ("mask-rcnn_x50-32x4d_fpn_gn-ws-all_20-23-24e_coco", "x50-ws-24e", include_str!("../../configs/mask-rcnn_x50-32x4d_fpn_gn-ws-all_20-23-24e_coco.toml")),
    ("mask-rcnn_x101-32x4d_fpn_gn-ws-all_2x_coco", "x101-ws-2x", include_str!("../../configs/mask-rcnn_x101-32x4d_fpn_gn-ws-all_2x_coco.toml")),
    ("mask-rcnn_x101-32x4d_fpn_gn-ws-all_20-23-24e_coco", "x101-ws-24e", include_str!("../../configs/mask-rcnn_x101-32x4d_fpn_gn-ws-all_20-23-24e_coco.toml")),
    ("mask-rcnn_r50-scratch_fpn_gn-all_6x_coco", "r50-scratch-6x", include_str!("../../configs/mask-rcnn_r50-scratch_fpn_gn-all_6x_coco.toml")),
];

pub(super) const MAX_BASE_DEPTH: usize = 8;

pub(super) enum Source {
    Builtin(&'static str),
    File(PathBuf),
}

pub(super) fn load_table(source: Source, depth: usize) -> Result<(toml::Table, String), ConfigError> {
    let (text, origin, dir) = match source {
        Source::Builtin(file) => {
            let (_, _, text) = BUILTIN.iter().find(|(f, _, _)| *f == file).expect("built-in config exists");
            (text.to_string(), format!("{file}.toml (built in)"), None)
        }
        Source::File(path) => {
            let io = |source| ConfigError::Io { path: path.clone(), source };
            let mut bytes = Vec::new();
            // One byte past the cap is enough to refuse it; a huge file (or a device) is never read whole.
            std::fs::File::open(&path).map_err(io)?.take(MAX_CONFIG_BYTES + 1).read_to_end(&mut bytes).map_err(io)?;
            if bytes.len() as u64 > MAX_CONFIG_BYTES {
                return Err(too_large(&path.display().to_string()));
            }
            let text = String::from_utf8(bytes)
                .map_err(|e| io(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("not UTF-8 text: {e}"))))?;
            let dir = path.parent().map(Path::to_path_buf);
            (text, path.display().to_string(), dir)
        }
    };
    let table = parse(&text, &origin)?;
    Ok((resolve_base(table, dir.as_deref(), &origin, depth)?, origin))
}

/// The largest config accepted (the published ones are ~3 KB): read and parsed only below this.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

fn too_large(origin: &str) -> ConfigError {
    ConfigError::Parse { origin: origin.to_string(), message: format!("larger than {MAX_CONFIG_BYTES} bytes, the most a config may be") }
}

pub(super) fn parse(text: &str, origin: &str) -> Result<toml::Table, ConfigError> {
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(too_large(origin));
    }
    text.parse::<toml::Table>().map_err(|e| {
        // toml's Display quotes the offending line under the message: one line instead, with its position.
        let at = e.span().map(|span| {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!(" at line {line}, column {column}")
        });
        ConfigError::Parse { origin: origin.to_string(), message: format!("{}{}", e.message().trim().replace('\n', "; "), at.unwrap_or_default()) }
    })
}

/// Replaces `base = "file.toml"` by the base's tables overridden with this file's keys.
pub(super) fn resolve_base(mut table: toml::Table, dir: Option<&Path>, origin: &str, depth: usize) -> Result<toml::Table, ConfigError> {
    let Some(base) = table.remove("base") else {
        return Ok(table);
    };
    if depth >= MAX_BASE_DEPTH {
        return Err(ConfigError::BaseTooDeep { origin: origin.to_string(), max: MAX_BASE_DEPTH });
    }
    let base = base.as_str().ok_or_else(|| ConfigError::Invalid {
        origin: origin.to_string(),
        field: "base",
        reason: "must be a file name string".to_string(),
    })?;
    let beside = dir.map(|d| d.join(base)).filter(|p| p.is_file());
    let source = match beside {
        Some(path) => Source::File(path),
        None => {
            let stem = base.strip_suffix(".toml").unwrap_or(base);
            let (file, _, _) = BUILTIN.iter().find(|(f, _, _)| *f == stem).ok_or_else(|| ConfigError::Invalid {
                origin: origin.to_string(),
                field: "base",
                reason: format!("`{base}` is neither beside this file nor a built-in config"),
            })?;
            Source::Builtin(file)
        }
    };
    let (mut merged, _) = load_table(source, depth + 1)?;
    merge(&mut merged, table);
    Ok(merged)
}

fn merge(into: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (into.get_mut(&key), value) {
            (Some(toml::Value::Table(a)), toml::Value::Table(b)) => merge(a, b),
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}

