//! Where the GPU path stands on this machine, in one command and with no files: for every wgpu adapter API
//! present (wgpu's default, Vulkan), R-50 and R-101 with synthetic weights at f32 and f16 —
//! parity with flex on the same machine, warm per-stage timings, read-backs per image — as a markdown table on
//! stdout and the same as JSON.
//!
//!     cargo run --release --example gpu_report -- --json report.json
//!     cargo run --release --example gpu_report -- --small --proposals 20 --detections 5 --iters 1 --models r50 --precisions f32 --devices wgpu   # CI, lavapipe
//!
//! Input: the coffee fixture photo, embedded in the binary, at the configs' 1333x800 scale (800x1216 padded), or
//! at 320x240 (224x320 padded) with `--small`. Weights: `weights::synth::random_state_dict` (every key, the
//! checkpoints' shapes, 1000 proposals as with trained weights).

use std::time::{Duration, Instant};

use burn::tensor::Device;
use clap::Parser;
use mask_rcnn_burn::device::adapters;
use mask_rcnn_burn::eval::{DetRef, mask_overlap, match_detections};
use mask_rcnn_burn::internals::{box_iou, launches, readback};
use mask_rcnn_burn::weights::synth::random_state_dict;
use mask_rcnn_burn::{BgrImage, Detections, Detector, DeviceProfile, DeviceSpec, ModelConfig, Precision, StageTimings};
use serde::Serialize;

const PHOTO: &[u8] = include_bytes!("../tests/fixtures/images/coffee_600x400.png");

#[derive(Parser)]
#[command(about = "GPU report: parity with flex, per-stage timings and read-backs on every wgpu adapter API")]
struct Args {
    /// 320x240 test scale instead of 1333x800 (for software adapters and CI).
    #[arg(long)]
    small: bool,
    /// Timed runs per configuration after two warm-up runs; the report gives their median.
    #[arg(long, default_value_t = 10)]
    iters: usize,
    /// Models, comma-separated (r50, r101).
    #[arg(long, default_value = "r50,r101", value_delimiter = ',')]
    models: Vec<String>,
    /// Precisions, comma-separated (f32, f16).
    #[arg(long, default_value = "f32,f16", value_delimiter = ',')]
    precisions: Vec<Precision>,
    /// Devices, comma-separated (wgpu: its default API, vulkan: pinned to Vulkan; wgpu:N / vulkan:N: adapter N).
    #[arg(long, default_value = "wgpu,vulkan", value_delimiter = ',')]
    devices: Vec<DeviceSpec>,
    /// Images per `predict_batch` call for the batched throughput column (1: no batched run).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=16))]
    batch: u32,
    /// Proposals kept per image (the configs' 1000 by default; fewer for a quick run on a software adapter).
    #[arg(long)]
    proposals: Option<usize>,
    /// Detections kept per image (the configs' 100 by default; fewer for a quick run on a software adapter).
    #[arg(long)]
    detections: Option<usize>,
    /// Also write the report as JSON here.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

#[derive(Serialize)]
struct Report {
    adapters: Vec<mask_rcnn_burn::device::AdapterSummary>,
    input: [usize; 2],
    proposals: usize,
    iters: usize,
    rows: Vec<Row>,
}

#[derive(Serialize)]
struct Row {
    device: String,
    model: String,
    precision: String,
    /// Detections of flex (f32, same machine) matched: label, box IoU >= 0.98, |score diff| <= 2e-3.
    matched_strict: usize,
    /// ... at box IoU >= 0.9, |score diff| <= 0.02 (the f16 bar).
    matched_loose: usize,
    reference: usize,
    mask_iou: f64,
    mean_box_iou: f32,
    first_run_ms: f64,
    median_ms: StageMs,
    images_per_s: f64,
    readbacks_per_image: u64,
    readback_bytes_per_image: u64,
    /// This crate's kernel launches for one image (Burn's own are not counted).
    launches_per_image: u64,
    /// Images per `predict_batch` call (1: not measured).
    batch: usize,
    /// Images/s through `predict_batch` of that many copies of the image (median call).
    batch_images_per_s: Option<f64>,
    /// Every image of the batch gave exactly the detections of `predict` alone.
    batch_identical: Option<bool>,
}

#[derive(Serialize, Default, Clone, Copy)]
struct StageMs {
    preprocess: f64,
    backbone_fpn: f64,
    rpn: f64,
    box_head: f64,
    mask_head: f64,
    total: f64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // SAFETY: first thing in main: no other thread exists yet.
    unsafe { mask_rcnn_burn::device::quiet_vulkan_probe() };
    let args = Args::parse();
    let image = BgrImage::decode(PHOTO, "coffee_600x400.png")?;
    let found = adapters();
    println!("# GPU report\n");
    for a in &found {
        println!("- adapter {}: {} ({}, {}), driver {}", a.index, a.name, a.api, a.device_type, a.driver);
    }
    if found.is_empty() {
        println!("- no Vulkan/Metal/DX12 adapter: nothing to report");
    }
    let mut rows = Vec::new();
    let (mut input, mut proposals) = ([0, 0], 0);
    for model in &args.models {
        let mut config = ModelConfig::named(&format!("{model}-2x"))?;
        if args.small {
            config.test.scale = [320, 240];
        }
        if let Some(n) = args.proposals {
            config.test.rpn.max_per_img = n;
        }
        if let Some(n) = args.detections {
            config.test.rcnn.max_per_img = n;
        }
        proposals = config.test.rpn.max_per_img;
        let weights = random_state_dict(&config, 1);
        let flex = Detector::from_state_dict(config.clone(), weights.clone(), Device::flex())?;
        let pre = flex.preprocess(&image);
        input = [pre.meta.pad_shape.0, pre.meta.pad_shape.1];
        let reference = flex.predict(&image)?;
        for &spec in &args.devices {
            if found.is_empty() {
                break;
            }
            let device = DeviceProfile::resolve(spec)?.0.device().clone();
            let device_name = spec.to_string();
            for &precision in &args.precisions {
                let det = Detector::from_state_dict(config.clone(), weights.clone(), device.clone())?.with_precision(precision);
                let row = measure(&det, &image, &reference, args.iters, args.batch as usize)?;
                rows.push(Row { device: device_name.clone(), model: model.clone(), precision: format!("{precision:?}").to_lowercase(), ..row });
                eprintln!("done: {device_name} {model} {precision:?}");
            }
        }
    }
    let report = Report { adapters: found, input, proposals, iters: args.iters, rows };
    print_table(&report);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
        println!("\nwrote {}", path.display());
    }
    Ok(())
}

/// Parity against `reference`, then warm timings and read-backs of `det` on `image`.
fn measure(det: &Detector, image: &BgrImage, reference: &Detections, iters: usize, batch: usize) -> Result<Row, Box<dyn std::error::Error>> {
    let start = Instant::now();
    let (before, launched) = (readback::stats(), launches());
    let ours = det.predict(image)?;
    let (reads, launched) = (readback::stats().since(before), launches() - launched);
    let first_run_ms = start.elapsed().as_secs_f64() * 1e3;
    let refs: Vec<DetRef> = reference.items.iter().map(|d| DetRef { bbox: d.bbox, score: d.score, label: d.label }).collect();
    let cands: Vec<DetRef> = ours.items.iter().map(|d| DetRef { bbox: d.bbox, score: d.score, label: d.label }).collect();
    let strict = match_detections(&refs, &cands, 0.98, 2e-3);
    let loose = match_detections(&refs, &cands, 0.9, 0.02);
    let (mut inter, mut union) = (0u64, 0u64);
    for &(r, o) in &loose {
        let (i, u) = mask_overlap(&reference.items[r].mask.to_dense(), &ours.items[o].mask.to_dense());
        inter += i;
        union += u;
    }
    let mean_box_iou = loose.iter().map(|&(r, o)| box_iou(&refs[r].bbox, &cands[o].bbox)).sum::<f32>() / loose.len().max(1) as f32;
    det.predict(image)?; // second warm-up
    let mut runs: Vec<StageTimings> = Vec::with_capacity(iters);
    for _ in 0..iters.max(1) {
        runs.push(det.predict_timed(image)?.1);
    }
    let median = |f: &dyn Fn(&StageTimings) -> Duration| {
        let mut v: Vec<f64> = runs.iter().map(|t| f(t).as_secs_f64() * 1e3).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let median_ms = StageMs {
        preprocess: median(&|t| t.preprocess),
        backbone_fpn: median(&|t| t.backbone_fpn),
        rpn: median(&|t| t.rpn),
        box_head: median(&|t| t.box_head),
        mask_head: median(&|t| t.mask_head),
        total: median(&|t| t.total()),
    };
    let (mut batch_images_per_s, mut batch_identical) = (None, None);
    if batch > 1 {
        let images = vec![image.clone(); batch];
        batch_identical = Some(det.predict_batch(&images)?.iter().all(|d| *d == ours)); // also the warm-up
        let mut secs: Vec<f64> = (0..iters.max(1))
            .map(|_| {
                let start = Instant::now();
                det.predict_batch(&images).map(|_| start.elapsed().as_secs_f64())
            })
            .collect::<Result<_, _>>()?;
        secs.sort_by(f64::total_cmp);
        batch_images_per_s = Some(batch as f64 / secs[secs.len() / 2]);
    }
    Ok(Row {
        device: String::new(),
        model: String::new(),
        precision: String::new(),
        matched_strict: strict.len(),
        matched_loose: loose.len(),
        reference: refs.len(),
        mask_iou: inter as f64 / union.max(1) as f64,
        mean_box_iou,
        first_run_ms,
        median_ms,
        images_per_s: 1e3 / median_ms.total,
        readbacks_per_image: reads.count,
        readback_bytes_per_image: reads.bytes,
        launches_per_image: launched,
        batch,
        batch_images_per_s,
        batch_identical,
    })
}

fn print_table(report: &Report) {
    let [h, w] = report.input;
    println!("\ninput {w}x{h} (padded), {} proposals, median of {} warm runs, ms\n", report.proposals, report.iters);
    println!("| device | model | precision | matched (strict / f16 bar) | mask I/U | first run | preprocess | backbone+FPN | RPN | box head | mask head | total | images/s | batched images/s | read-backs (bytes) | launches |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &report.rows {
        let m = &r.median_ms;
        println!(
            "| {} | {} | {} | {} / {} of {} | {:.4} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} | {} | {} ({:.1} KB) | {} |",
            r.device,
            r.model,
            r.precision,
            r.matched_strict,
            r.matched_loose,
            r.reference,
            r.mask_iou,
            r.first_run_ms,
            m.preprocess,
            m.backbone_fpn,
            m.rpn,
            m.box_head,
            m.mask_head,
            m.total,
            r.images_per_s,
            match (r.batch_images_per_s, r.batch_identical) {
                (Some(ips), Some(same)) => format!("{ips:.2} (batch {}{})", r.batch, if same { "" } else { ", NOT identical" }),
                _ => "-".to_string(),
            },
            r.readbacks_per_image,
            r.readback_bytes_per_image as f64 / 1024.0,
            r.launches_per_image
        );
    }
}
