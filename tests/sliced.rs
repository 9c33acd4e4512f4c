//! Sliced inference against SAHI itself (sahi 0.11.35 with mmdetection's model: tests/fixtures/sahi_hopper_coffee,
//! made by tests/fixtures/make_sahi_case.py; docs/SAHI.md): the same tiles of a 1600x1200 image made from the
//! fixture photos, SAHI's merging reproduced exactly on mmdetection's own per-tile detections and on 9 small lists
//! built to hit its corner cases, and the whole sliced prediction matched against SAHI's.

mod common;

use burn::tensor::Device;
use common::*;
use mask_rcnn_burn::eval::{DetRef, match_detections};
use mask_rcnn_burn::sliced::{MatchMetric, MergeConfig, MergeKind, SliceConfig, merge, slice_boxes};
use mask_rcnn_burn::{BgrImage, Detection, Mask};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn load(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("sahi_hopper_coffee").join(name)).unwrap()).unwrap()
}

/// make_sahi_case.py's `make_image`: a 1600x1200 canvas of BGR (40, 90, 140) with, in this order, hopper at (40, 30),
/// coffee mirrored left-right at (600, 90), coffee at (60, 640), hopper rotated 180 degrees at (900, 600).
fn canvas() -> BgrImage {
    let open = |name: &str| BgrImage::open(fixtures().join("images").join(name)).unwrap();
    let (hopper, coffee) = (open("hopper_640x480.png"), open("coffee_600x400.png"));
    let (w, h) = (1600, 1200);
    let mut data: Vec<u8> = [40u8, 90, 140].repeat(w * h);
    let mut paste = |img: &BgrImage, x0: usize, y0: usize, flip_x: bool, flip_y: bool| {
        for y in 0..img.height {
            for x in 0..img.width {
                let (sx, sy) = (if flip_x { img.width - 1 - x } else { x }, if flip_y { img.height - 1 - y } else { y });
                let src = (sy * img.width + sx) * 3;
                data[((y0 + y) * w + x0 + x) * 3..][..3].copy_from_slice(&img.data[src..src + 3]);
            }
        }
    };
    paste(&hopper, 40, 30, false, false);
    paste(&coffee, 600, 90, true, false);
    paste(&coffee, 60, 640, false, false);
    paste(&hopper, 900, 600, true, true);
    BgrImage::from_bgr(w, h, data).unwrap()
}

#[test]
fn the_image_and_its_tiles_are_sahis() {
    let slices = load("slices.json");
    let img = canvas();
    let sha: String = Sha256::digest(&img.data).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(sha, slices["image_sha256_bgr"].as_str().unwrap(), "the canvas is the one SAHI was given");
    let want: Vec<[usize; 4]> = serde_json::from_value(slices["slices"].clone()).unwrap();
    assert_eq!(slice_boxes(1600, 1200, 512, 512, 0.2, 0.2), want);
}

/// A detection with an empty mask (merging boxes only), as SAHI's box-only predictions are.
fn det(bbox: [f32; 4], score: f32, label: usize, width: usize, height: usize) -> Detection {
    let mask = Mask { image_width: width, image_height: height, x0: 0, y0: 0, x1: 0, y1: 0, window: Vec::new() };
    Detection { bbox, score, label, class_name: format!("class_{label}"), mask }
}

fn close(a: &[f32], b: &[f64]) -> bool {
    a.iter().zip(b).all(|(x, y)| (*x as f64 - y).abs() <= 1e-4 * y.abs().max(1.0))
}

/// SAHI's own GREEDYNMM / IOS / 0.5 / per-class merge of mmdetection's 1300 detections of the 12 tiles and the whole
/// image (boxes only: SAHI replaces a mask model's boxes by its polygons' bounds, which this crate does not; see
/// docs/SAHI.md), reproduced exactly: the same 403 detections in the same order, boxes within f32 rounding.
#[test]
fn merging_mmdetections_tiles_gives_sahis_detections() {
    let tiles = load("tiles.json");
    let mut input = Vec::new();
    for tile in tiles["tiles"].as_array().unwrap() {
        let (dx, dy) = (tile["shift"][0].as_f64().unwrap() as f32, tile["shift"][1].as_f64().unwrap() as f32);
        for d in tile["detections"].as_array().unwrap() {
            let v = |i: usize| d[i].as_f64().unwrap();
            input.push(det([v(0) as f32 + dx, v(1) as f32 + dy, v(2) as f32 + dx, v(3) as f32 + dy], v(4) as f32, v(5) as usize, 1600, 1200));
        }
    }
    let merged = load("merged.json");
    let want = merged["boxes_only"]["output"].as_array().unwrap();
    assert_eq!(input.len(), merged["boxes_only"]["input_count"].as_u64().unwrap() as usize);
    let ours = merge(input, &MergeConfig::default());
    assert_eq!(ours.len(), want.len(), "SAHI keeps {} detections", want.len());
    for (i, (o, w)) in ours.iter().zip(want).enumerate() {
        let w: Vec<f64> = w.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        assert!(close(&o.bbox, &w[..4]) && o.score == w[4] as f32 && o.label == w[5] as usize, "output {i}: ours {:?} {} {}, SAHI's {w:?}", o.bbox, o.score, o.label);
    }
    println!("{} tile detections merged to SAHI's {} exactly", merged["boxes_only"]["input_count"], want.len());
}

/// SAHI's GREEDYNMM, NMM and NMS (IOS and IOU, per class and across classes, several thresholds) on small lists that
/// hit its corner cases: chains, classes, tied scores, overlaps exactly at the threshold, candidate order. The
/// `masks` case is left out: SAHI unites masks as polygons and takes their bounds as the box, this crate unites pixels.
#[test]
fn merging_reproduces_sahi_on_its_corner_cases() {
    let cases = load("merge_cases.json");
    let mut checked = 0;
    for case in cases["cases"].as_array().unwrap().iter().filter(|c| c["name"] != "masks") {
        let predictions: Vec<Detection> = case["predictions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let b: Vec<f32> = p[0].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
                det([b[0], b[1], b[2], b[3]], p[1].as_f64().unwrap() as f32, p[2].as_u64().unwrap() as usize, 1000, 1000)
            })
            .collect();
        for r in case["results"].as_array().unwrap() {
            let kind = match r["postprocess"].as_str().unwrap() {
                "GREEDYNMM" => MergeKind::GreedyNmm,
                "NMM" => MergeKind::Nmm,
                _ => MergeKind::Nms,
            };
            let metric = if r["match_metric"] == "IOS" { MatchMetric::Ios } else { MatchMetric::Iou };
            let config = MergeConfig { kind, metric, threshold: r["match_threshold"].as_f64().unwrap(), class_agnostic: r["class_agnostic"].as_bool().unwrap() };
            let ours = merge(predictions.clone(), &config);
            let want = r["output"].as_array().unwrap();
            let name = format!("{} {:?}", case["name"], config);
            assert_eq!(ours.len(), want.len(), "{name}");
            for (o, w) in ours.iter().zip(want) {
                let w: Vec<f64> = w.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
                assert!(close(&o.bbox, &w[..4]) && o.score == w[4] as f32 && o.label == w[5] as usize, "{name}: ours {:?} {} {}, SAHI's {w:?}", o.bbox, o.score, o.label);
            }
            checked += 1;
        }
    }
    println!("{checked} merges equal SAHI's");
    assert!(checked >= 100);
}

/// The whole sliced prediction on flex (this crate's network on each tile, at mmdetection's test scale 320x240 as the
/// fixture was made) against SAHI's merged detections: at least 95% of SAHI's matched (label, box IoU >= 0.95,
/// |score diff| <= 2e-3).
#[test]
fn sliced_prediction_matches_sahis() {
    let mut config = mask_rcnn_burn::ModelConfig::named("r50-2x").unwrap();
    config.test.scale = [320, 240];
    let det = mask_rcnn_burn::Detector::from_checkpoint(config, synth_weights_file(), Device::flex()).unwrap();
    let ours = det.predict_sliced(&canvas(), &SliceConfig::default()).unwrap();
    let merged = load("merged.json");
    let want: Vec<DetRef> = merged["boxes_only"]["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            let v = |i: usize| w[i].as_f64().unwrap() as f32;
            DetRef { bbox: [v(0), v(1), v(2), v(3)], score: v(4), label: w[5].as_u64().unwrap() as usize }
        })
        .collect();
    let candidates: Vec<DetRef> = ours.items.iter().map(|d| DetRef { bbox: d.bbox, score: d.score, label: d.label }).collect();
    let pairs = match_detections(&want, &candidates, 0.95, 2e-3);
    println!("sliced: {} of SAHI's {} detections matched (ours {})", pairs.len(), want.len(), ours.len());
    assert!(pairs.len() * 100 >= want.len() * 95, "{} of {}", pairs.len(), want.len());
    assert!(ours.items.iter().all(|d| d.mask.image_width == 1600 && d.mask.image_height == 1200));
}
