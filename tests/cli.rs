//! The example binary end to end: detections JSON against mmdetection's, the annotated PNG, and bad input.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use mask_rcnn_burn::eval::{CocoResult, DetRef, decode_dense, mask_overlap, match_detections};

fn scratch(name: &str) -> PathBuf {
    scratch_file("cli", name)
}

fn run(args: &[&str]) -> Output {
    run_with_env(args, &[])
}

fn run_with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(infer_bin());
    cmd.args(args).env("MASK_RCNN_BURN_CACHE", scratch("cache")).envs(env.iter().copied());
    let out = cmd.output().unwrap();
    println!("stdout:\n{}\nstderr:\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    out
}

/// A config file deriving from r50-2x with the 320x240 test scale of the r50_hopper_320 fixture.
fn config_320() -> PathBuf {
    let path = scratch("r50_320.toml");
    std::fs::write(&path, "base = \"mask-rcnn_r50_fpn_gn-all_2x_coco.toml\"\nname = \"r50-320\"\n[test]\nscale = [320, 240]\n").unwrap();
    path
}

/// The CLI's COCO JSON and its (fixture, ours) matches against mmdetection's r50_hopper_320 detections
/// (label, box IoU >= 0.98, |score diff| <= 2e-3).
fn match_json(json: &Path) -> (Vec<CocoResult>, Vec<(usize, usize)>) {
    let results: Vec<CocoResult> = serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    let reference: Vec<DetRef> = case_detections("r50_hopper_320").detections.iter().map(FixtureDetection::as_ref).collect();
    let ours: Vec<DetRef> = results
        .iter()
        .map(|r| DetRef { bbox: [r.bbox[0], r.bbox[1], r.bbox[0] + r.bbox[2], r.bbox[1] + r.bbox[3]], score: r.score, label: r.label })
        .collect();
    let pairs = match_detections(&reference, &ours, 0.98, 2e-3);
    (results, pairs)
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

    let (results, pairs) = match_json(&json);
    let fixture = case_detections("r50_hopper_320");
    let reference = &fixture.detections;
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

/// On a machine without XDG_RUNTIME_DIR (servers, containers, CI) `--device auto` prints one line on stderr, the
/// adapter it chose and why: the Vulkan probe used to leak "XDG_RUNTIME_DIR is invalid or not set" twice (Mesa's
/// device-select layer).
#[test]
fn the_device_probe_is_quiet_without_xdg_runtime_dir() {
    let image = fixtures().join("images/hopper_640x480.png");
    let cfg = config_320();
    let out = Command::new(infer_bin())
        .args([s(&image), "--model", s(&cfg), "--weights", s(synth_weights_file()), "--device", "auto"])
        .env("MASK_RCNN_BURN_CACHE", scratch("cache"))
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "stderr: {stderr}");
    assert!(stderr.starts_with("device: ") && !stderr.contains("XDG_RUNTIME_DIR"), "stderr: {stderr}");
}

/// With no Vulkan driver visible (the loader pointed at a missing one), asking for a GPU is a one-line error,
/// not wgpu's OpenGL fallback (which deadlocks on Mesa's llvmpipe).
#[test]
fn a_gpu_device_without_a_vulkan_driver_is_an_error() {
    let weights = synth_weights_file();
    let image = fixtures().join("images/hopper_640x480.png");
    let no_driver = [("VK_ICD_FILENAMES", "/nonexistent/icd.json"), ("VK_DRIVER_FILES", "/nonexistent/icd.json")];
    for device in ["wgpu", "vulkan"] {
        let out = run_with_env(&[s(&image), "--weights", s(weights), "--device", device], &no_driver);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "--device {device} succeeded");
        assert!(stderr.contains("no Vulkan, Metal or DX12 adapter"), "{device}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{device}: not one line: {stderr}");
    }
}

#[test]
fn without_weights_the_official_checkpoint_is_downloaded_converted_once_and_reused() {
    // A "published" checkpoint: the synthetic R-50 weights as a torch.save-layout .pth on a local server that
    // answers one request only; the config names it with its sha256 prefix, as mmdetection's file names do.
    let dict = mask_rcnn_burn::weights::synth::Manifest::from_file(fixtures().join("r50_seed1.manifest.json")).unwrap().generate().unwrap();
    let tensors: Vec<(&str, Vec<usize>, Vec<f32>)> = dict.tensors.iter().map(|(k, t)| (k.as_str(), t.shape.clone(), t.data.to_vec())).collect();
    let pth = scratch("published.pth");
    common::pth::write_pth(&pth, &tensors, false);
    let sha = mask_rcnn_burn::weights::download::sha256_file(&pth).unwrap();
    let (url, log) = common::http::serve(std::fs::read(&pth).unwrap(), 1, 0);
    let cfg = scratch("published.toml");
    std::fs::write(
        &cfg,
        format!(
            "base = \"mask-rcnn_r50_fpn_gn-all_2x_coco.toml\"\nname = \"published\"\n[test]\nscale = [320, 240]\n\
             [checkpoint]\nfile = \"synth_r50_20260101-{}.pth\"\nurl = \"{url}\"\n",
            &sha[..8]
        ),
    )
    .unwrap();
    let image = fixtures().join("images/hopper_640x480.png");
    for attempt in 0..2 {
        let json = scratch(&format!("published_{attempt}.json"));
        let out = run(&[s(&image), "--model", s(&cfg), "--device", "flex", "--json", s(&json)]);
        assert!(out.status.success(), "attempt {attempt}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(match_json(&json).1.len() >= 98, "attempt {attempt}");
    }
    assert_eq!(log.lock().unwrap().len(), 1, "the second run reused the converted file");
    let converted = std::fs::read_dir(scratch("cache").join("converted")).unwrap().next().unwrap().unwrap().path();
    assert!(converted.file_name().unwrap().to_str().unwrap().starts_with(&format!("synth_r50_20260101-{}-", &sha[..8])), "{}", converted.display());
    // 3 x 174 MiB: do not leave them in the temporary directory.
    for big in [pth, converted, scratch("cache").join(format!("synth_r50_20260101-{}.pth", &sha[..8]))] {
        std::fs::remove_file(big).unwrap();
    }
}

/// A folder of 9 files (8 images: PNG and JPEG copies of the fixture photos, and one corrupt file) with a COCO
/// instances file: results JSON, the COCO summary and its JSON; the corrupt file is named on stderr and skipped
/// (exit status 3); with three streams, the same results file. Then a run killed part-way and resumed holds every
/// image exactly once, with the same results.
#[test]
fn a_coco_folder_runs_evaluates_skips_a_bad_file_and_resumes() {
    let dir = scratch("dataset");
    std::fs::create_dir_all(&dir).unwrap();
    let (hopper, coffee) = (fixtures().join("images/hopper_640x480.png"), fixtures().join("images/coffee_600x400.png"));
    let coffee_jpeg = fixtures().join("images/coffee_600x400_q85.jpg");
    let mut images = Vec::new();
    for (i, src) in [&hopper, &coffee, &coffee_jpeg, &hopper, &coffee, &coffee_jpeg, &hopper, &coffee].iter().enumerate() {
        let ext = src.extension().unwrap().to_str().unwrap();
        let name = format!("img{i}.{ext}");
        std::fs::copy(src, dir.join(&name)).unwrap();
        images.push((i as u64 + 1, name, src == &&hopper));
    }
    std::fs::write(dir.join("broken.jpg"), b"\xFF\xD8\xFF\xE0 not really a jpeg").unwrap();
    // Ground truth: the coco_eval fixture's hopper (image 1) and coffee (image 2) annotations on every copy.
    let gt: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fixtures().join("coco_eval/instances.json")).unwrap()).unwrap();
    let (mut anns, mut entries) = (Vec::new(), Vec::new());
    for (id, name, is_hopper) in &images {
        let (w, h, src_id) = if *is_hopper { (640, 480, 1) } else { (600, 400, 2) };
        entries.push(serde_json::json!({"id": id, "file_name": name, "width": w, "height": h}));
        for a in gt["annotations"].as_array().unwrap().iter().filter(|a| a["image_id"] == src_id) {
            let mut a = a.clone();
            a["image_id"] = serde_json::json!(id);
            a["id"] = serde_json::json!(anns.len() + 1);
            anns.push(a);
        }
    }
    entries.push(serde_json::json!({"id": 99, "file_name": "broken.jpg", "width": 10, "height": 10}));
    let instances = scratch("instances.json");
    let doc = serde_json::json!({"images": entries, "annotations": anns, "categories": gt["categories"]});
    std::fs::write(&instances, doc.to_string()).unwrap();

    let (cfg, weights) = (config_320(), synth_weights_file());
    let (json, eval_json) = (scratch("dataset.json"), scratch("eval.json"));
    let base = ["--model", s(&cfg), "--weights", s(weights), "--device", "flex", "--annotations", s(&instances), "--images", s(&dir)];
    let mut args = base.to_vec();
    args.extend(["--batch", "2", "--json", s(&json), "--eval-json", s(&eval_json)]);
    let out = run(&args);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(3), "some images failed: {stderr}");
    assert!(stderr.contains("broken.jpg") && !stderr.contains("panicked"), "{stderr}");
    assert!(stdout.contains("9 images in") && stdout.contains("1 failed"), "{stdout}");
    assert!(stdout.contains("COCO bbox:") && stdout.contains("Average Precision"), "{stdout}");
    let eval: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&eval_json).unwrap()).unwrap();
    assert_eq!(eval["bbox"].as_object().unwrap().len(), 12);
    assert!(eval["segm"]["AP"].as_f64().unwrap() >= 0.0);
    let full: Vec<CocoResult> = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let per_image = |rs: &[CocoResult]| {
        let mut m = std::collections::BTreeMap::<u64, usize>::new();
        rs.iter().for_each(|r| *m.entry(r.image_id).or_default() += 1);
        m
    };
    assert_eq!(per_image(&full).keys().copied().collect::<Vec<_>>(), (1..=8).collect::<Vec<_>>());

    // Three streams, batches of 2: the same results file, byte for byte (results handed on in input order).
    let streamed = scratch("streamed.json");
    let mut args = base.to_vec();
    args.extend(["--batch", "2", "--streams", "3", "--json", s(&streamed)]);
    let out = run(&args);
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("broken.jpg"));
    assert_eq!(std::fs::read_to_string(&streamed).unwrap(), std::fs::read_to_string(&json).unwrap());

    // Killed once three images are done, then resumed: the same results, each image exactly once.
    let resumed = scratch("resumed.json");
    let done = std::path::PathBuf::from(format!("{}.done", resumed.display()));
    let mut args = base.to_vec();
    args.extend(["--json", s(&resumed)]);
    let mut child = Command::new(infer_bin()).args(&args).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    let start = std::time::Instant::now();
    while std::fs::read_to_string(&done).map(|t| t.lines().count()).unwrap_or(0) < 3 && start.elapsed().as_secs() < 120 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before = std::fs::read_to_string(&done).unwrap().lines().count();
    assert!(before >= 3 && before < 8, "killed after {before} images");
    let mut args = base.to_vec();
    args.extend(["--json", s(&resumed), "--resume"]);
    let out = run(&args);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("resuming: {before} of 9 images already done")));
    let ids: Vec<u64> = std::fs::read_to_string(&done).unwrap().lines().map(|l| l.parse().unwrap()).collect();
    let unique: std::collections::BTreeSet<u64> = ids.iter().copied().collect();
    assert_eq!((ids.len(), unique.len()), (8, 8), "every image done exactly once: {ids:?}");
    let again: Vec<CocoResult> = serde_json::from_str(&std::fs::read_to_string(&resumed).unwrap()).unwrap();
    assert_eq!(per_image(&again), per_image(&full), "the resumed run holds each image's results once");
    std::fs::remove_dir_all(&dir).ok();
}
