//! COCO evaluation (hotcoco) against pycocotools on tests/fixtures/coco_eval: ground truth from the oracle's
//! detections of three fixture images, results from other runs (see make_coco_eval.py there); the 12 bbox and
//! 12 segm numbers of `COCOeval.summarize()` equal pycocotools 2.0.11's within 1e-4.

mod common;

use common::fixtures;
use mask_rcnn_burn::eval::evaluate;

#[test]
fn summary_equals_pycocotools() {
    let dir = fixtures().join("coco_eval");
    let ours = evaluate(&dir.join("instances.json"), &dir.join("results.json")).unwrap();
    let reference: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("pycocotools_stats.json")).unwrap()).unwrap();
    for (name, summary) in [("bbox", &ours.bbox), ("segm", &ours.segm)] {
        let want: Vec<f64> = reference[name].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        let got = summary.ordered();
        println!("{name}: ours {got:.5?}\n      pycocotools {want:.5?}");
        assert_eq!(got.len(), 12);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!((g - w).abs() <= 1e-4, "{name} stat {i}: {g} vs pycocotools {w}");
        }
        assert!(want.iter().any(|v| *v > 0.05 && *v < 0.95), "{name}: a degenerate reference proves little");
    }
}

/// Our RLE strings equal pycocotools' own: every mask of every parity fixture was encoded by
/// `pycocotools.mask.encode` (the oracle's compact.py); decoded, put back into a window of its image as a
/// detection's mask is, and encoded again by us, each gives exactly pycocotools' string.
#[test]
fn rle_strings_equal_pycocotools_on_its_own_encodings() {
    use mask_rcnn_burn::Mask;
    use mask_rcnn_burn::eval::decode_dense;
    let (mut masks, mut pixels) = (0, 0u64);
    for case in ["r50_hopper_320", "r50_hopper_default", "r50_coffee_default", "r50_coffee_jpeg_default", "r101_coffee_320", "r50c_hopper_320"] {
        for d in common::case_detections(case).detections {
            let [h, w] = d.rle.size.map(|v| v as usize);
            let dense = decode_dense(&d.rle).expect("pycocotools' RLE decodes");
            // The tightest window holding the set pixels, as the paste's windows hold them.
            let set: Vec<(usize, usize)> = (0..h * w).filter(|&i| dense[i] != 0).map(|i| (i % w, i / w)).collect();
            let (x0, y0) = set.iter().fold((w, h), |(a, b), &(x, y)| (a.min(x), b.min(y)));
            let (x1, y1) = set.iter().fold((x0, y0), |(a, b), &(x, y)| (a.max(x + 1), b.max(y + 1)));
            let window = (y0..y1).flat_map(|y| dense[y * w + x0..y * w + x1].to_vec()).collect();
            let mask = Mask { image_width: w, image_height: h, x0, y0, x1, y1, window };
            assert_eq!(mask.to_coco_rle(), d.rle, "{case}: a mask of {} pixels", d.area);
            (masks, pixels) = (masks + 1, pixels + d.area);
        }
    }
    println!("{masks} masks ({pixels} pixels) re-encoded to pycocotools' exact strings");
    assert!(masks >= 600 && pixels > 0);
}
