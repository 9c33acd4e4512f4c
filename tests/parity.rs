//! Parity with mmdetection on the flex backend: stage by stage on r50_hopper_320, end to end on all cases.
//! Weights: synth-v1, regenerated from the manifest (tests/common).

mod common;

use burn::tensor::Device;
use common::*;
use mask_rcnn_burn::eval::{DetRef, match_detections};
use mask_rcnn_burn::internals::mask_rcnn_inference;
use mask_rcnn_burn::{BgrImage, Detector, Precision};

fn detector_for(case: &str) -> Detector {
    case_detector(case, Device::flex())
}

fn image_of(case: &str) -> BgrImage {
    BgrImage::open(fixtures().join("images").join(case_meta(case).image)).unwrap()
}

/// Stage bounds: measured on this machine 3.1e-7..7.0e-6 relative L2 and at most 1.44e-4 absolute (the mask logits;
/// every other stage <= 1e-4); the bounds leave a margin of ~3x and ~2x for other CPUs' float summation order.
const STAGE_REL: f64 = 2e-5;
const STAGE_ABS: f64 = 3e-4;

fn rows(t: &StageTensor, width: usize) -> Vec<[f32; 4]> {
    assert_eq!(width, 4);
    t.data.chunks_exact(4).map(|c| [c[0], c[1], c[2], c[3]]).collect()
}

#[test]
fn hopper_320_stage_by_stage() {
    let case = "r50_hopper_320";
    let det = detector_for(case);
    let stages = Stages::load();
    let pre = det.preprocess(&image_of(case));
    let input = pre.to_tensor(det.device());

    let stem = det.model().backbone.stem(input.clone());
    let want = stages.get("stem");
    assert_close("stem", &take_channels(stem, want.channel_step), &want.data, STAGE_REL, STAGE_ABS);

    let model = det.model();
    let c = model.backbone.forward(input.clone());
    let p = model.features(input, Precision::F32);
    for (i, t) in c.iter().enumerate() {
        let want = stages.get(&format!("C{}", i + 2));
        assert_close(&format!("C{}", i + 2), &take_channels(t.clone(), want.channel_step), &want.data, STAGE_REL, STAGE_ABS);
    }
    for (i, t) in p.iter().enumerate() {
        let want = stages.get(&format!("P{}", i + 2));
        assert_close(&format!("P{}", i + 2), &take_channels(t.clone(), want.channel_step), &want.data, STAGE_REL, STAGE_ABS);
    }

    for (i, (cls, reg)) in model.rpn_head.forward_levels(&p).into_iter().enumerate() {
        let lvl = i + 2;
        assert_close(&format!("rpn_cls_score_P{lvl}"), &take_channels(cls, 1), &stages.get(&format!("rpn_cls_score_P{lvl}")).data, STAGE_REL, STAGE_ABS);
        assert_close(&format!("rpn_bbox_pred_P{lvl}"), &take_channels(reg, 1), &stages.get(&format!("rpn_bbox_pred_P{lvl}")).data, STAGE_REL, STAGE_ABS);
    }

    // Proposals: every one of mmdetection's 1000 matched by one of ours with IoU >= 0.99 and the same score to 1e-5
    // (measured: max |score diff| printed below).
    let ours = model.rpn_head.predict(&p, &[pre.meta.img_shape], &det.config().test.rpn).unwrap().remove(0);
    let theirs = rows(&stages.get("proposals_bboxes"), 4);
    let their_scores = stages.get("proposals_scores").data;
    assert_eq!(ours.boxes.len(), theirs.len());
    let as_ref = |(b, s): (&[f32; 4], &f32)| DetRef { bbox: *b, score: *s, label: 0 };
    let pairs = match_detections(
        &theirs.iter().zip(&their_scores).map(as_ref).collect::<Vec<_>>(),
        &ours.boxes.iter().zip(&ours.scores).map(as_ref).collect::<Vec<_>>(),
        0.99,
        1e-5,
    );
    let worst = pairs.iter().map(|&(t, o)| (their_scores[t] - ours.scores[o]).abs()).fold(0f32, f32::max);
    println!("proposals matched: {} / {}, max |score diff| {worst:.3e}", pairs.len(), theirs.len());
    assert_eq!(pairs.len(), theirs.len(), "proposals matched (IoU >= 0.99, |score diff| <= 1e-5)");

    // RoI features and box head on mmdetection's own proposals.
    let features = model.roi_head.features(p.to_vec());
    let image0 = |boxes: &[[f32; 4]]| boxes.iter().map(|b| (0, *b)).collect::<Vec<_>>();
    let roi_feats = model.roi_head.bbox_roi_features(&features, &image0(&theirs));
    let want = stages.get("bbox_roi_feats_first64");
    let first64 = roi_feats.clone().slice([0..64]);
    assert_close("bbox_roi_feats_first64", &take_channels(first64, want.channel_step), &want.data, STAGE_REL, STAGE_ABS);
    let (cls, reg) = model.roi_head.bbox_head.forward(roi_feats);
    assert_close("bbox_head_cls_score", &take_channels(cls, 1), &stages.get("bbox_head_cls_score").data, STAGE_REL, STAGE_ABS);
    assert_close("bbox_head_bbox_pred", &take_channels(reg, 1), &stages.get("bbox_head_bbox_pred").data, STAGE_REL, STAGE_ABS);

    // Mask branch on mmdetection's own detections (resized frame).
    let dets = rows(&stages.get("det_resized_bboxes"), 4);
    let want = stages.get("mask_roi_feats_first16");
    let mask_feats = model.roi_head.mask_roi_features(&features, &image0(&dets));
    assert_close("mask_roi_feats_first16", &take_channels(mask_feats.clone().slice([0..16]), want.channel_step), &want.data, STAGE_REL, STAGE_ABS);
    let labels: Vec<usize> = stages.get("det_resized_labels").data.iter().map(|v| *v as usize).collect();
    let picked = mask_rcnn_inference(model.roi_head.mask_head.forward(mask_feats.clone()), &labels);
    assert_close("mask_head_logits_of_label", &take_channels(picked, 1), &stages.get("mask_head_logits_of_label").data, STAGE_REL, STAGE_ABS);
    // The path predict takes: only each detection's own class computed.
    let own = model.roi_head.mask_head.forward_own_class(mask_feats, &labels);
    assert_close("mask_head_logits_of_label (own class)", &take_channels(own, 1), &stages.get("mask_head_logits_of_label").data, STAGE_REL, STAGE_ABS);
}

/// End to end from the image file: see [`assert_end_to_end`] for the bounds.
fn end_to_end(case: &str) {
    assert_end_to_end(case, detector_for(case), "flex");
}

#[test]
fn hopper_320_end_to_end() {
    end_to_end("r50_hopper_320");
}

#[test]
fn hopper_default_end_to_end() {
    end_to_end("r50_hopper_default");
}

#[test]
fn coffee_default_end_to_end() {
    end_to_end("r50_coffee_default");
}

/// A JPEG photo (coffee, OpenCV quality 85, 4:2:0) decoded as mmdetection's cv2 loader decodes it.
#[test]
fn coffee_jpeg_default_end_to_end() {
    end_to_end("r50_coffee_jpeg_default");
}

#[test]
fn r101_coffee_320_end_to_end() {
    end_to_end("r101_coffee_320");
}

#[test]
fn r50_contrib_rgb_hopper_320_end_to_end() {
    end_to_end("r50c_hopper_320");
}

#[test]
fn no_detection_above_threshold_is_an_empty_result() {
    let mut det = detector_for("r50_hopper_320");
    det.test_config_mut().rcnn.score_thr = 1.0;
    let out = det.predict(&image_of("r50_hopper_320")).unwrap();
    assert!(out.is_empty());
    assert_eq!((out.image_width, out.image_height), (640, 480));
    // A 1x1 image runs through every stage too.
    let tiny = BgrImage::from_bgr(1, 1, vec![0, 128, 255]).unwrap();
    det.test_config_mut().rcnn.score_thr = 0.05;
    det.test_config_mut().scale = [64, 64];
    let out = det.predict(&tiny).unwrap();
    assert!(out.items.iter().all(|d| d.mask.image_width == 1 && d.mask.image_height == 1));
}
