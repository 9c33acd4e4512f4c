//! `.pth` -> safetensors on checkpoints written here in the exact layout `torch.save` uses (zip of a protocol-2
//! pickle whose tensors are `torch._utils._rebuild_tensor_v2` over persistent storages in `archive/data/N`).

mod common;

use std::path::PathBuf;

use common::pth::write_pth;
use common::scratch_file;
use mask_rcnn_burn::error::WeightsError;
use mask_rcnn_burn::ModelConfig;
use mask_rcnn_burn::weights::{HostTensor, StateDict, convert_pth, resolve_weights_in};

fn scratch(name: &str) -> PathBuf {
    scratch_file("convert", name)
}

fn sample() -> Vec<(&'static str, Vec<usize>, Vec<f32>)> {
    vec![
        ("backbone.conv1.weight", vec![2, 3, 1, 1], (0..6).map(|i| i as f32 * 0.5 - 1.0).collect()),
        ("backbone.gn1.bias", vec![2], vec![0.25, -4.0]),
        ("roi_head.bbox_head.fc_cls.weight", vec![3, 2], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
    ]
}

#[test]
fn a_torch_layout_checkpoint_reads_with_the_same_keys_and_values() {
    let pth = scratch("ckpt.pth");
    write_pth(&pth, &sample(), false);
    let back = StateDict::from_pth(&pth).unwrap();
    assert_eq!(back.tensors.len(), 3);
    for (key, shape, data) in sample() {
        assert_eq!(back.tensors[key], HostTensor { shape, data: data.into() }, "{key}");
    }
    // Half-precision checkpoints are read and widened.
    write_pth(&pth, &sample(), true);
    let dict = StateDict::from_pth(&pth).unwrap();
    assert_eq!(dict.tensors["backbone.gn1.bias"].data, vec![0.25, -4.0]);
}

/// The full R-50 synthetic checkpoint as a `.pth`: converted (keys and shapes checked against the model first),
/// read back equal; refused for a config it does not fit, before any tensor is read.
#[test]
fn the_full_r50_synthetic_checkpoint_converts_and_round_trips() {
    let dict = mask_rcnn_burn::weights::synth::Manifest::from_file(common::fixtures().join("r50_seed1.manifest.json")).unwrap().generate().unwrap();
    let tensors: Vec<(&str, Vec<usize>, Vec<f32>)> = dict.tensors.iter().map(|(k, t)| (k.as_str(), t.shape.clone(), t.data.to_vec())).collect();
    let (pth, out) = (scratch("r50.pth"), scratch("r50.safetensors"));
    write_pth(&pth, &tensors, false);
    convert_pth(&pth, &out, &ModelConfig::named("r50-2x").unwrap()).unwrap();
    assert_eq!(StateDict::from_pth(&pth).unwrap().tensors, dict.tensors);
    assert_eq!(StateDict::from_safetensors_file(&out).unwrap().tensors, dict.tensors);
    let e = convert_pth(&pth, &scratch("r101.safetensors"), &ModelConfig::named("r101-2x").unwrap()).unwrap_err();
    assert!(matches!(e, WeightsError::Missing { .. }), "{e}");
    assert!(e.to_string().contains("ResNet-50 checkpoint for a ResNet-101 config"), "{e}");
    assert!(!scratch("r101.safetensors").exists());
    // A partial checkpoint is refused by the converter (it would load nowhere).
    write_pth(&scratch("partial.pth"), &sample(), false);
    assert!(convert_pth(&scratch("partial.pth"), &out, &ModelConfig::named("r50-2x").unwrap()).is_err());
    std::fs::remove_file(&pth).unwrap(); // 174 MiB
}

#[test]
fn files_that_are_not_checkpoints_are_typed_errors() {
    let junk = scratch("junk.pth");
    std::fs::write(&junk, b"definitely not a zip").unwrap();
    assert!(matches!(StateDict::from_pth(&junk), Err(WeightsError::Checkpoint { .. })));
    let mut pth = Vec::new();
    write_pth(&scratch("cut.pth"), &sample(), false);
    std::fs::File::open(scratch("cut.pth")).and_then(|mut f| std::io::Read::read_to_end(&mut f, &mut pth)).unwrap();
    std::fs::write(scratch("cut.pth"), &pth[..pth.len() / 2]).unwrap();
    assert!(matches!(StateDict::from_pth(scratch("cut.pth")), Err(WeightsError::Checkpoint { .. })));
    assert!(matches!(StateDict::from_pth(scratch("absent.pth")), Err(WeightsError::Io { .. })));
}

#[test]
fn a_pth_given_to_the_cli_path_is_converted_once_and_reused() {
    let cache = scratch("cache");
    let (pth, other) = (scratch("user.pth"), scratch("run2/user.pth"));
    let dict = mask_rcnn_burn::weights::synth::random_state_dict(&ModelConfig::named("r50-2x").unwrap(), 3);
    let mut tensors: Vec<(&str, Vec<usize>, Vec<f32>)> = dict.tensors.iter().map(|(k, t)| (k.as_str(), t.shape.clone(), t.data.to_vec())).collect();
    write_pth(&pth, &tensors, false);
    let config = ModelConfig::named("r50-2x").unwrap();
    let out = resolve_weights_in(&cache, &config, Some(&pth), false).unwrap();
    assert_eq!(out.parent().unwrap(), cache.join("converted"));
    assert!(out.file_name().unwrap().to_str().unwrap().starts_with("user-"), "{}", out.display());
    assert_eq!(StateDict::from_safetensors_file(&out).unwrap().tensors.len(), 223);
    let first = std::fs::metadata(&out).unwrap().modified().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(resolve_weights_in(&cache, &config, Some(&pth), false).unwrap(), out);
    assert_eq!(std::fs::metadata(&out).unwrap().modified().unwrap(), first, "reused, not converted again");
    // Another run's file of the same name is another checkpoint.
    std::fs::create_dir_all(other.parent().unwrap()).unwrap();
    std::fs::copy(&pth, &other).unwrap();
    assert_ne!(resolve_weights_in(&cache, &config, Some(&other), false).unwrap(), out);
    // A newer .pth is converted again.
    let gn1 = tensors.iter().position(|t| t.0 == "backbone.gn1.bias").unwrap();
    tensors[gn1].2 = vec![7.0; 64];
    write_pth(&pth, &tensors, false);
    resolve_weights_in(&cache, &config, Some(&pth), false).unwrap();
    assert_eq!(StateDict::from_safetensors_file(&out).unwrap().tensors["backbone.gn1.bias"].data, vec![7.0; 64]);
    // A .safetensors path is used as it is.
    assert_eq!(resolve_weights_in(&cache, &config, Some(&out), false).unwrap(), out);
    std::fs::remove_dir_all(cache).ok();
    std::fs::remove_file(pth).ok();
    std::fs::remove_file(other).ok();
}
