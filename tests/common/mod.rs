//! Shared helpers of the parity tests: fixture files, synthetic weights, error metrics.
#![allow(dead_code)]

pub mod http;
pub mod pth;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use burn::tensor::{Device, Tensor};
use mask_rcnn_burn::eval::{CocoRle, DetRef, decode_dense, mask_overlap, match_detections};
use mask_rcnn_burn::internals::box_iou;
use mask_rcnn_burn::weights::synth::Manifest;
use mask_rcnn_burn::{BgrImage, Detector, ModelConfig};
use safetensors::SafeTensors;
use serde::Deserialize;

/// `name` in the scratch folder of the running test (`$TMP/mask-rcnn-burn-<suite>-<pid>/<test function>/`),
/// created: tests running in parallel never share a scratch file. The folders of earlier runs of the suite whose
/// process has ended are removed on first use (kept until then, to look at after a failure).
pub fn scratch_file(suite: &str, name: &str) -> PathBuf {
    static CLEANED: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let mut cleaned = CLEANED.lock().unwrap();
    if !cleaned.iter().any(|s| s == suite) {
        remove_stale_scratch(suite);
        cleaned.push(suite.to_string());
    }
    drop(cleaned);
    let test = std::thread::current().name().unwrap_or("main").replace("::", "-");
    let dir = std::env::temp_dir().join(format!("mask-rcnn-burn-{suite}-{}", std::process::id())).join(test);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Removes `$TMP/mask-rcnn-burn-<suite>-<pid>` folders whose process no longer runs (Linux: no `/proc/<pid>`).
fn remove_stale_scratch(suite: &str) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let prefix = format!("mask-rcnn-burn-{suite}-");
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(&prefix).and_then(|p| p.parse::<u32>().ok()) else { continue };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            std::fs::remove_dir_all(entry.path()).ok();
        }
    }
}

/// target/release/examples/infer, built from the current sources (see [`example_bin`]).
pub fn infer_bin() -> PathBuf {
    example_bin("infer")
}

/// An example binary of this crate, built from the current sources first (once per test process): `cargo test
/// --test X` builds no example, so a binary left by an earlier build could be stale or missing.
pub fn example_bin(name: &str) -> PathBuf {
    static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let deps = std::env::current_exe().unwrap().parent().unwrap().to_path_buf();
    let bin = deps.parent().unwrap().join("examples").join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let mut built = BUILT.lock().unwrap();
    if !built.iter().any(|b| b == name) {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
        let out = std::process::Command::new(env!("CARGO"))
            .args(["build", "--release", "--example", name, "--manifest-path"])
            .arg(&manifest)
            .output()
            .expect("cargo runs");
        assert!(out.status.success(), "cargo build --example {name} failed:\n{}", String::from_utf8_lossy(&out.stderr));
        built.push(name.to_string());
    }
    assert!(bin.is_file(), "{} is not where cargo builds it", bin.display());
    bin
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The synth-v1 weights of a manifest in tests/fixtures, regenerated (and checked against the manifest's
/// checksums) and written as a safetensors file with mmdetection's keys, for the real loader to read. The file
/// (174 MiB for R-50) is shared by test processes and runs: rewritten (atomically) only when its bytes differ.
pub fn synth_weights_for(manifest_name: &str) -> PathBuf {
    static FILES: Mutex<Vec<(String, PathBuf)>> = Mutex::new(Vec::new());
    let mut files = FILES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, path)) = files.iter().find(|(m, _)| m == manifest_name) {
        return path.clone();
    }
    let manifest = Manifest::from_file(fixtures().join(manifest_name)).expect("manifest");
    let dict = manifest.generate().expect("synth weights match the manifest");
    let stem = manifest_name.trim_end_matches(".manifest.json");
    let path = std::env::temp_dir().join(format!("mask-rcnn-burn-synth-v1-{stem}.safetensors"));
    let bytes = dict.to_safetensors_bytes().expect("serialise synth weights");
    if std::fs::read(&path).ok().as_deref() != Some(&bytes[..]) {
        dict.write_safetensors(&path).expect("write synth weights");
    }
    files.push((manifest_name.to_string(), path.clone()));
    path
}

/// The R-50 seed-1 weights of the shared fixtures.
pub fn synth_weights_file() -> &'static Path {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| synth_weights_for("r50_seed1.manifest.json"))
}

/// The detector of a fixture case: its mmdetection config (from meta.json) and its synthetic weights.
pub fn case_detector(case: &str, device: Device) -> Detector {
    let meta = case_meta(case);
    // "r101_s2.safetensors" or "r50_gnws_seed4.safetensors" -> "r101_seed2.manifest.json", "r50_gnws_seed4.manifest.json"
    let stem = meta.weights.trim_end_matches(".safetensors");
    let (model, seed) = stem.rsplit_once("_seed").or_else(|| stem.rsplit_once("_s")).expect("weights name");
    let weights = synth_weights_for(&format!("{model}_seed{seed}.manifest.json"));
    Detector::from_safetensors(case_config(case), weights, device).expect("load synth weights")
}

/// The config of a fixture case: mmdetection's config it names, with the case's test scale when overridden.
pub fn case_config(case: &str) -> ModelConfig {
    let meta = case_meta(case);
    let mut config = ModelConfig::named(meta.config.trim_end_matches(".py")).unwrap();
    if let Some(scale) = meta.scale_override {
        config.test.scale = scale;
    }
    config
}

#[derive(Deserialize)]
pub struct CaseMeta {
    pub config: String,
    pub weights: String,
    pub image: String,
    pub scale_override: Option<[u32; 2]>,
    pub metainfo: MetaInfo,
}

#[derive(Deserialize)]
pub struct MetaInfo {
    pub ori_shape: [usize; 2],
    pub img_shape: [usize; 2],
    pub pad_shape: [usize; 2],
    pub scale_factor: [f64; 2],
}

pub fn case_meta(case: &str) -> CaseMeta {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join(case).join("meta.json")).unwrap()).unwrap()
}

#[derive(Deserialize)]
pub struct CaseDetections {
    pub input_stats: InputStats,
    pub proposals: Vec<[f32; 5]>,
    pub detections: Vec<FixtureDetection>,
}

#[derive(Deserialize)]
pub struct InputStats {
    pub shape: Vec<usize>,
    pub sum: f64,
    pub abs_sum: f64,
    pub stride: usize,
    pub sample: Vec<f64>,
}

#[derive(Deserialize)]
pub struct FixtureDetection {
    pub bbox: [f32; 4],
    pub score: f32,
    pub label: usize,
    pub area: u64,
    pub rle: CocoRle,
}

impl FixtureDetection {
    pub fn as_ref(&self) -> DetRef {
        DetRef { bbox: self.bbox, score: self.score, label: self.label }
    }
}

pub fn case_detections(case: &str) -> CaseDetections {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join(case).join("detections.json")).unwrap()).unwrap()
}

/// The stage tensors of r50_hopper_320 (see tests/fixtures/make_fixtures.py for the channel subsampling).
pub struct Stages {
    bytes: Vec<u8>,
}

/// A stored stage tensor; `channel_step` > 1 when only channels 0, k, 2k, ... were kept.
pub struct StageTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
    pub channel_step: usize,
}

impl Stages {
    pub fn load() -> Self {
        Self { bytes: std::fs::read(fixtures().join("r50_hopper_320/stages.safetensors")).unwrap() }
    }

    pub fn get(&self, name: &str) -> StageTensor {
        let st = SafeTensors::deserialize(&self.bytes).unwrap();
        let (key, step) = st
            .names()
            .into_iter()
            .find_map(|k| {
                if k == name {
                    Some((k.to_string(), 1))
                } else {
                    k.strip_prefix(&format!("{name}@c")).map(|s| (k.to_string(), s.parse().unwrap()))
                }
            })
            .unwrap_or_else(|| panic!("no stage {name}"));
        let view = st.tensor(&key).unwrap();
        let data = match view.dtype() {
            safetensors::Dtype::F32 => view.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect(),
            safetensors::Dtype::I64 => view.data().chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap()) as f32).collect(),
            d => panic!("dtype {d:?}"),
        };
        StageTensor { shape: view.shape().to_vec(), data, channel_step: step }
    }
}

/// Our tensor's values at the fixture's kept channels (dim 1), row-major.
pub fn take_channels<const D: usize>(t: Tensor<D>, step: usize) -> Vec<f32> {
    let dims = t.dims();
    let data = t.into_data().try_into_vec::<f32>().unwrap();
    if step == 1 {
        return data;
    }
    let inner: usize = dims[2..].iter().product();
    let mut out = Vec::new();
    for n in 0..dims[0] {
        for c in (0..dims[1]).step_by(step) {
            let start = (n * dims[1] + c) * inner;
            out.extend_from_slice(&data[start..start + inner]);
        }
    }
    out
}

/// `||a - b|| / ||b||` and `max |a - b|`.
pub fn errors(ours: &[f32], reference: &[f32]) -> (f64, f64) {
    assert_eq!(ours.len(), reference.len(), "length");
    let (mut num, mut den, mut max) = (0f64, 0f64, 0f64);
    for (a, b) in ours.iter().zip(reference) {
        let d = (*a as f64 - *b as f64).abs();
        num += d * d;
        den += (*b as f64) * (*b as f64);
        max = max.max(d);
    }
    ((num / den.max(1e-30)).sqrt(), max)
}

/// Asserts a stage within relative L2 `rel` and max abs `abs`, printing the figures either way.
pub fn assert_close(name: &str, ours: &[f32], reference: &[f32], rel: f64, abs: f64) {
    let (r, m) = errors(ours, reference);
    println!("{name}: rel L2 {r:.3e}, max abs {m:.3e} ({} values)", reference.len());
    assert!(r <= rel && m <= abs, "{name}: rel L2 {r:.3e} (bound {rel:e}), max abs {m:.3e} (bound {abs:e})");
}

/// The image a fixture case was made from.
pub fn case_image(case: &str) -> BgrImage {
    BgrImage::open(fixtures().join("images").join(case_meta(case).image)).unwrap()
}

/// `ours` matched against `reference` (label, box IoU >= `iou`, |score diff| <= `score_tol`): (pairs, mask
/// intersection/union over the pairs).
pub fn match_against(reference: &mask_rcnn_burn::Detections, ours: &mask_rcnn_burn::Detections, iou: f32, score_tol: f32) -> (usize, f64) {
    let as_ref = |d: &mask_rcnn_burn::Detection| DetRef { bbox: d.bbox, score: d.score, label: d.label };
    let pairs = match_detections(
        &reference.items.iter().map(as_ref).collect::<Vec<_>>(),
        &ours.items.iter().map(as_ref).collect::<Vec<_>>(),
        iou,
        score_tol,
    );
    let (mut inter, mut union) = (0u64, 0u64);
    for &(r, o) in &pairs {
        let (i, u) = mask_overlap(&reference.items[r].mask.to_dense(), &ours.items[o].mask.to_dense());
        inter += i;
        union += u;
    }
    (pairs.len(), inter as f64 / union.max(1) as f64)
}

/// The case's image through `det`, matched against mmdetection's 100 detections (label, box IoU >= `iou`,
/// |score diff| <= `score_tol`): (pairs matched, mask intersection/union over the pairs).
pub fn check_end_to_end(case: &str, det: Detector, iou: f32, score_tol: f32) -> (usize, f64) {
    let ours = det.predict(&case_image(case)).unwrap();
    let fixture = case_detections(case);
    let reference: Vec<DetRef> = fixture.detections.iter().map(FixtureDetection::as_ref).collect();
    let candidates: Vec<DetRef> = ours.items.iter().map(|d| DetRef { bbox: d.bbox, score: d.score, label: d.label }).collect();
    let pairs = match_detections(&reference, &candidates, iou, score_tol);
    let (mut inter, mut union) = (0u64, 0u64);
    for &(r, o) in &pairs {
        let theirs = decode_dense(&fixture.detections[r].rle).expect("fixture RLE");
        assert_eq!(theirs.iter().filter(|v| **v != 0).count() as u64, fixture.detections[r].area);
        let (i, u) = mask_overlap(&ours.items[o].mask.to_dense(), &theirs);
        inter += i;
        union += u;
    }
    let mean_iou = pairs.iter().map(|&(r, o)| box_iou(&reference[r].bbox, &candidates[o].bbox)).sum::<f32>() / pairs.len().max(1) as f32;
    let mask_ratio = inter as f64 / union.max(1) as f64;
    println!(
        "{case}: {} of {} detections matched (ours {}), mean box IoU {mean_iou:.5}, mask I/U {mask_ratio:.5}",
        pairs.len(),
        reference.len(),
        ours.len()
    );
    assert!(reference.len() == 100, "fixture has {} detections", reference.len());
    (pairs.len(), mask_ratio)
}

/// [`check_end_to_end`] with the f32 tests' thresholds (label, box IoU >= 0.98, |score diff| <= 2e-3), asserting
/// all 100 matched and mask intersection/union >= 0.9995 over the pairs (measured 0.99983..0.99997 on the seven
/// cases; the margin is ~1/3 of the measured loss). `label` names the device.
pub fn assert_end_to_end(case: &str, det: Detector, label: &str) {
    let (matched, mask) = check_end_to_end(case, det, 0.98, 2e-3);
    println!("{label} {case}: {matched}/100 matched, mask I/U {mask:.5}");
    assert_eq!(matched, 100, "{label} {case}: only {matched} of 100 detections matched");
    assert!(mask >= 0.9995, "{label} {case}: mask intersection/union {mask}");
}
