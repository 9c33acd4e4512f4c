//! What a dataset run reads: image files named on the command line or found in folders, or the images a COCO
//! instances file lists.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

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

/// The images of a COCO instances file (`images[].id`, `images[].file_name`), under `images_dir`, in the file's
/// order. The file is checked before any work starts: unreadable, not JSON, or duplicate ids are errors.
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
    let text = std::fs::read_to_string(annotations).map_err(|source| DatasetError::Io { path: annotations.to_path_buf(), source })?;
    let parsed: Instances = serde_json::from_str(&text).map_err(|e| DatasetError::Annotations {
        path: annotations.to_path_buf(),
        message: format!("not a COCO instances file: {e}"),
    })?;
    let mut seen = HashSet::new();
    if let Some(dup) = parsed.images.iter().find(|i| !seen.insert(i.id)) {
        return Err(DatasetError::Annotations { path: annotations.to_path_buf(), message: format!("image id {} appears twice", dup.id) });
    }
    Ok(parsed.images.into_iter().map(|i| ImageEntry { id: i.id, path: images_dir.join(i.file_name) }).collect())
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
