//! What a dataset run reads: image files named on the command line or found in folders, or the images a COCO
//! instances file lists.

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use crate::error::DatasetError;

/// One image of a run: its COCO image id and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageEntry {
    /// The id written into COCO results.
    pub id: u64,
    /// The file.
    pub path: PathBuf,
}

/// Extensions taken from folders (case-insensitive); files named explicitly are taken whatever their name.
const IMAGE_EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

/// Image files from `inputs`: files as given, folders' image files sorted by path (and their sub-folders' with
/// `recursive`). Ids: a file stem that is a number is its id (COCO's `000000397133.jpg` is image 397133);
/// when any stem is not, or two collide, every image gets its position in the list instead.
pub fn image_files(inputs: &[PathBuf], recursive: bool) -> Result<Vec<ImageEntry>, DatasetError> {
    let mut paths = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let mut found = Vec::new();
            collect_folder(input, recursive, &mut found)?;
            found.sort();
            paths.extend(found);
        } else if input.is_file() {
            paths.push(input.clone());
        } else {
            return Err(DatasetError::NoSuchInput { path: input.clone() });
        }
    }
    let numeric: Option<Vec<u64>> = paths.iter().map(|p| p.file_stem()?.to_str()?.parse().ok()).collect();
    let ids = match numeric {
        Some(ids) if ids.iter().collect::<HashSet<_>>().len() == ids.len() => ids,
        _ => (0..paths.len() as u64).collect(),
    };
    Ok(ids.into_iter().zip(paths).map(|(id, path)| ImageEntry { id, path }).collect())
}

fn collect_folder(dir: &Path, recursive: bool, out: &mut Vec<PathBuf>) -> Result<(), DatasetError> {
    let io = |source| DatasetError::Io { path: dir.to_path_buf(), source };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.is_dir() {
            if recursive {
                collect_folder(&path, recursive, out)?;
            }
        } else if path.extension().and_then(|e| e.to_str()).is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str())) {
            out.push(path);
        }
    }
    Ok(())
}

/// The largest annotations file read (COCO train2017's instances file is 448 MB, LVIS v1's train file ~1.1 GB).
pub const MAX_ANNOTATIONS_BYTES: u64 = 4 << 30;

/// An annotations file's text, read no further than [`MAX_ANNOTATIONS_BYTES`].
fn read_annotations(path: &Path) -> Result<String, DatasetError> {
    use std::io::Read;
    let io = |source| DatasetError::Io { path: path.to_path_buf(), source };
    let mut text = String::new();
    std::fs::File::open(path).map_err(io)?.take(MAX_ANNOTATIONS_BYTES + 1).read_to_string(&mut text).map_err(io)?;
    if text.len() as u64 > MAX_ANNOTATIONS_BYTES {
        return Err(DatasetError::Annotations { path: path.to_path_buf(), message: format!("larger than {MAX_ANNOTATIONS_BYTES} bytes") });
    }
    Ok(text)
}

/// The images of a COCO instances file (`images[].id`, `images[].file_name`), under `images_dir`, in the file's
/// order. The file is checked before any work starts: unreadable, not JSON, duplicate ids, or a `file_name` that
/// would leave `images_dir` (absolute, or with `..`) are errors.
pub fn coco_images(annotations: &Path, images_dir: &Path) -> Result<Vec<ImageEntry>, DatasetError> {
    #[derive(Deserialize)]
    struct Instances {
        images: Vec<CocoImage>,
    }
    #[derive(Deserialize)]
    struct CocoImage {
        id: u64,
        file_name: String,
    }
    let bad = |message: String| DatasetError::Annotations { path: annotations.to_path_buf(), message };
    let parsed: Instances = serde_json::from_str(&read_annotations(annotations)?).map_err(|e| bad(format!("not a COCO instances file: {e}")))?;
    let mut seen = HashSet::new();
    if let Some(dup) = parsed.images.iter().find(|i| !seen.insert(i.id)) {
        return Err(bad(format!("image id {} appears twice", dup.id)));
    }
    let inside = |name: &str| !name.is_empty() && Path::new(name).components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if let Some(i) = parsed.images.iter().find(|i| !inside(&i.file_name)) {
        return Err(bad(format!("image {}'s file_name `{}` leaves the images folder (absolute, or with `..`)", i.id, i.file_name)));
    }
    Ok(parsed.images.into_iter().map(|i| ImageEntry { id: i.id, path: images_dir.join(i.file_name) }).collect())
}

/// One category of a COCO instances file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CocoCategory {
    /// Its id (`category_id` in results).
    pub id: u32,
    /// Its name.
    pub name: String,
}

/// The categories of a COCO instances file.
pub fn coco_categories(annotations: &Path) -> Result<Vec<CocoCategory>, DatasetError> {
    #[derive(Deserialize)]
    struct Instances {
        categories: Vec<CocoCategory>,
    }
    let parsed: Instances = serde_json::from_str(&read_annotations(annotations)?)
        .map_err(|e| DatasetError::Annotations { path: annotations.to_path_buf(), message: format!("not a COCO instances file: {e}") })?;
    Ok(parsed.categories)
}

/// The dataset category id of each label of a model whose classes are `classes`: matched by name to `categories`
/// when given (every class must be one), else the config's ids when the classes are the config's (COCO's 80), else
/// `1..=N`.
pub fn category_ids(classes: &[String], config: &crate::config::DatasetConfig, categories: Option<&[CocoCategory]>) -> Result<Vec<u32>, String> {
    match categories {
        Some(cats) => classes
            .iter()
            .map(|name| cats.iter().find(|c| &c.name == name).map(|c| c.id).ok_or_else(|| format!("class `{name}` is not a category of the annotations")))
            .collect(),
        None if classes == config.classes.as_slice() => Ok(config.category_ids.clone()),
        None => Ok((1..=classes.len() as u32).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_are_sorted_and_numeric_stems_become_ids() {
        let dir = std::env::temp_dir().join(format!("mrb-source-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        for name in ["000000000012.jpg", "000000000003.PNG", "notes.txt", "sub/000000000007.jpeg"] {
            std::fs::write(dir.join(name), b"x").unwrap();
        }
        let flat = image_files(std::slice::from_ref(&dir), false).unwrap();
        assert_eq!(flat.iter().map(|e| e.id).collect::<Vec<_>>(), vec![3, 12]);
        let deep = image_files(std::slice::from_ref(&dir), true).unwrap();
        assert_eq!(deep.len(), 3);
        std::fs::write(dir.join("photo.jpg"), b"x").unwrap();
        let mixed = image_files(std::slice::from_ref(&dir), false).unwrap();
        assert_eq!(mixed.iter().map(|e| e.id).collect::<Vec<_>>(), vec![0, 1, 2], "a non-numeric stem: positions");
        assert!(matches!(image_files(&[dir.join("absent")], false), Err(DatasetError::NoSuchInput { .. })));
        std::fs::remove_dir_all(dir).ok();
    }
}
