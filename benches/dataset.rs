//! Images/s on flex over 8 same-shape images (the coffee photo at the configs' 1333x800 scale: 1216x800 inputs),
//! synthetic R-50 weights: a loop of `predict_path` (decode, then detect, one after the other) against the dataset
//! runner at batch 1 and batch 4 (decoding overlapped on another thread). Each way runs 3 times, interleaved;
//! medians and ratios are printed.
//!
//!     cargo bench --bench dataset

use std::time::Instant;

use burn::tensor::Device;
use mask_rcnn_burn::dataset::{RunnerConfig, image_files, run};
use mask_rcnn_burn::weights::synth::random_state_dict;
use mask_rcnn_burn::{Detector, ModelConfig};

const IMAGES: usize = 8;
const ROUNDS: usize = 3;

/// The allocator the `infer` binary uses (see `alloc`).
#[global_allocator]
static ALLOC: mask_rcnn_burn::alloc::MiMalloc = mask_rcnn_burn::alloc::MiMalloc;

fn main() {
    mask_rcnn_burn::alloc::keep_freed_memory();
    let dir = std::env::temp_dir().join(format!("mask-rcnn-burn-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/images/coffee_600x400.png");
    for i in 0..IMAGES {
        std::fs::copy(src, dir.join(format!("{i}.png"))).unwrap();
    }
    let entries = image_files(std::slice::from_ref(&dir), false).unwrap();
    let config = ModelConfig::named("r50-2x").unwrap();
    let det = Detector::from_state_dict(config.clone(), random_state_dict(&config, 1), Device::flex()).unwrap();
    det.predict_path(&entries[0].path).unwrap(); // warm-up: first-touch of the buffers

    let ways: [(&str, Box<dyn Fn() -> usize>); 3] = [
        ("loop of predict_path", Box::new(|| entries.iter().map(|e| det.predict_path(&e.path).unwrap().len()).count())),
        ("runner, batch 1", Box::new(|| run(&det, &entries, &RunnerConfig { batch: 1, ..Default::default() }, |_| {}).done)),
        ("runner, batch 4", Box::new(|| run(&det, &entries, &RunnerConfig { batch: 4, ..Default::default() }, |_| {}).done)),
    ];
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); ways.len()];
    for round in 0..ROUNDS {
        for (k, (name, way)) in ways.iter().enumerate() {
            let start = Instant::now();
            assert_eq!(way(), IMAGES);
            let rate = IMAGES as f64 / start.elapsed().as_secs_f64();
            println!("round {round}: {name}: {rate:.3} images/s");
            rates[k].push(rate);
        }
    }
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let base = median(&rates[0]);
    for ((name, _), r) in ways.iter().zip(&rates) {
        println!("{name}: median {:.3} images/s ({:.2}x the loop)", median(r), median(r) / base);
    }
    std::fs::remove_dir_all(dir).ok();
}
