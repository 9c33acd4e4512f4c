//! The deterministic synthetic weights ("synth-v1") behind the parity fixtures.
//!
//! No trained checkpoint can be downloaded where the fixtures were made, so mmdetection ran on weights this
//! formula defines (../shared/oracle/synth_weights.py, documented at its top). A fixture's
//! `weights.manifest.json` lists every key with its shape, the formula's numbers and two checksums; this
//! module regenerates the tensors bit for bit and checks them against those checksums.

use std::path::Path;

use serde::Deserialize;

use super::mapping::expected_keys;
use super::state_dict::{HostTensor, StateDict};
use crate::config::ModelConfig;
use crate::error::WeightsError;
use crate::model::MaskRcnn;

#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub seed: u64,
    pub tensors: Vec<ManifestEntry>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ManifestEntry {
    pub key: String,
    pub shape: Vec<usize>,
    pub center: f64,
    pub half_width: f64,
    pub antithetic: bool,
    /// Sum of the f32 values in f64: a checksum.
    pub sum_f64: f64,
    /// The first four values: a bit-exact check.
    pub first4: Vec<f64>,
}

fn fnv1a64(key: &str) -> u64 {
    key.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
}

fn splitmix64(z: u64) -> u64 {
    let z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The synth-v1 values of one tensor: uniform on `[center - half_width, center + half_width]`.
pub fn generate(key: &str, numel: usize, center: f64, half_width: f64, antithetic: bool, seed: u64) -> Vec<f32> {
    let h = fnv1a64(key) ^ seed;
    (0..numel as u64)
        .map(|i| {
            let j = if antithetic { i - i % 2 } else { i };
            let u = (splitmix64(h.wrapping_add(j)) >> 40) as f64 / 16_777_216.0;
            let v = (2.0 * u - 1.0) * half_width + center;
            let v = if antithetic && i % 2 == 1 { -v } else { v };
            v as f32
        })
        .collect()
}

impl Manifest {
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, WeightsError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| WeightsError::Io { path: path.to_path_buf(), source })?;
        let manifest: Self = serde_json::from_str(&text)
            .map_err(|e| WeightsError::Corrupt { origin: path.display().to_string(), message: e.to_string() })?;
        if manifest.format != "synth-v1" {
            return Err(WeightsError::Corrupt {
                origin: path.display().to_string(),
                message: format!("format `{}` is not synth-v1", manifest.format),
            });
        }
        Ok(manifest)
    }

    /// Regenerates every tensor and checks `first4` (bit for bit) and `sum_f64` (1e-9 relative).
    pub fn generate(&self) -> Result<StateDict, WeightsError> {
        let mut dict = StateDict { origin: format!("synth-v1 seed {}", self.seed), ..Default::default() };
        for e in &self.tensors {
            let numel = e.shape.iter().product();
            let data = generate(&e.key, numel, e.center, e.half_width, e.antithetic, self.seed);
            let first4_ok = e.first4.iter().zip(&data).all(|(want, got)| *want as f32 == *got);
            let sum: f64 = data.iter().map(|v| *v as f64).sum();
            let sum_ok = (sum - e.sum_f64).abs() <= 1e-9 * e.sum_f64.abs().max(1.0);
            if !first4_ok || !sum_ok {
                return Err(WeightsError::Corrupt {
                    origin: dict.origin.clone(),
                    message: format!(
                        "regenerated `{}` does not match the manifest (first4 {:?} vs {:?}, sum {sum} vs {})",
                        e.key,
                        &data[..data.len().min(4)],
                        e.first4,
                        e.sum_f64
                    ),
                });
            }
            dict.tensors.insert(e.key.clone(), HostTensor { shape: e.shape.clone(), data: data.into() });
        }
        Ok(dict)
    }
}

/// Synthetic weights for any config (benchmarks, the GPU report): every key of the model with synth-v1 values
/// scaled like the fixtures' rules — fan-in for conv/fc weights, 1 +- 0.5 for GroupNorm gammas, small biases — so
/// activations stay in range and the RPN yields the full 1000 proposals, as trained weights do.
pub fn random_state_dict(config: &ModelConfig, seed: u64) -> StateDict {
    let model = MaskRcnn::new(config, config.num_classes(), &burn::tensor::Device::flex());
    let mut dict = StateDict { origin: format!("synthetic {} seed {seed}", config.name), ..Default::default() };
    for spec in expected_keys(&model) {
        let n: usize = spec.shape.iter().product();
        let fan_in: usize = spec.shape.iter().skip(1).product::<usize>().max(1);
        let is_norm = spec.key.contains(".gn") || spec.key.contains("downsample.1") || spec.key.starts_with("backbone.gn1");
        let (center, half) = match (is_norm, spec.key.ends_with(".weight")) {
            (true, true) => (1.0, 0.5),
            (true, false) => (0.0, 0.17),
            (false, false) => (0.0, 0.035),
            (false, true) => (0.0, (3.0 / fan_in as f64).sqrt()),
        };
        dict.tensors.insert(spec.key.clone(), HostTensor { data: generate(&spec.key, n, center, half, false, seed).into(), shape: spec.shape });
    }
    dict
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_matches_a_hand_checked_value() {
        // backbone.conv1.weight, seed 1, from r50_hopper_320/weights.manifest.json.
        let v = generate("backbone.conv1.weight", 4, 0.0, 0.04374088826398532, false, 1);
        assert_eq!(v, [0.00012168137618573382f64 as f32, 0.0047938949428498745f64 as f32, -0.03521675243973732f64 as f32, -0.04321042448282242f64 as f32]);
        let a = generate("k", 4, 0.0, 1.0, true, 3);
        assert_eq!((a[0], a[2]), (-a[1], -a[3]));
    }
}
