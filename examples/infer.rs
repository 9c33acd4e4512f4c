//! One image in; boxes, classes and masks out (a table, COCO-style JSON, an annotated PNG).
//!
//!     cargo run --release --example infer -- demo.jpg --model r50-2x --json out.json --output out.png
//!
//! Without `--weights` the config's official checkpoint is downloaded into the cache once (sha256-checked) and
//! converted to safetensors once; a `.pth` given with `--weights` is converted once too.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use mask_rcnn_burn::device::{DeviceChoice, select_device};
use mask_rcnn_burn::fs::write_atomic;
use mask_rcnn_burn::precision::Precision;
use mask_rcnn_burn::render::{annotate, save_png};
use mask_rcnn_burn::weights::resolve_weights;
use mask_rcnn_burn::{BgrImage, Detector, ModelConfig};

#[derive(Parser)]
#[command(about = "Group Normalization Mask R-CNN (mmdetection checkpoints) on one image")]
struct Args {
    /// The image (PNG or JPEG).
    image: PathBuf,
    /// A built-in config (r50-2x, r50-3x, r101-2x, r101-3x, r50c-2x, r50c-3x, or a configs/ file name) or a TOML file.
    #[arg(long, default_value = "r50-2x")]
    model: String,
    /// Weights: a .safetensors file, or an mmdetection .pth checkpoint (converted once). Default: download the
    /// config's official checkpoint.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// auto (a hardware GPU if there is one, else flex), wgpu, vulkan or flex.
    #[arg(long, default_value = "auto")]
    device: DeviceChoice,
    /// f32, or f16 (weights and activations in half precision, GroupNorm statistics in f32; meant for GPUs:
    /// on flex only Burn's generic f16 ops run, without the fast f32 kernels).
    #[arg(long, default_value = "f32")]
    precision: Precision,
    /// Keep detections scoring above this (the config's is 0.05).
    #[arg(long)]
    score_thr: Option<f32>,
    /// Write the detections as COCO results JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the annotated image (PNG) here.
    #[arg(long)]
    output: Option<PathBuf>,
    /// COCO image id to put in the JSON.
    #[arg(long, default_value_t = 0)]
    image_id: u64,
    /// Print the time of each stage.
    #[arg(long)]
    timings: bool,
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) if matches!(e.kind(), clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion) => e.exit(),
        Err(e) => {
            // One line, like every other error here (clap's own adds a usage hint below).
            eprintln!("{}", e.to_string().lines().next().unwrap_or("invalid arguments"));
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The error and what caused it, on one line.
            let mut line = format!("error: {e}");
            let mut source = e.source();
            while let Some(cause) = source {
                line.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            eprintln!("{line}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut config = ModelConfig::from_name_or_file(&args.model)?;
    if let Some(thr) = args.score_thr {
        if !(0.0..=1.0).contains(&thr) {
            return Err(format!("--score-thr {thr} is not in [0, 1]").into());
        }
        config.test.rcnn.score_thr = thr;
    }
    // Read the image before the (slow) model load, so a bad image fails fast.
    let image = BgrImage::open(&args.image)?;
    let weights = resolve_weights(&config, args.weights.as_deref(), true)?;
    let device = select_device(args.device)?;
    let start = Instant::now();
    let detector = Detector::from_safetensors(config, &weights, device)?.with_precision(args.precision);
    let load_time = start.elapsed();
    let (dets, timings) = detector.predict_timed(&image)?;

    println!("{} detections in {} ({}x{})", dets.len(), args.image.display(), image.width, image.height);
    println!("{:>3}  {:<16} {:>6}  {:>31}  {:>8}", "#", "class", "score", "box x1,y1,x2,y2", "mask px");
    for (i, d) in dets.items.iter().enumerate() {
        let [x1, y1, x2, y2] = d.bbox;
        println!("{i:>3}  {:<16} {:>6.3}  {x1:>7.1},{y1:>7.1},{x2:>7.1},{y2:>7.1}  {:>8}", d.class_name, d.score, d.mask.area());
    }
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    let line = format!(
        "time: load {:.0} ms | preprocess {:.0} ms, backbone+fpn {:.0} ms, rpn {:.0} ms, box head {:.0} ms, mask head {:.0} ms, total {:.0} ms",
        ms(load_time),
        ms(timings.preprocess),
        ms(timings.backbone_fpn),
        ms(timings.rpn),
        ms(timings.box_head),
        ms(timings.mask_head),
        ms(timings.total())
    );
    if args.timings {
        println!("{line}");
    } else {
        println!("time: {:.0} ms (--timings for each stage)", ms(timings.total()));
    }

    if let Some(path) = &args.json {
        let results = dets.to_coco_results(args.image_id, &detector.config().dataset.category_ids);
        write_atomic(path, serde_json::to_string(&results)?.as_bytes()).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    if let Some(path) = &args.output {
        save_png(&annotate(&image, &dets), path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
