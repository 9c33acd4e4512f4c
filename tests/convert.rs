//! `.pth` -> safetensors on checkpoints written here in the exact layout `torch.save` uses (zip of a protocol-2
//! pickle whose tensors are `torch._utils._rebuild_tensor_v2` over persistent storages in `archive/data/N`).

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};

use mask_rcnn_burn::error::WeightsError;
use mask_rcnn_burn::ModelConfig;
use mask_rcnn_burn::weights::{HostTensor, StateDict, convert_pth, resolve_weights_in};

/// A minimal pickle writer for what torch.save emits.
struct Pickle(Vec<u8>);

impl Pickle {
    fn op(&mut self, b: u8) {
        self.0.push(b);
    }
    fn str(&mut self, s: &str) {
        self.op(b'X'); // BINUNICODE
        self.0.extend((s.len() as u32).to_le_bytes());
        self.0.extend(s.as_bytes());
    }
    fn int(&mut self, v: usize) {
        self.op(b'J'); // BININT
        self.0.extend((v as i32).to_le_bytes());
    }
    fn global(&mut self, module: &str, name: &str) {
        self.op(b'c');
        self.0.extend(format!("{module}\n{name}\n").as_bytes());
    }
    fn tuple_of(&mut self, items: &[usize]) {
        self.op(b'(');
        for &i in items {
            self.int(i);
        }
        self.op(b't');
    }
    fn ordered_dict(&mut self) {
        self.global("collections", "OrderedDict");
        self.op(b')'); // EMPTY_TUPLE
        self.op(b'R'); // REDUCE
    }
    /// `_rebuild_tensor_v2(storage, 0, size, stride, False, OrderedDict())`, storage `key` of `numel` floats.
    fn tensor(&mut self, key: usize, shape: &[usize], storage_type: &str) {
        self.global("torch._utils", "_rebuild_tensor_v2");
        self.op(b'(');
        self.op(b'(');
        self.str("storage");
        self.global("torch", storage_type);
        self.str(&key.to_string());
        self.str("cpu");
        self.int(shape.iter().product());
        self.op(b't');
        self.op(b'Q'); // BINPERSID
        self.int(0);
        self.tuple_of(shape);
        let strides: Vec<usize> = (0..shape.len()).map(|i| shape[i + 1..].iter().product()).collect();
        self.tuple_of(&strides);
        self.op(0x89); // NEWFALSE
        self.ordered_dict();
        self.op(b't');
        self.op(b'R');
    }
}

/// Writes `{'meta': {'epoch': 24, 'CLASSES': ('person', 'car')}, 'state_dict': OrderedDict(...)}` as torch.save
/// does; `f16` stores every tensor as HalfStorage.
fn write_pth(path: &Path, tensors: &[(&str, Vec<usize>, Vec<f32>)], f16: bool) {
    let mut p = Pickle(vec![0x80, 2]); // PROTO 2
    p.op(b'}'); // EMPTY_DICT
    p.op(b'(');
    p.str("meta");
    p.op(b'}');
    p.op(b'(');
    p.str("epoch");
    p.int(24);
    p.str("CLASSES");
    p.op(b'(');
    p.str("person");
    p.str("car");
    p.op(b't');
    p.op(b'u'); // SETITEMS
    p.str("state_dict");
    p.ordered_dict();
    p.op(b'(');
    for (i, (key, shape, _)) in tensors.iter().enumerate() {
        p.str(key);
        p.tensor(i, shape, if f16 { "HalfStorage" } else { "FloatStorage" });
    }
    p.op(b'u');
    p.op(b'u');
    p.op(b'.'); // STOP
    let file = std::fs::File::create(path).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored).with_alignment(64);
    zip.start_file("archive/data.pkl", opts).unwrap();
    zip.write_all(&p.0).unwrap();
    zip.start_file("archive/byteorder", opts).unwrap();
    zip.write_all(b"little").unwrap();
    for (i, (_, _, data)) in tensors.iter().enumerate() {
        zip.start_file(format!("archive/data/{i}"), opts).unwrap();
        let bytes: Vec<u8> = if f16 {
            data.iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()).collect()
        } else {
            data.iter().flat_map(|v| v.to_le_bytes()).collect()
        };
        zip.write_all(&bytes).unwrap();
    }
    zip.start_file("archive/version", opts).unwrap();
    zip.write_all(b"3\n").unwrap();
    zip.finish().unwrap();
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mask-rcnn-burn-convert-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
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
        assert_eq!(back.tensors[key], HostTensor { shape, data }, "{key}");
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
    let tensors: Vec<(&str, Vec<usize>, Vec<f32>)> = dict.tensors.iter().map(|(k, t)| (k.as_str(), t.shape.clone(), t.data.clone())).collect();
    let pth = scratch("r50.pth");
    write_pth(&pth, &tensors, false);
    let back = StateDict::from_pth(&pth).unwrap();
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
