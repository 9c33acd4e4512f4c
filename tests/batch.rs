//! `predict_batch` against `predict`: each image's detections in a batch are the ones it gets alone (same boxes,
//! scores, labels, masks, bit for bit), with images of two padded shapes mixed in one call.

mod common;

use burn::tensor::Device;
use common::*;
use mask_rcnn_burn::dataset::{RunnerConfig, image_files, run};
use mask_rcnn_burn::{BgrImage, Detector, ErrorKind, MAX_STREAMS};

/// The fixture photos and copies of the same shapes (mirrored, so their detections differ): 640x480 and 600x400
/// images, which pad to two different input shapes.
fn images() -> Vec<BgrImage> {
    let open = |name: &str| BgrImage::open(fixtures().join("images").join(name)).unwrap();
    let mirrored = |img: &BgrImage| {
        let mut data = img.data.clone();
        for row in data.chunks_exact_mut(img.width * 3) {
            let pixels: Vec<[u8; 3]> = row.chunks_exact(3).rev().map(|p| [p[0], p[1], p[2]]).collect();
            row.copy_from_slice(pixels.concat().as_slice());
        }
        BgrImage::from_bgr(img.width, img.height, data).unwrap()
    };
    let (hopper, coffee, coffee_jpeg) = (open("hopper_640x480.png"), open("coffee_600x400.png"), open("coffee_600x400_q85.jpg"));
    vec![hopper.clone(), coffee.clone(), mirrored(&hopper), coffee_jpeg.clone(), mirrored(&coffee), hopper, mirrored(&coffee_jpeg), coffee]
}

/// Runs `images` in batches of 4 and alone, and asserts equality; returns how many detections were compared.
fn assert_batch_equals_single(det: &Detector, images: &[BgrImage]) -> usize {
    let mut compared = 0;
    for chunk in images.chunks(4) {
        let batched = det.predict_batch(chunk).unwrap();
        assert_eq!(batched.len(), chunk.len());
        for (i, (img, got)) in chunk.iter().zip(&batched).enumerate() {
            let alone = det.predict(img).unwrap();
            assert!(!alone.is_empty());
            assert_eq!(got, &alone, "image {i} of the batch differs from its own predict");
            compared += alone.len();
        }
    }
    compared
}

#[test]
fn batches_equal_single_images_on_flex() {
    let det = case_detector("r50_hopper_320", Device::flex());
    let n = assert_batch_equals_single(&det, &images());
    println!("flex: 8 images in batches of 4, {n} detections identical to predict's");
}

/// With three streams (over however many threads the test has), `predict_batch` runs one image per stream, side by
/// side: still each image's own result, bit for bit. A stream count out of range is an invalid argument.
#[test]
fn streams_equal_single_images_on_flex() {
    let det = case_detector("r50_hopper_320", Device::flex()).with_streams(3).unwrap();
    assert_eq!(det.streams(), 3);
    let n = assert_batch_equals_single(&det, &images());
    println!("flex, 3 streams: 8 images, {n} detections identical to predict's");
    for bad in [0, MAX_STREAMS + 1] {
        let det = case_detector("r50_hopper_320", Device::flex());
        let err = det.with_streams(bad).err().expect("refused");
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
        assert!(err.to_string().contains("streams"), "{err}");
    }
}

/// A dataset run with two streams hands every image on once, in input order. One whose result handler panics (a
/// caller's bug) ends with that panic instead of hanging: the streams stop taking images, and the decoder blocked
/// on the full one-image queue is let go.
#[test]
fn a_streamed_run_is_in_order_and_ends_when_its_handler_panics() {
    let det = case_detector("r50_hopper_320", Device::flex()).with_streams(2).unwrap();
    let dir = fixtures().join("images");
    let mut entries = image_files(std::slice::from_ref(&dir), false).unwrap();
    entries.extend(image_files(&[dir], false).unwrap());
    let config = RunnerConfig { queue: 1, ..RunnerConfig::default() };
    let mut seen = Vec::new();
    let summary = run(&det, &entries, &config, |o| seen.push((o.index, o.result.is_ok())));
    assert_eq!(seen, (0..entries.len()).map(|i| (i, true)).collect::<Vec<_>>());
    assert_eq!(summary.done, entries.len());
    // On a thread of its own, so that a hang fails the test instead of stalling it.
    let (tx, rx) = std::sync::mpsc::channel();
    let det = std::sync::Arc::new(det);
    std::thread::spawn(move || {
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&det, &entries, &config, |_| panic!("a handler's bug"))));
        tx.send(caught.is_err()).ok();
    });
    let panicked = rx.recv_timeout(std::time::Duration::from_secs(120)).expect("the run ended within 120 s");
    assert!(panicked, "the handler's panic reaches the caller");
}
