//! End to end and per stage on an 800x1216 input (the coffee fixture at the config's 1333x800 scale), flex.
//!
//!     cargo bench --bench pipeline                 # all
//!     cargo bench --bench pipeline -- r50/e2e      # one
//!
//! Weights: the synthetic weights (same shapes and FLOPs as the real ones; box-head cost depends on
//! the number of proposals, which is 1000 here as with trained weights). Peak memory: see `benches/README.md`.

use std::time::Duration;

use burn::tensor::Device;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mask_rcnn_burn::internals::{RoiOutput, detector_postprocess};
use mask_rcnn_burn::weights::synth::random_state_dict;
use mask_rcnn_burn::{BgrImage, Detector, ModelConfig, Precision};

/// The allocator the `infer` binary uses (see `alloc`), so warm numbers here and its cold ones compare.
#[global_allocator]
static ALLOC: mask_rcnn_burn::alloc::MiMalloc = mask_rcnn_burn::alloc::MiMalloc;

const IMAGE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/images/coffee_600x400.png");

/// The library's synthetic weights (same shapes and FLOPs as the checkpoints, 1000 proposals).
fn synthetic(config: &ModelConfig, device: &Device) -> Detector {
    Detector::from_state_dict(config.clone(), random_state_dict(config, 1), device.clone()).expect("synthetic weights fit")
}

fn bench_model(c: &mut Criterion, alias: &str, stages: bool) {
    mask_rcnn_burn::alloc::keep_freed_memory();
    let device = Device::flex();
    let config = ModelConfig::named(alias).unwrap();
    let det = synthetic(&config, &device);
    let img = BgrImage::open(IMAGE).unwrap();
    let name = alias.split('-').next().unwrap();
    let mut group = c.benchmark_group(name);
    group.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(20));
    // One element = one image, so criterion's `thrpt` line reads images/s.
    group.throughput(Throughput::Elements(1));
    group.bench_function("e2e", |b| b.iter(|| det.predict(&img).unwrap()));
    if stages {
        let pre = det.preprocess(&img);
        group.bench_function("preprocess", |b| b.iter(|| det.preprocess(&img)));
        let input = pre.to_tensor(&device);
        group.bench_function("backbone", |b| {
            b.iter(|| {
                let c = det.model().backbone.forward(input.clone());
                device.sync().unwrap();
                c
            })
        });
        let c5 = det.model().backbone.forward(input.clone());
        group.bench_function("fpn", |b| {
            b.iter(|| {
                let p = det.model().neck.forward(c5.clone());
                device.sync().unwrap();
                p
            })
        });
        let (model, test, shapes) = (det.model(), &det.config().test, [pre.meta.img_shape]);
        let pyramid = model.features(input, Precision::F32);
        group.bench_function("rpn_proposals", |b| b.iter(|| model.rpn_head.predict(&pyramid, &shapes, &test.rpn).unwrap()));
        let props = model.rpn_head.predict(&pyramid, &shapes, &test.rpn).unwrap();
        // The RoI heads' channels-last copies of the four levels (flex), made once per image.
        group.bench_function("roi_features", |b| b.iter(|| model.roi_head.features(pyramid.to_vec())));
        let features = model.roi_head.features(pyramid.to_vec());
        group.bench_function("box_head_1000_rois", |b| b.iter(|| model.roi_head.predict_boxes(&features, &props, &shapes, &test.rcnn).unwrap()));
        let dets = model.roi_head.predict_boxes(&features, &props, &shapes, &test.rcnn).unwrap();
        group.bench_function("mask_head_paste", |b| {
            b.iter(|| {
                let out = RoiOutput { mask_logits: model.roi_head.predict_mask_logits(&features, &dets), detections: dets.clone() };
                detector_postprocess(out, &[pre.meta], det.classes(), test.rcnn.mask_thr_binary).unwrap()
            })
        });
    }
    group.finish();
}

fn r50(c: &mut Criterion) {
    bench_model(c, "r50-2x", true);
}

fn r101(c: &mut Criterion) {
    bench_model(c, "r101-2x", false);
}

criterion_group!(benches, r50, r101);
criterion_main!(benches);
