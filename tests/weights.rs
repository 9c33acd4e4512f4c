//! Weight loading: the key set is exactly mmdetection's, and every bad file is a typed error, never a panic.

mod common;

use std::collections::BTreeMap;

use burn::tensor::Device;
use common::fixtures;
use mask_rcnn_burn::error::WeightsError;
use mask_rcnn_burn::internals::{MaskRcnn, expected_keys};
use mask_rcnn_burn::weights::{HostTensor, StateDict};
use mask_rcnn_burn::{Detector, Error, ModelConfig};
use safetensors::Dtype;

/// `key<TAB>[d0, d1, ...]<TAB>dtype` lines of ../shared/docs/keys_*.txt.
fn mmdet_keys(file: &str) -> Vec<(String, Vec<usize>)> {
    std::fs::read_to_string(fixtures().join(file))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut parts = l.split('\t');
            let key = parts.next().unwrap().to_string();
            (key, serde_json::from_str(parts.next().unwrap()).unwrap())
        })
        .collect()
}

fn model_keys(alias: &str) -> Vec<(String, Vec<usize>)> {
    let config = ModelConfig::named(alias).unwrap();
    let mut keys: Vec<_> = expected_keys(&MaskRcnn::new(&config, config.num_classes(), &Device::flex())).into_iter().map(|s| (s.key, s.shape)).collect();
    keys.sort();
    keys
}

#[test]
fn model_keys_are_mmdetections_state_dict() {
    for (alias, file, count) in [("r50-2x", "keys_r50.txt", 223), ("r101-3x", "keys_r101.txt", 376), ("r50c-2x", "keys_r50.txt", 223)] {
        let mut want = mmdet_keys(file);
        want.sort();
        let ours = model_keys(alias);
        assert_eq!(ours.len(), count, "{alias}");
        assert_eq!(ours, want, "{alias}");
    }
}

/// A state dict of zeros with the R-50 keys; small enough to build per test.
fn zeros_r50() -> StateDict {
    let tensors: BTreeMap<String, HostTensor> = mmdet_keys("keys_r50.txt")
        .into_iter()
        .map(|(k, shape)| {
            let n = shape.iter().product();
            (k, HostTensor { shape, data: vec![0.0; n].into() })
        })
        .collect();
    StateDict { origin: "test".into(), tensors, classes: None }
}

fn load(dict: StateDict) -> Result<Detector, Error> {
    Detector::from_state_dict(ModelConfig::named("r50-2x").unwrap(), dict, Device::flex())
}

fn weights_err(r: Result<Detector, Error>) -> WeightsError {
    match r {
        Err(Error::Weights(e)) => e,
        Err(e) => panic!("not a weights error: {e}"),
        Ok(_) => panic!("bad weights were accepted"),
    }
}

#[test]
fn missing_extra_and_misshapen_tensors_are_named() {
    let mut d = zeros_r50();
    d.tensors.remove("roi_head.mask_head.conv_logits.bias");
    let e = weights_err(load(d));
    assert!(matches!(&e, WeightsError::Missing { keys, .. } if keys == &["roi_head.mask_head.conv_logits.bias"]), "{e}");
    assert!(e.to_string().contains("roi_head.mask_head.conv_logits.bias"), "{e}");

    let mut d = zeros_r50();
    d.tensors.insert("backbone.fc.weight".into(), HostTensor { shape: vec![2], data: vec![0.0; 2].into() });
    let e = weights_err(load(d));
    assert!(matches!(&e, WeightsError::Unexpected { keys, .. } if keys == &["backbone.fc.weight"]), "{e}");

    let mut d = zeros_r50();
    d.tensors.insert("neck.fpn_convs.2.conv.weight".into(), HostTensor { shape: vec![256, 256, 1, 1], data: vec![0.0; 65536].into() });
    let e = weights_err(load(d));
    let msg = e.to_string();
    assert!(matches!(e, WeightsError::Shape { .. }), "{msg}");
    assert!(msg.contains("neck.fpn_convs.2.conv.weight") && msg.contains("[256, 256, 3, 3]") && msg.contains("[256, 256, 1, 1]"), "{msg}");
}

#[test]
fn a_resnet101_checkpoint_in_a_resnet50_config_says_so() {
    // Only the key set matters before shapes are checked, so the tensors can be tiny.
    let tensors = mmdet_keys("keys_r101.txt").into_iter().map(|(k, _)| (k, HostTensor { shape: vec![1], data: vec![0.0].into() })).collect();
    let e = weights_err(load(StateDict { origin: "r101.safetensors".into(), tensors, classes: None }));
    assert!(matches!(e, WeightsError::Unexpected { count: 153, .. }), "{e}");
    assert!(e.to_string().contains("ResNet-101 checkpoint for a ResNet-50 config"), "{e}");
    // And the other way round.
    let r101 = Detector::from_state_dict(ModelConfig::named("r101-2x").unwrap(), zeros_r50(), Device::flex());
    let e = weights_err(r101);
    assert!(e.to_string().contains("ResNet-50 checkpoint for a ResNet-101 config"), "{e}");
}

/// Serialises `dict` with every tensor in `dtype` (F32 bytes converted).
fn bytes_as(dict: &StateDict, dtype: Dtype) -> Vec<u8> {
    let bufs: Vec<(String, Vec<u8>, Vec<usize>)> = dict
        .tensors
        .iter()
        .map(|(k, t)| {
            let bytes = match dtype {
                Dtype::F16 => t.data.iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()).collect(),
                Dtype::BF16 => t.data.iter().flat_map(|v| half::bf16::from_f32(*v).to_le_bytes()).collect(),
                Dtype::I64 => t.data.iter().flat_map(|v| (*v as i64).to_le_bytes()).collect(),
                Dtype::F64 => t.data.iter().flat_map(|v| f64::from(*v).to_le_bytes()).collect(),
                _ => t.data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            };
            (k.clone(), bytes, t.shape.clone())
        })
        .collect();
    let views: Vec<_> = bufs.iter().map(|(k, b, s)| (k.as_str(), safetensors::tensor::TensorView::new(dtype, s.clone(), b).unwrap())).collect();
    safetensors::serialize(views, None).unwrap()
}

#[test]
fn truncated_corrupt_and_integer_files_are_rejected() {
    let mut small = StateDict::default();
    small.tensors.insert("a".into(), HostTensor { shape: vec![4], data: vec![1.0, 2.0, 3.0, 4.0].into() });
    let bytes = small.to_safetensors_bytes().unwrap();
    for cut in [0, 7, 8, bytes.len() / 2, bytes.len() - 1] {
        let e = StateDict::from_safetensors_bytes(&bytes[..cut], "cut.safetensors").unwrap_err();
        assert!(matches!(e, WeightsError::Corrupt { .. }), "cut at {cut}: {e}");
        assert!(e.to_string().contains("cut.safetensors"), "{e}");
    }
    let e = StateDict::from_safetensors_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}", "junk").unwrap_err();
    assert!(matches!(e, WeightsError::Corrupt { .. }), "{e}");
    let e = StateDict::from_safetensors_bytes(&bytes_as(&small, Dtype::I64), "int.safetensors").unwrap_err();
    assert!(matches!(&e, WeightsError::Dtype { key, dtype, .. } if key == "a" && dtype == "I64"), "{e}");
    small.tensors.get_mut("a").unwrap().data[2] = f32::NAN;
    let e = StateDict::from_safetensors_bytes(&small.to_safetensors_bytes().unwrap(), "nan").unwrap_err();
    assert!(matches!(e, WeightsError::NonFinite { .. }), "{e}");
    let e = StateDict::from_safetensors_file("/nonexistent/w.safetensors").unwrap_err();
    assert!(matches!(e, WeightsError::Io { .. }), "{e}");
}

#[test]
fn half_precision_files_are_cast_to_f32() {
    let mut d = zeros_r50();
    let w = d.tensors.get_mut("backbone.gn1.weight").unwrap();
    w.data = (0..64).map(|i| 1.0 + i as f32 / 3.0).collect();
    let want: Vec<f32> = w.data.iter().map(|v| half::f16::from_f32(*v).to_f32()).collect();
    let parsed = StateDict::from_safetensors_bytes(&bytes_as(&d, Dtype::F16), "half").unwrap();
    let det = load(parsed).unwrap();
    let got = det.model().backbone.gn1.gamma.as_ref().unwrap().val().into_data().try_into_vec::<f32>().unwrap();
    assert_eq!(got, want);
    let parsed = StateDict::from_safetensors_bytes(&bytes_as(&d, Dtype::BF16), "bf16").unwrap();
    assert_eq!(parsed.tensors["backbone.gn1.weight"].data[3], half::bf16::from_f32(2.0).to_f32());
}

#[test]
fn linear_weights_are_transposed_on_load() {
    let mut d = zeros_r50();
    let fc = d.tensors.get_mut("roi_head.bbox_head.fc_cls.weight").unwrap(); // [81, 1024]
    fc.data[5 * 1024 + 7] = 3.5; // out 5, in 7
    let det = load(d).unwrap();
    let w = det.model().roi_head.bbox_head.fc_cls.weight.val(); // Burn: [in, out]
    assert_eq!(w.dims(), [1024, 81]);
    let data = w.into_data().try_into_vec::<f32>().unwrap();
    assert_eq!(data[7 * 81 + 5], 3.5);
}

/// The file reader (the file mapped, f32 tensors read in place) against the in-memory parser: the same
/// tensors for f32, f16 and bf16 files, and the same kind of error for every cut, junk header, integer dtype,
/// NaN and trailing byte.
#[test]
fn file_reader_equals_bytes_parser() {
    let dir = std::env::temp_dir().join(format!("mask-rcnn-burn-weights-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let mut small = StateDict::default();
    small.tensors.insert("a".into(), HostTensor { shape: vec![2, 2], data: vec![1.0, -2.5, 3.25, 4e-3].into() });
    small.tensors.insert("b".into(), HostTensor { shape: vec![3], data: vec![7.0, 8.0, 9.5].into() });
    small.tensors.insert("c".into(), HostTensor { shape: vec![0], data: vec![].into() });
    for dtype in [Dtype::F32, Dtype::F16, Dtype::BF16, Dtype::F64] {
        let bytes = bytes_as(&small, dtype);
        let from_file = StateDict::from_safetensors_file(file("ok.safetensors", &bytes)).unwrap();
        let from_bytes = StateDict::from_safetensors_bytes(&bytes, "x").unwrap();
        assert_eq!(from_file.tensors, from_bytes.tensors, "{dtype:?}");
    }
    let bytes = small.to_safetensors_bytes().unwrap();
    let kind = |e: &WeightsError| std::mem::discriminant(e);
    let mut cases: Vec<(String, Vec<u8>)> = [0, 7, 8, 12, bytes.len() / 2, bytes.len() - 1].iter().map(|&c| (format!("cut {c}"), bytes[..c].to_vec())).collect();
    cases.push(("trailing byte".into(), [&bytes[..], &[0]].concat()));
    cases.push(("junk".into(), b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}".to_vec()));
    cases.push(("huge header".into(), [&u64::MAX.to_le_bytes()[..], b"{}"].concat()));
    cases.push(("int".into(), bytes_as(&small, Dtype::I64)));
    let mut nan = small.clone();
    nan.tensors.get_mut("b").unwrap().data[1] = f32::NAN;
    cases.push(("nan".into(), nan.to_safetensors_bytes().unwrap()));
    for (name, bytes) in cases {
        let from_bytes = StateDict::from_safetensors_bytes(&bytes, "x").unwrap_err();
        let from_file = StateDict::from_safetensors_file(file("bad.safetensors", &bytes)).unwrap_err();
        assert_eq!(kind(&from_file), kind(&from_bytes), "{name}: {from_file} / {from_bytes}");
        assert!(from_file.to_string().contains("bad.safetensors"), "{name}: {from_file}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
