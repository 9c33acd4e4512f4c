//! Any bytes -> a state dict, alone and checked against the R-50 model's keys and shapes (what
//! `Detector::from_safetensors` does before decoding): a typed error or a dict, never a panic.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use mask_rcnn_burn::weights::{KeySpec, StateDict, expected_keys};
use mask_rcnn_burn::{ModelConfig, model::MaskRcnn};

static SPECS: LazyLock<Vec<KeySpec>> = LazyLock::new(|| {
    let config = ModelConfig::named("r50-2x").expect("built-in config");
    expected_keys(&MaskRcnn::new(&config, &burn::tensor::Device::flex()))
});

fuzz_target!(|data: &[u8]| {
    if let Ok(dict) = StateDict::from_safetensors_bytes(data, "fuzz input") {
        for t in dict.tensors.values() {
            assert_eq!(t.data.len(), t.shape.iter().product::<usize>());
        }
    }
    let _ = StateDict::from_safetensors_bytes_for(data, "fuzz input", &SPECS);
});
