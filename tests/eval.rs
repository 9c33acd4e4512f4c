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
