//! Images in; boxes, classes and masks out: a table for one image, COCO results JSON (streamed), annotated PNGs,
//! and the COCO AP summary when the images come from a COCO instances file.
//!
//!     cargo run --release --example infer -- demo/coffee.jpg --json out.json --output out.png
//!     cargo run --release --example infer -- demo/ --batch 4 --json out.json --output annotated/
//!     cargo run --release --example infer -- --annotations instances_val2017.json --images val2017/ --json val.json
//!
//! Without `--weights` the config's official checkpoint is downloaded into the cache once (sha256-checked) and
//! converted to safetensors once; a `.pth` given with `--weights` is converted once too.
//!
//! Exit status: 0 every image done; 1 an error stopped the run (bad config, weights, annotations, device, or an
//! unwritable output); 2 bad arguments; 3 the run finished but some images failed (each named on stderr).

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use mask_rcnn_burn::dataset::{ImageEntry, Outcome, RunnerConfig, coco_images, image_files, run};
use mask_rcnn_burn::device::{DeviceChoice, select_device};
use mask_rcnn_burn::eval::{CocoResult, evaluate};
use mask_rcnn_burn::fs::write_atomic;
use mask_rcnn_burn::precision::Precision;
use mask_rcnn_burn::render::{annotate, save_png};
use mask_rcnn_burn::weights::resolve_weights;
use mask_rcnn_burn::image::ImageLimits;
use mask_rcnn_burn::{BgrImage, Detections, Detector, ModelConfig, StageTimings};

/// CPU runs reuse freed tensor memory instead of page-faulting it in again (see `alloc`).
#[global_allocator]
static ALLOC: mask_rcnn_burn::alloc::MiMalloc = mask_rcnn_burn::alloc::MiMalloc;

#[derive(Parser)]
#[command(about = "Group Normalization Mask R-CNN (mmdetection checkpoints) on images, folders or a COCO dataset")]
struct Args {
    /// Images (PNG or JPEG) and folders of them.
    inputs: Vec<PathBuf>,
    /// Also take images from sub-folders.
    #[arg(long)]
    recursive: bool,
    /// A COCO instances file: run on its images (with --images) and print the COCO AP summary at the end.
    #[arg(long, requires = "images")]
    annotations: Option<PathBuf>,
    /// The folder holding the annotations' `file_name`s.
    #[arg(long, requires = "annotations")]
    images: Option<PathBuf>,
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
    /// f32, or f16 (weights and activations in half precision, GroupNorm statistics in f32; meant for GPUs).
    #[arg(long, default_value = "f32")]
    precision: Precision,
    /// Keep detections scoring above this (the config's is 0.05).
    #[arg(long)]
    score_thr: Option<f32>,
    /// Images of the same input shape run through the network together, up to this many.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    batch: u32,
    /// Write every detection as COCO results JSON here, image by image (valid JSON after each one).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Continue an interrupted run: skip the images --json already holds (its `.done` list beside it).
    #[arg(long, requires = "json")]
    resume: bool,
    /// Annotated pictures: a PNG file for one image, else a folder (one `<stem>.png` per image).
    #[arg(long)]
    output: Option<PathBuf>,
    /// With --annotations, write the bbox and segm summaries as JSON here.
    #[arg(long, requires = "annotations")]
    eval_json: Option<PathBuf>,
    /// COCO image id of a single image (folders and datasets: see `dataset::image_files`).
    #[arg(long)]
    image_id: Option<u64>,
    /// Refuse images larger than this many megapixels (checked on the header, before decoding).
    #[arg(long, default_value_t = 200.0)]
    max_megapixels: f64,
    /// Print the time of each stage (one image; over a folder or dataset, a line per image with its batch's times).
    #[arg(long)]
    timings: bool,
}

fn main() -> ExitCode {
    // SAFETY: first thing in main: no other thread exists yet.
    unsafe { mask_rcnn_burn::device::quiet_vulkan_probe() };
    mask_rcnn_burn::alloc::keep_freed_memory();
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) if matches!(e.kind(), clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion) => e.exit(),
        Err(e) => {
            // One line, like every other error here (clap's own adds a usage hint below).
            eprintln!("{}", e.to_string().lines().next().unwrap_or("invalid arguments"));
            return ExitCode::from(2);
        }
    };
    match main_run(args) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(failed) => {
            eprintln!("{failed} image(s) failed");
            ExitCode::from(3)
        }
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

type AnyError = Box<dyn std::error::Error>;

/// Runs everything; returns how many images failed.
fn main_run(args: Args) -> Result<usize, AnyError> {
    let mut config = ModelConfig::from_name_or_file(&args.model)?;
    if let Some(thr) = args.score_thr {
        if !(0.0..=1.0).contains(&thr) {
            return Err(format!("--score-thr {thr} is not in [0, 1]").into());
        }
        config.test.rcnn.score_thr = thr;
    }
    let mut entries = match (&args.annotations, &args.images) {
        (Some(ann), Some(dir)) => coco_images(ann, dir)?,
        _ if args.inputs.is_empty() => return Err("no input: name images or folders, or --annotations with --images".into()),
        _ => image_files(&args.inputs, args.recursive)?,
    };
    if entries.is_empty() {
        return Err("no image found in the inputs (PNG or JPEG)".into());
    }
    let single = entries.len() == 1 && args.annotations.is_none();
    if let (true, Some(id)) = (single, args.image_id) {
        entries[0].id = id;
    }
    // Read a single image before the (slow) model load, so a bad image fails fast.
    let image = if single { Some(BgrImage::open_with_limits(&entries[0].path, &limits(&args)?)?) } else { None };
    let weights = resolve_weights(&config, args.weights.as_deref(), true)?;
    let device = select_device(args.device)?;
    let start = Instant::now();
    let detector = Detector::from_safetensors(config, &weights, device)?.with_precision(args.precision);
    let load_ms = start.elapsed().as_secs_f64() * 1e3;
    // Opened once everything before the run has worked: a failed start leaves no output file.
    let mut results = match &args.json {
        Some(path) => Some(ResultsFile::open(path, args.resume)?),
        None => None,
    };
    if let Some(done) = results.as_ref().map(|r| &r.done) {
        let before = entries.len();
        entries.retain(|e| !done.contains(&e.id));
        if before != entries.len() {
            println!("resuming: {} of {before} images already done", before - entries.len());
        }
    }
    let failed = match image {
        Some(_) if entries.is_empty() => 0,
        Some(image) => {
            let (dets, timings) = detector.predict_timed(&image)?;
            print_table(&entries[0].path, &image, &dets);
            print_timings(load_ms, &timings, args.timings);
            if let Some(r) = results.as_mut() {
                r.append(entries[0].id, &dets.to_coco_results(entries[0].id, &detector.config().dataset.category_ids))?;
            }
            if let Some(path) = &args.output {
                let path = if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("png")) { path.clone() } else { annotated_path(path, &entries[0])? };
                save_png(&annotate(&image, &dets), &path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                println!("wrote {}", path.display());
            }
            0
        }
        None => run_dataset(&detector, &entries, &args, results.as_mut())?,
    };
    if let Some(r) = &results {
        println!("wrote {}", r.path.display());
    }
    if let (Some(ann), Some(r)) = (&args.annotations, &results) {
        let eval = evaluate(ann, &r.path)?;
        for (name, summary) in [("bbox", &eval.bbox), ("segm", &eval.segm)] {
            println!("\nCOCO {name}:");
            summary.lines.iter().for_each(|l| println!("{l}"));
        }
        if let Some(path) = &args.eval_json {
            write_atomic(path, serde_json::to_string_pretty(&eval)?.as_bytes()).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            println!("wrote {}", path.display());
        }
    } else if args.annotations.is_some() {
        eprintln!("no --json: the COCO evaluation needs the results file");
    }
    Ok(failed)
}

/// The image size cap of `--max-megapixels`.
fn limits(args: &Args) -> Result<ImageLimits, AnyError> {
    if !(args.max_megapixels > 0.0 && args.max_megapixels <= 1e6) {
        return Err(format!("--max-megapixels {} is not in (0, 1000000]", args.max_megapixels).into());
    }
    Ok(ImageLimits { max_pixels: (args.max_megapixels * 1e6) as u64 })
}

/// Many images through the dataset runner: results streamed to the JSON, pictures to the output folder, a
/// progress bar on a terminal (a summary line otherwise). Returns how many images failed.
fn run_dataset(detector: &Detector, entries: &[ImageEntry], args: &Args, mut results: Option<&mut ResultsFile>) -> Result<usize, AnyError> {
    if let Some(dir) = &args.output {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let bar = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(entries.len() as u64);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} images, {per_sec}, eta {eta}").unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let runner = RunnerConfig { batch: args.batch as usize, keep_images: args.output.is_some(), limits: limits(args)?, ..RunnerConfig::default() };
    let category_ids = detector.config().dataset.category_ids.clone();
    let mut write_error: Option<String> = None;
    let summary = run(detector, entries, &runner, |outcome: Outcome| {
        bar.inc(1);
        match (outcome.result, write_error.is_some()) {
            (Err(e), _) => bar.suspend(|| eprintln!("skipped {}: {e}", outcome.entry.path.display())),
            (Ok(_), true) => {}
            (Ok(dets), false) => {
                if let (true, Some(t)) = (args.timings, &outcome.timings) {
                    bar.suspend(|| println!("time: {} | {}", outcome.entry.path.display(), stage_times(t)));
                }
                let written = write_outcome(&outcome.entry, &dets, outcome.image.as_ref(), &category_ids, results.as_deref_mut(), args.output.as_deref());
                if let Err(e) = written {
                    write_error = Some(e);
                }
            }
        }
    });
    bar.finish_and_clear();
    if let Some(e) = write_error {
        return Err(e.into());
    }
    let secs = summary.elapsed.as_secs_f64();
    println!(
        "{} images in {secs:.1} s ({:.2} images/s), {} failed",
        summary.done + summary.failed,
        summary.done as f64 / secs.max(1e-9),
        summary.failed
    );
    Ok(summary.failed)
}

/// One image's results into the JSON and its picture into the output folder.
fn write_outcome(
    entry: &ImageEntry,
    dets: &Detections,
    image: Option<&BgrImage>,
    category_ids: &[u32],
    results: Option<&mut ResultsFile>,
    output: Option<&Path>,
) -> Result<(), String> {
    if let Some(r) = results {
        r.append(entry.id, &dets.to_coco_results(entry.id, category_ids)).map_err(|e| e.to_string())?;
    }
    if let (Some(dir), Some(image)) = (output, image) {
        let path = annotated_path(dir, entry).map_err(|e| e.to_string())?;
        save_png(&annotate(image, dets), &path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

/// `<dir>/<stem>.png` for an image.
fn annotated_path(dir: &Path, entry: &ImageEntry) -> Result<PathBuf, AnyError> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let stem = entry.path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| entry.id.to_string());
    Ok(dir.join(format!("{stem}.png")))
}

fn print_table(path: &Path, image: &BgrImage, dets: &Detections) {
    println!("{} detections in {} ({}x{})", dets.len(), path.display(), image.width, image.height);
    println!("{:>3}  {:<16} {:>6}  {:>31}  {:>8}", "#", "class", "score", "box x1,y1,x2,y2", "mask px");
    for (i, d) in dets.items.iter().enumerate() {
        let [x1, y1, x2, y2] = d.bbox;
        println!("{i:>3}  {:<16} {:>6.3}  {x1:>7.1},{y1:>7.1},{x2:>7.1},{y2:>7.1}  {:>8}", d.class_name, d.score, d.mask.area());
    }
}

fn print_timings(load_ms: f64, t: &StageTimings, stages: bool) {
    if stages {
        println!("time: load {load_ms:.0} ms | {}", stage_times(t));
    } else {
        println!("time: {:.0} ms (--timings for each stage)", t.total().as_secs_f64() * 1e3);
    }
}

/// `preprocess 1 ms, backbone+fpn 1164 ms, ..., total 2627 ms`.
fn stage_times(t: &StageTimings) -> String {
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    format!(
        "preprocess {:.0} ms, backbone+fpn {:.0} ms, rpn {:.0} ms, box head {:.0} ms, mask head {:.0} ms, total {:.0} ms",
        ms(t.preprocess),
        ms(t.backbone_fpn),
        ms(t.rpn),
        ms(t.box_head),
        ms(t.mask_head),
        ms(t.total())
    )
}

/// A COCO results JSON written image by image and kept valid after each (`[`, results, `]`, the closing
/// bracket rewritten at every append), with `<json>.done` listing the image ids it holds (images without
/// detections included), so `--resume` knows what was done. Opening for a resume drops results of images not in
/// the `.done` list (an interruption between the two writes), so every image ends up in the file exactly once.
struct ResultsFile {
    path: PathBuf,
    file: File,
    done_log: File,
    done: BTreeSet<u64>,
    empty: bool,
}

impl ResultsFile {
    fn open(path: &Path, resume: bool) -> Result<Self, AnyError> {
        let cannot = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
        let done_path = PathBuf::from(format!("{}.done", path.display()));
        let (mut done, mut kept) = (BTreeSet::new(), Vec::new());
        if resume && path.is_file() {
            let ids = std::fs::read_to_string(&done_path).unwrap_or_default();
            done = ids.lines().filter_map(|l| l.trim().parse::<u64>().ok()).collect();
            let text = std::fs::read_to_string(path).map_err(cannot)?;
            let previous: Vec<CocoResult> =
                serde_json::from_str(&text).map_err(|e| format!("--resume: {} is not a results JSON this tool wrote: {e}", path.display()))?;
            kept = previous.into_iter().filter(|r| done.contains(&r.image_id)).collect();
        }
        let mut body = serde_json::to_string(&kept)?;
        if kept.is_empty() {
            body = "[\n]".to_string();
        } else {
            body.insert(1, '\n');
            body.insert(body.len() - 1, '\n');
        }
        write_atomic(path, body.as_bytes()).map_err(cannot)?;
        let done_text: String = done.iter().map(|id| format!("{id}\n")).collect();
        write_atomic(&done_path, done_text.as_bytes()).map_err(cannot)?;
        let file = OpenOptions::new().read(true).write(true).open(path).map_err(cannot)?;
        let done_log = OpenOptions::new().append(true).open(&done_path).map_err(cannot)?;
        Ok(Self { path: path.to_path_buf(), file, done_log, done, empty: kept.is_empty() })
    }

    /// Adds one image's results (possibly none) and records the image as done.
    fn append(&mut self, image_id: u64, results: &[CocoResult]) -> Result<(), AnyError> {
        if !results.is_empty() {
            let mut chunk = String::new();
            for r in results {
                chunk.push_str(if self.empty { "" } else { ",\n" });
                chunk.push_str(&serde_json::to_string(r)?);
                self.empty = false;
            }
            chunk.push_str("\n]");
            // Overwrite the closing "\n]" (or "]" of a fresh "[\n]") with the new results and a new closing.
            let end = self.file.seek(SeekFrom::End(0))?;
            self.file.seek(SeekFrom::Start(end - 2))?;
            let lead = if chunk.starts_with(",\n") { "" } else { "\n" };
            self.file.write_all(format!("{lead}{chunk}").as_bytes())?;
            self.file.flush()?;
        }
        writeln!(self.done_log, "{image_id}")?;
        self.done.insert(image_id);
        Ok(())
    }
}
