//! The example binary end to end: detections JSON against mmdetection's, the annotated PNG, and bad input.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use mask_rcnn_burn::eval::{CocoResult, DetRef, decode_dense, mask_overlap, match_detections};

/// target/release/examples/infer, built by `cargo test` beside this test binary.
fn infer_bin() -> PathBuf {
    let deps = std::env::current_exe().unwrap().parent().unwrap().to_path_buf();
    let bin = deps.parent().unwrap().join("examples").join(format!("infer{}", std::env::consts::EXE_SUFFIX));
    assert!(bin.is_file(), "{} is not built (cargo test builds examples)", bin.display());
    bin
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mask-rcnn-burn-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn run(args: &[&str]) -> Output {
    let out = Command::new(infer_bin()).args(args).env("MASK_RCNN_BURN_CACHE", scratch("cache")).output().unwrap();
    println!("stdout:\n{}\nstderr:\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    out
}

/// A config file deriving from r50-2x with the 320x240 test scale of the r50_hopper_320 fixture.
fn config_320() -> PathBuf {
    let path = scratch("r50_320.toml");
    std::fs::write(&path, "base = \"mask-rcnn_r50_fpn_gn-all_2x_coco.toml\"\nname = \"r50-320\"\n[preprocess]\nscale = [320, 240]\n").unwrap();
    path
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn infer_writes_json_that_matches_mmdetection_and_a_png() {
    let image = fixtures().join("images/hopper_640x480.png");
    let (json, png) = (scratch("out.json"), scratch("out.png"));
    let cfg = config_320();
    let out = run(&[s(&image), "--model", s(&cfg), "--weights", s(synth_weights_file()), "--device", "flex", "--json", s(&json), "--output", s(&png), "--timings"]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("backbone+fpn") && stdout.contains("detections"), "{stdout}");

    let results: Vec<CocoResult> = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let fixture = case_detections("r50_hopper_320");
    let reference: Vec<DetRef> = fixture.detections.iter().map(FixtureDetection::as_ref).collect();
    let ours: Vec<DetRef> = results
        .iter()
        .map(|r| DetRef { bbox: [r.bbox[0], r.bbox[1], r.bbox[0] + r.bbox[2], r.bbox[1] + r.bbox[3]], score: r.score, label: r.label })
        .collect();
    let pairs = match_detections(&reference, &ours, 0.98, 2e-3);
    let (mut inter, mut union) = (0, 0);
    for &(r, o) in &pairs {
        assert_eq!(results[o].segmentation.size, [480, 640]);
        let (i, u) = mask_overlap(&decode_dense(&results[o].segmentation).unwrap(), &decode_dense(&fixture.detections[r].rle).unwrap());
        inter += i;
        union += u;
    }
    let config = mask_rcnn_burn::ModelConfig::named("r50-2x").unwrap();
    for r in &results {
        assert_eq!(r.category_id, config.dataset.category_ids[r.label]);
        assert_eq!(r.class, config.dataset.classes[r.label]);
    }
    println!("{} of {} matched, mask I/U {}", pairs.len(), reference.len(), inter as f64 / union as f64);
    assert!(pairs.len() >= 98);
    assert!(inter as f64 / union as f64 >= 0.99);

    let decoded = image::open(&png).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (640, 480));
}

#[test]
fn bad_input_is_a_one_line_error_and_no_output() {
    let weights = synth_weights_file();
    let good = fixtures().join("images/hopper_640x480.png");
    let text = scratch("not_an_image.png");
    std::fs::write(&text, "hello, this is text").unwrap();
    let empty = scratch("empty.png");
    std::fs::write(&empty, b"").unwrap();
    let missing = scratch("missing.png");
    let not_ckpt = scratch("not_a_checkpoint.pth");
    std::fs::write(&not_ckpt, b"PK\x03\x04 this is not a zip archive at all").unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec![s(&missing), "--weights", s(weights)], "missing.png"),
        (vec![s(&text), "--weights", s(weights)], "cannot be decoded"),
        (vec![s(&empty), "--weights", s(weights)], "empty"),
        (vec![s(&good), "--model", "r152-9x", "--weights", s(weights)], "unknown model config"),
        (vec![s(&good), "--weights", s(&not_ckpt), "--device", "flex"], "not_a_checkpoint.pth"),
        (vec![s(&good), "--weights", s(weights), "--device", "tpu"], "unknown device"),
    ];
    for (args, needle) in cases {
        let json = scratch("never.json");
        let mut all = args.clone();
        all.extend(["--json", s(&json)]);
        let out = run(&all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: not one line: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(!json.exists(), "{args:?} left an output file");
    }
}
