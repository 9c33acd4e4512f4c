//! Any bytes as a `.pth` file (zip + pickle, or the legacy layout) -> a state dict, alone and checked against
//! the R-50 model: a typed error or a dict, never a panic, never a pickle's code run.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use mask_rcnn_burn::weights::{KeySpec, StateDict, expected_keys};
use mask_rcnn_burn::{ModelConfig, model::MaskRcnn};

static SPECS: LazyLock<Vec<KeySpec>> = LazyLock::new(|| {
    let config = ModelConfig::named("r50-2x").expect("built-in config");
    expected_keys(&MaskRcnn::new(&config, &burn::tensor::Device::flex()))
});

/// The reader takes a path: one scratch file per fuzzing process, in memory where /dev/shm exists.
static SCRATCH: LazyLock<std::path::PathBuf> = LazyLock::new(|| {
    let dir = if std::path::Path::new("/dev/shm").is_dir() { "/dev/shm".into() } else { std::env::temp_dir() };
    dir.join(format!("mask-rcnn-burn-fuzz-{}.pth", std::process::id()))
});

fuzz_target!(|data: &[u8]| {
    std::fs::write(&*SCRATCH, data).expect("scratch file");
    if let Ok(dict) = StateDict::from_pth(&*SCRATCH) {
        for t in dict.tensors.values() {
            assert_eq!(t.data.len(), t.shape.iter().product::<usize>());
        }
    }
    let _ = StateDict::from_pth_for(&*SCRATCH, &SPECS);
});
