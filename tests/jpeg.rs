//! JPEG decoding against OpenCV 4.11 (libjpeg-turbo 3.0.3) on the corpus of tests/fixtures/jpeg (made by its
//! make_corpus.py in ../shared/oracle's environment): every layout decodes to cv2's bytes exactly, and files
//! cv2.imdecode (mmdetection's loader) rejects are typed errors.

mod common;

use common::fixtures;
use mask_rcnn_burn::BgrImage;
use mask_rcnn_burn::error::ImageError;
use serde::Deserialize;
use sha2::{Digest, Sha256};

#[derive(Deserialize)]
struct Manifest {
    files: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    file: String,
    description: String,
    width: Option<usize>,
    height: Option<usize>,
    /// What mmdetection's loader (`cv2.imdecode(bytes, IMREAD_COLOR)`) returned: "image" or "none".
    imdecode_result: String,
    ref_png: Option<String>,
    bgr_sha256: Option<String>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn corpus_decodes_exactly_as_opencv() {
    let dir = fixtures().join("jpeg");
    let manifest: Manifest = serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let (mut exact, mut rejected) = (0, 0);
    for e in &manifest.files {
        let decoded = BgrImage::open(dir.join(&e.file));
        if e.imdecode_result == "none" {
            match decoded {
                Err(ImageError::Decode { .. } | ImageError::Truncated { .. }) => rejected += 1,
                other => panic!("{} ({}): cv2.imdecode returns None, we gave {other:?}", e.file, e.description),
            }
            continue;
        }
        let ours = decoded.unwrap_or_else(|err| panic!("{} ({}): {err}", e.file, e.description));
        assert_eq!((Some(ours.width), Some(ours.height)), (e.width, e.height), "{}: size", e.file);
        let reference = BgrImage::open(dir.join(e.ref_png.as_ref().expect("a reference PNG"))).unwrap();
        let differ = ours.data.iter().zip(&reference.data).filter(|(a, b)| a != b).count();
        assert_eq!(differ, 0, "{} ({}): {differ} of {} values differ from cv2", e.file, e.description, ours.data.len());
        assert_eq!(Some(hex(&Sha256::digest(&ours.data))), e.bgr_sha256, "{}: sha256 of the BGR bytes", e.file);
        exact += 1;
    }
    println!("JPEG corpus: {exact} files byte-identical to cv2, {rejected} rejected as cv2.imdecode rejects them");
    assert!(exact >= 30 && rejected >= 4, "{exact} exact, {rejected} rejected");
}

/// Any cut of a JPEG, and any single corrupted byte, is a typed error or an image: never a panic.
#[test]
fn damaged_jpegs_never_panic() {
    let bytes = std::fs::read(fixtures().join("jpeg/progressive_420_176x120.jpg")).unwrap();
    let mut outcomes = [0usize; 2];
    for cut in (0..bytes.len()).step_by(37) {
        outcomes[BgrImage::decode(&bytes[..cut], "cut").is_ok() as usize] += 1;
    }
    for pos in (0..bytes.len()).step_by(53) {
        let mut bad = bytes.clone();
        bad[pos] ^= 0x5A;
        outcomes[BgrImage::decode(&bad, "flipped").is_ok() as usize] += 1;
    }
    println!("damaged JPEGs: {} errors, {} images", outcomes[0], outcomes[1]);
    assert!(outcomes[0] > 0);
}
