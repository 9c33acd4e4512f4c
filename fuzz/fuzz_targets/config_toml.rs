//! Any text -> `ModelConfig` (parsing, `base` merging, validation): a typed error or a valid config, never a
//! panic. A config that validates is one the model can be built from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mask_rcnn_burn::ModelConfig;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(config) = ModelConfig::from_toml_str(text) {
        assert_eq!(config.num_classes(), config.dataset.category_ids.len());
        assert_eq!(config.num_anchors(), 3);
    }
});
