//! Pre-processing against mmdetection's own: the network input must be bit-identical.

mod common;

use common::{case_config, case_detections, case_meta, fixtures};
use mask_rcnn_burn::BgrImage;
use mask_rcnn_burn::internals::{preprocess_with_resized, resize_linear};
use safetensors::SafeTensors;

const CASES: [&str; 6] =
    ["r50_hopper_320", "r50_hopper_default", "r50_coffee_default", "r101_coffee_320", "r50c_hopper_320", "r50_coffee_jpeg_default"];

#[test]
fn network_input_equals_mmdetection_exactly() {
    for case in CASES {
        let meta = case_meta(case);
        let config = case_config(case);
        let img = BgrImage::open(fixtures().join("images").join(&meta.image)).unwrap();
        let (pre, resized) = preprocess_with_resized(&img, &config.model.data, config.test.scale);
        let m = &meta.metainfo;
        assert_eq!(pre.meta.ori_shape, (m.ori_shape[0], m.ori_shape[1]), "{case} ori_shape");
        assert_eq!(pre.meta.img_shape, (m.img_shape[0], m.img_shape[1]), "{case} img_shape");
        assert_eq!(pre.meta.pad_shape, (m.pad_shape[0], m.pad_shape[1]), "{case} pad_shape");
        assert_eq!(pre.meta.scale_factor, (m.scale_factor[0], m.scale_factor[1]), "{case} scale_factor");

        // The resized 8-bit image is the one cv2 made, pixel for pixel.
        let want = BgrImage::open(fixtures().join(case).join("resized.png")).unwrap();
        let diff = resized.data.iter().zip(&want.data).filter(|(a, b)| a != b).count();
        assert_eq!((resized.width, resized.height), (want.width, want.height), "{case}");
        assert_eq!(diff, 0, "{case}: {diff} resized pixels differ from cv2's");

        // The normalised, padded input equals the fixture's: checksums over every value, and every 997th value.
        let stats = case_detections(case).input_stats;
        assert_eq!(stats.shape, vec![1, 3, pre.meta.pad_shape.0, pre.meta.pad_shape.1]);
        let sum: f64 = pre.input.iter().map(|v| *v as f64).sum();
        let abs_sum: f64 = pre.input.iter().map(|v| (*v as f64).abs()).sum();
        assert_eq!(sum, stats.sum, "{case} sum");
        assert_eq!(abs_sum, stats.abs_sum, "{case} abs_sum");
        let sample: Vec<f64> = pre.input.iter().step_by(stats.stride).map(|v| *v as f64).collect();
        assert_eq!(sample, stats.sample, "{case} samples");
    }
    // The 320 case also stores the whole input tensor.
    let stages = common::Stages::load();
    let meta = case_meta("r50_hopper_320");
    let img = BgrImage::open(fixtures().join("images").join(&meta.image)).unwrap();
    let config = case_config("r50_hopper_320");
    let (pre, _) = preprocess_with_resized(&img, &config.model.data, config.test.scale);
    let want = stages.get("input");
    let max = pre.input.iter().zip(&want.data).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert_eq!(pre.input.len(), want.data.len());
    assert_eq!(max, 0.0, "max abs difference of the whole input");
}

#[test]
fn resize_matches_opencv_on_random_sizes() {
    let bytes = std::fs::read(fixtures().join("opencv_resize.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut cases = 0;
    for i in 0.. {
        let (Ok(src), Ok(dst)) = (st.tensor(&format!("{i}_src")), st.tensor(&format!("{i}_dst"))) else { break };
        let (sh, sw) = (src.shape()[0], src.shape()[1]);
        let (dh, dw) = (dst.shape()[0], dst.shape()[1]);
        let img = BgrImage::from_bgr(sw, sh, src.data().to_vec()).unwrap();
        let out = resize_linear(&img, dw, dh);
        let diff = out.data.iter().zip(dst.data()).filter(|(a, b)| a != b).count();
        assert_eq!(diff, 0, "{sw}x{sh} -> {dw}x{dh}: {diff} bytes differ from cv2");
        cases += 1;
    }
    assert!(cases >= 10, "only {cases} resize vectors");
}

#[test]
fn rgb_configs_swap_channels_and_apply_std() {
    let img = BgrImage::from_bgr(2, 1, vec![10, 20, 30, 40, 50, 60]).unwrap();
    let cfg = mask_rcnn_burn::ModelConfig::named("r50c-2x").unwrap().model.data;
    let (pre, _) = preprocess_with_resized(&img, &cfg, [2, 1]);
    let (h, w) = pre.meta.pad_shape;
    assert_eq!((h, w), (32, 32));
    // Network channel 0 is red (BGR byte 2): (30 - 123.675) / 58.395.
    assert_eq!(pre.input[0], (30.0f32 - 123.675) / 58.395);
    assert_eq!(pre.input[2 * h * w + 1], (40.0f32 - 103.53) / 57.375);
    assert_eq!(pre.input[2], 0.0, "padding is zero after normalisation");
}
