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
fn a_torch_layout_checkpoint_converts_with_the_same_keys_and_values() {
    let (pth, out) = (scratch("ckpt.pth"), scratch("ckpt.safetensors"));
    write_pth(&pth, &sample(), false);
    convert_pth(&pth, &out).unwrap();
    let back = StateDict::from_safetensors_file(&out).unwrap();
    assert_eq!(back.tensors.len(), 3);
    for (key, shape, data) in sample() {
        assert_eq!(back.tensors[key], HostTensor { shape, data: data.into() }, "{key}");
    }
    // Half-precision checkpoints are read and widened.
    write_pth(&pth, &sample(), true);
    let dict = StateDict::from_pth(&pth).unwrap();
    assert_eq!(dict.tensors["backbone.gn1.bias"].data, vec![0.25, -4.0]);
}

#[test]
fn the_full_r50_synthetic_checkpoint_round_trips() {
    // Every key and shape of the real R-50 checkpoint, through a .pth and back.
    let dict = mask_rcnn_burn::weights::synth::Manifest::from_file(common::fixtures().join("r50_seed1.manifest.json")).unwrap().generate().unwrap();
    let tensors: Vec<(&str, Vec<usize>, Vec<f32>)> = dict.tensors.iter().map(|(k, t)| (k.as_str(), t.shape.clone(), t.data.to_vec())).collect();
    let pth = scratch("r50.pth");
    write_pth(&pth, &tensors, false);
    let back = StateDict::from_pth(&pth).unwrap();
    std::fs::remove_file(&pth).unwrap(); // 174 MiB
    assert_eq!(back.tensors, dict.tensors);
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
    let pth = scratch("user.pth");
    write_pth(&pth, &sample(), false);
    let config = ModelConfig::named("r50-2x").unwrap();
    let out = resolve_weights_in(&cache, &config, Some(&pth), false).unwrap();
    assert_eq!(out, cache.join("converted/user.safetensors"));
    assert_eq!(StateDict::from_safetensors_file(&out).unwrap().tensors.len(), 3);
    let first = std::fs::metadata(&out).unwrap().modified().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(resolve_weights_in(&cache, &config, Some(&pth), false).unwrap(), out);
    assert_eq!(std::fs::metadata(&out).unwrap().modified().unwrap(), first, "reused, not converted again");
    // A newer .pth is converted again.
    let mut changed = sample();
    changed[1].2 = vec![7.0, 8.0];
    write_pth(&pth, &changed, false);
    resolve_weights_in(&cache, &config, Some(&pth), false).unwrap();
    assert_eq!(StateDict::from_safetensors_file(&out).unwrap().tensors["backbone.gn1.bias"].data, vec![7.0, 8.0]);
    // A .safetensors path is used as it is.
    assert_eq!(resolve_weights_in(&cache, &config, Some(&out), false).unwrap(), out);
}
