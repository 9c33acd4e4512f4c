//! Every GN Mask R-CNN checkpoint users have, against mmdetection: the gn+ws models (weight standardisation),
//! ResNeXt, the scratch-trained R-50, and a fine-tuned R-101 with its own five named classes loaded from the
//! checkpoint mmengine's training loop wrote (meta, message hub, optimizer, schedulers beside the weights); a legacy
//! mmdetection 2.x checkpoint of a DataParallel model; and small files written by the real `torch.save`.
//! Fixtures: tests/fixtures/make_checkpoint_cases.py and checkpoints/README.md.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use burn::tensor::Device;
use common::*;
use mask_rcnn_burn::weights::StateDict;
use mask_rcnn_burn::weights::synth::Manifest;
use mask_rcnn_burn::{Detector, ModelConfig};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// End to end on flex against mmdetection's 100 detections (label, box IoU >= 0.98, |score diff| <= 2e-3): at
/// least `min_matched` matched (what was measured: a lost pair fails the test), mask intersection/union at least
/// `min_mask` over the pairs (the measured figure in each test's comment, less a margin of about half its shortfall).
fn end_to_end(case: &str, det: Detector, min_matched: usize, min_mask: f64) {
    let (matched, mask) = check_end_to_end(case, det, 0.98, 2e-3);
    assert!(matched >= min_matched, "{case}: only {matched} of 100 detections matched");
    assert!(mask >= min_mask, "{case}: mask intersection/union {mask}");
}

/// Measured: 100/100, mask I/U 0.99839. (Weight standardisation is folded in f64 where mmcv computes its statistics
/// in f32 at every forward: the gn+ws cases sit a little further from mmdetection than the GN ones.)
#[test]
fn r50_gn_ws_end_to_end() {
    end_to_end("r50_gnws_hopper_320", case_detector("r50_gnws_hopper_320", Device::flex()), 100, 0.997);
}

/// Measured: 100/100, mask I/U 0.99949.
#[test]
fn x50_32x4d_gn_ws_end_to_end() {
    end_to_end("x50_gnws_hopper_320", case_detector("x50_gnws_hopper_320", Device::flex()), 100, 0.998);
}

/// Measured: 100/100, mask I/U 0.99703 (99/100, 0.99742 when its grouped convs ran as Burn's, before the host
/// im2col path took them).
#[test]
fn x101_32x4d_gn_ws_end_to_end() {
    end_to_end("x101_gnws_coffee_320", case_detector("x101_gnws_coffee_320", Device::flex()), 100, 0.9955);
}

/// Measured: 100/100, mask I/U 0.99996.
#[test]
fn r50_scratch_end_to_end() {
    end_to_end("r50_scratch_coffee_320", case_detector("r50_scratch_coffee_320", Device::flex()), 100, 0.9995);
}

#[derive(Deserialize)]
struct Listing {
    size: u64,
    sha256: String,
    cuts: Vec<Cut>,
}

#[derive(Deserialize)]
struct Cut {
    offset: u64,
    length: u64,
    key: String,
}

/// A checkpoint torch.save wrote, re-created byte for byte from its committed skeleton and the synth weights of
/// `manifest` (tests/fixtures/checkpoints/skeleton.py), its sha256 checked against the original's; made once per
/// test process.
fn reassembled(name: &str, manifest: &str) -> PathBuf {
    static MADE: Mutex<Vec<(String, PathBuf)>> = Mutex::new(Vec::new());
    let mut made = MADE.lock().unwrap();
    if let Some((_, p)) = made.iter().find(|(n, _)| n == name) {
        return p.clone();
    }
    let dir = fixtures().join("checkpoints");
    let listing: Listing = serde_json::from_str(&std::fs::read_to_string(dir.join(format!("{name}.skeleton.json"))).unwrap()).unwrap();
    let skeleton = std::fs::read(dir.join(format!("{name}.skeleton"))).unwrap();
    let tensors = Manifest::from_file(fixtures().join(manifest)).unwrap().generate().unwrap().tensors;
    let mut out = Vec::with_capacity(listing.size as usize);
    let mut taken = 0usize;
    for cut in &listing.cuts {
        let keep = cut.offset as usize - out.len();
        out.extend_from_slice(&skeleton[taken..taken + keep]);
        taken += keep;
        let values = &tensors[&cut.key].data;
        assert_eq!(values.len() * 4, cut.length as usize, "{}", cut.key);
        out.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    }
    out.extend_from_slice(&skeleton[taken..]);
    let sha: String = Sha256::digest(&out).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!((out.len() as u64, sha.as_str()), (listing.size, listing.sha256.as_str()), "{name} is not the file torch.save wrote");
    // Named by content (checked above), so runs share one copy instead of leaving one each behind.
    let path = std::env::temp_dir().join(format!("mask-rcnn-burn-{}-{name}", &sha[..16]));
    if std::fs::metadata(&path).ok().map(|m| m.len()) != Some(listing.size) {
        let partial = path.with_extension(format!("part{}", std::process::id()));
        std::fs::write(&partial, out).unwrap();
        std::fs::rename(&partial, &path).unwrap();
    }
    made.push((name.to_string(), path.clone()));
    path
}

const FT5_CLASSES: [&str; 5] = ["cup", "saucer", "spoon", "latte art", "table"];

/// The fine-tuned 5-class R-101 from the `epoch_12.pth` mmengine's Runner wrote: the heads sized from the file,
/// the class names from its `meta.dataset_meta`, the message hub, optimizer and schedulers skipped; then
/// mmdetection's detections of the same weights.
#[test]
fn fine_tuned_r101_from_an_mmengine_training_checkpoint() {
    let pth = reassembled("r101_ft5_mmengine.pth", "r101_ft5_seed8.manifest.json");
    let det = Detector::from_checkpoint(case_config("r101_ft5_coffee_320"), &pth, Device::flex()).unwrap();
    assert_eq!(det.classes(), FT5_CLASSES);
    assert_eq!(det.model().roi_head.bbox_head.num_classes(), 5);
    let dets = det.predict(&case_image("r101_ft5_coffee_320")).unwrap();
    assert!(dets.items.iter().all(|d| d.class_name == FT5_CLASSES[d.label]), "class names follow the labels");
    // Measured: 100/100, mask I/U 0.99998.
    end_to_end("r101_ft5_coffee_320", det, 100, 0.9995);
}

/// An mmdetection 2.x checkpoint in torch's legacy format, of a DataParallel model (`module.` keys), with an
/// optimizer entry and `meta.CLASSES`: the same weights and classes as the mmengine file.
#[test]
fn a_legacy_dataparallel_checkpoint_loads_the_same_weights() {
    let modern = StateDict::from_pth(reassembled("r101_ft5_mmengine.pth", "r101_ft5_seed8.manifest.json")).unwrap();
    let legacy = StateDict::from_pth(reassembled("r101_ft5_legacy_dp.pth", "r101_ft5_seed8.manifest.json")).unwrap();
    assert_eq!(legacy.tensors.len(), 376);
    assert!(legacy.tensors == modern.tensors, "same keys (module. stripped) and values");
    assert_eq!(legacy.classes.as_deref(), Some(&FT5_CLASSES.map(String::from)[..]));
    assert_eq!(modern.classes, legacy.classes);
}

/// A checkpoint whose heads disagree on the number of classes is refused, naming the three tensors.
#[test]
fn heads_that_disagree_on_the_classes_are_refused() {
    let config = ModelConfig::named("r101-2x").unwrap();
    let mut dict = Manifest::from_file(fixtures().join("r101_ft5_seed8.manifest.json")).unwrap().generate().unwrap();
    let logits = dict.tensors.get_mut("roi_head.mask_head.conv_logits.weight").unwrap();
    logits.shape[0] = 4;
    logits.data = logits.data[..4 * 256].to_vec().into();
    let e = Detector::from_state_dict(config, dict, Device::flex()).err().expect("refused");
    let text = e.to_string();
    assert!(text.contains("disagree on the number of classes") && text.contains("conv_logits"), "{text}");
}

#[derive(Deserialize)]
struct Expected {
    shape: Vec<usize>,
    values: Vec<f64>,
}

/// Small files written by the real `torch.save` (zip and legacy), one of them by mmengine's `save_checkpoint`
/// with a message hub whose pickle names non-tensor classes: every tensor read with its values (f16 and f64
/// widened or narrowed to f32, views through their strides), `module.` stripped, class names from `meta`.
#[test]
fn small_torch_saved_files_read_exactly() {
    let dir = fixtures().join("checkpoints");
    let expected: std::collections::BTreeMap<String, std::collections::BTreeMap<String, Expected>> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("tiny_expected.json")).unwrap()).unwrap();
    for (file, tensors) in &expected {
        let dict = StateDict::from_pth(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(dict.tensors.len(), tensors.len(), "{file}");
        for (path, want) in tensors {
            let key = path.rsplit('/').next().unwrap().trim_start_matches("module.");
            let got = &dict.tensors[key];
            assert_eq!(got.shape, want.shape, "{file} {key}");
            let want: Vec<f32> = want.values.iter().map(|v| *v as f32).collect();
            assert_eq!(&got.data[..], &want[..], "{file} {key}");
        }
    }
    let classes = |f: &str| StateDict::from_pth(dir.join(f)).unwrap().classes;
    assert_eq!(classes("tiny_checkpoint_legacy.pth"), Some(vec!["cup".to_string(), "saucer".to_string()]));
    assert_eq!(classes("tiny_message_hub.pth"), Some(vec!["cup".to_string(), "saucer".to_string()]));
    assert_eq!(classes("tiny_state_dict_zip.pth"), None);
    assert!(Path::new(&dir.join("tiny_views.pth")).is_file());
}
