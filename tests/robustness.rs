//! The detector under concurrent use and at every precision on flex: no panic, typed results.

mod common;

use burn::tensor::Device;
use common::*;
use mask_rcnn_burn::Precision;
use mask_rcnn_burn::{BgrImage, Detector};

/// `Detector` can be shared between threads.
#[test]
fn detector_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Detector>();
}

/// Four threads calling `predict` on one detector, each on its own image, get what one thread gets.
#[test]
fn four_threads_on_one_detector_equal_one_thread() {
    let det = case_detector("r50_hopper_320", Device::flex());
    let open = |name: &str| BgrImage::open(fixtures().join("images").join(name)).unwrap();
    let images = [open("hopper_640x480.png"), open("coffee_600x400.png"), open("coffee_600x400_q85.jpg"), open("hopper_640x480.png")];
    let alone: Vec<_> = images.iter().map(|img| det.predict(img).unwrap()).collect();
    let together: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = images.iter().map(|img| s.spawn(|| det.predict(img).unwrap())).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(together, alone);
    println!("4 threads: {} detections, identical to one thread's", alone.iter().map(|d| d.len()).sum::<usize>());
}

/// f16 on flex (Burn's generic ops, f32 statistics and accumulation) runs and finds what f32 finds.
#[test]
fn flex_f16_runs_and_matches_f32() {
    let image = case_image("r50_hopper_320");
    let reference = case_detector("r50_hopper_320", Device::flex()).predict(&image).unwrap();
    let half = case_detector("r50_hopper_320", Device::flex()).with_precision(Precision::F16);
    let ours = half.predict(&image).unwrap();
    let (matched, mask) = match_against(&reference, &ours, 0.9, 0.02);
    println!("flex f16: {matched}/{} of f32's detections at IoU >= 0.9, mask I/U {mask:.4}", reference.len());
    assert!(matched * 10 >= reference.len() * 9, "only {matched} of {}", reference.len());
}
