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
use mask_rcnn_burn::dataset::{ImageEntry, Outcome, RunnerConfig, category_ids, coco_categories, coco_images, image_files, run};
use mask_rcnn_burn::eval::{CocoResult, evaluate};
use mask_rcnn_burn::internals::write_atomic;
use mask_rcnn_burn::render::save_annotated_png;
use mask_rcnn_burn::sliced::{MatchMetric, MergeConfig, MergeKind, SliceConfig};
use mask_rcnn_burn::{BgrImage, Detections, Detector, DeviceSpec, ImageLimits, MAX_STREAMS, Precision, StageTimings};

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
    /// A built-in config (an alias such as r50-2x, r101-ws-2x, x101-ws-24e, or an mmdetection config name such as
    /// mask-rcnn_x101-32x4d_fpn_gn-ws-all_2x_coco) or a TOML file.
    #[arg(long, default_value = "r50-2x")]
    model: String,
    /// Class names, one per line in label order (default: the checkpoint's, else the config's, else class_0..).
    #[arg(long)]
    classes: Option<PathBuf>,
    /// Weights: a .safetensors file, or an mmdetection .pth checkpoint (converted once). Default: download the
    /// config's official checkpoint.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// auto (the first hardware GPU, else the CPU), cpu, wgpu or vulkan; wgpu:N / vulkan:N picks adapter N.
    #[arg(long, default_value = "auto")]
    device: DeviceSpec,
    /// f32, or f16 (the pyramid and heads' activations in half precision, the rest in f32; meant for GPUs).
    #[arg(long, default_value = "f32")]
    precision: Precision,
    /// Keep detections scoring above this (the config's is 0.05).
    #[arg(long)]
    score_thr: Option<f32>,
    /// Images of the same input shape run through the network together, up to this many.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    batch: u32,
    /// On the CPU, images run at once over folders and datasets, each on its own share of the threads: more
    /// images per second, each image slower, that many images in memory (2 on 2 cores: 0.94-0.99x the time).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=MAX_STREAMS as i64))]
    streams: u32,
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
    /// Sliced inference for large images: tiles of WxH pixels (e.g. 512x512), as SAHI cuts them, their detections
    /// merged (plus a pass on the whole image unless --no-full-image).
    #[arg(long, value_parser = parse_size)]
    slice: Option<(usize, usize)>,
    /// With --slice: the overlap of neighbouring tiles, a fraction of their size.
    #[arg(long, default_value_t = 0.2, requires = "slice")]
    overlap: f64,
    /// With --slice: no pass on the whole image (SAHI's perform_standard_pred=False).
    #[arg(long, requires = "slice")]
    no_full_image: bool,
    /// With --slice: how tiles' detections are merged: greedy-nmm (SAHI's default), nmm or nms.
    #[arg(long, default_value = "greedy-nmm", requires = "slice")]
    merge: String,
    /// With --slice: the match measure, ios (intersection over the smaller box) or iou, and its threshold.
    #[arg(long, default_value = "ios", requires = "slice")]
    match_metric: String,
    /// With --slice: the match threshold.
    #[arg(long, default_value_t = 0.5, requires = "slice")]
    match_threshold: f64,
    /// With --slice: keep at most this many detections per image.
    #[arg(long, requires = "slice")]
    max_detections: Option<usize>,
}

fn main() -> ExitCode {
    // SAFETY: first thing in main: no other thread exists yet.
    unsafe { mask_rcnn_burn::device::quiet_vulkan_probe() };
    mask_rcnn_burn::alloc::keep_freed_memory();
    let code = cli();
    if std::env::var_os("MASK_RCNN_BURN_PEAK_RSS").is_some() {
        // The process's own peak resident memory (VmHWM: this program's, not a parent's before exec), for tests.
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let kib = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).map(|v| v.trim().trim_end_matches(" kB").to_string());
        println!("peak RSS: {} kB", kib.unwrap_or_else(|| "unknown".into()));
    }
    code
}

/// Parses the arguments and runs; every error is one line on stderr (exit 2: usage, 1: failure, 3: some images).
fn cli() -> ExitCode {
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
                let text = cause.to_string();
                if !line.ends_with(&text) {
                    line.push_str(&format!(": {text}"));
                }
                source = cause.source();
            }
            eprintln!("{}", line.replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

type AnyError = Box<dyn std::error::Error>;

/// Runs everything; returns how many images failed.
fn main_run(args: Args) -> Result<usize, AnyError> {
    if let Some(thr) = args.score_thr.filter(|t| !(0.0..=1.0).contains(t)) {
        return Err(format!("--score-thr {thr} is not in [0, 1]").into());
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
    let mut builder = Detector::builder(&args.model).device(args.device).precision(args.precision).streams(args.streams as usize).progress(true);
    if let Some(w) = &args.weights {
        builder = builder.weights(w);
    }
    if let Some(thr) = args.score_thr {
        builder = builder.score_thr(thr);
    }
    if let Some(file) = &args.classes {
        builder = builder.classes(read_classes(file)?);
    }
    let start = Instant::now();
    let (detector, why) = builder.build_explained()?;
    let load_ms = start.elapsed().as_secs_f64() * 1e3;
    if args.device == DeviceSpec::Auto {
        eprintln!("device: {why}");
    }
    let categories = args.annotations.as_deref().map(coco_categories).transpose()?;
    let category_ids = category_ids(detector.classes(), &detector.config().dataset, categories.as_deref())?;
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
            let dets = match slice_config(&args)? {
                Some(cfg) => {
                    let start = Instant::now();
                    let dets = predict_sliced(&detector, &image, &cfg)?;
                    print_table(&entries[0].path, &image, &dets);
                    println!("time: {:.0} ms (sliced)", start.elapsed().as_secs_f64() * 1e3);
                    dets
                }
                None => {
                    let (dets, timings) = detector.predict_timed(&image)?;
                    print_table(&entries[0].path, &image, &dets);
                    print_timings(load_ms, &timings, args.timings);
                    dets
                }
            };
            if let Some(r) = results.as_mut() {
                r.append(entries[0].id, &dets.to_coco_results(entries[0].id, &category_ids))?;
            }
            if let Some(path) = &args.output {
                let path = if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("png")) { path.clone() } else { annotated_path(path, &entries[0])? };
                save_annotated_png(&image, &dets, &path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                println!("wrote {}", path.display());
            }
            0
        }
        None if args.slice.is_some() => run_sliced(&detector, &entries, &args, &category_ids, results.as_mut())?,
        None => run_dataset(&detector, &entries, &args, &category_ids, results.as_mut())?,
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

/// `WxH` (`512x512`), or one number for a square.
fn parse_size(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("`{s}` is not a size such as 512x512");
    let (w, h) = s.split_once(['x', 'X']).unwrap_or((s, s));
    let (w, h) = (w.trim().parse::<usize>().map_err(|_| bad())?, h.trim().parse::<usize>().map_err(|_| bad())?);
    if w == 0 || h == 0 {
        return Err(bad());
    }
    Ok((w, h))
}

/// The sliced-inference settings of the arguments, if `--slice` is given.
fn slice_config(args: &Args) -> Result<Option<SliceConfig>, AnyError> {
    let Some((width, height)) = args.slice else { return Ok(None) };
    let kind = match args.merge.as_str() {
        "greedy-nmm" | "greedynmm" => MergeKind::GreedyNmm,
        "nmm" => MergeKind::Nmm,
        "nms" => MergeKind::Nms,
        other => return Err(format!("--merge {other}: expected greedy-nmm, nmm or nms").into()),
    };
    let metric = match args.match_metric.as_str() {
        "ios" => MatchMetric::Ios,
        "iou" => MatchMetric::Iou,
        other => return Err(format!("--match-metric {other}: expected ios or iou").into()),
    };
    let cfg = SliceConfig {
        width,
        height,
        overlap_width: args.overlap,
        overlap_height: args.overlap,
        full_image: !args.no_full_image,
        merge: MergeConfig { kind, metric, threshold: args.match_threshold, class_agnostic: false },
        max_detections: args.max_detections,
        batch: args.batch as usize,
    };
    cfg.validate()?;
    Ok(Some(cfg))
}

/// One sliced prediction, with a progress bar per tile on a terminal.
fn predict_sliced(detector: &Detector, image: &BgrImage, cfg: &SliceConfig) -> Result<Detections, AnyError> {
    let bar = if std::io::stderr().is_terminal() { ProgressBar::new(0) } else { ProgressBar::hidden() };
    bar.set_style(ProgressStyle::with_template("{bar:40} {pos}/{len} tiles, eta {eta}").unwrap_or_else(|_| ProgressStyle::default_bar()));
    let dets = detector.predict_sliced_with_progress(image, cfg, |p| {
        bar.set_length(p.total as u64);
        bar.set_position(p.done as u64);
    })?;
    bar.finish_and_clear();
    Ok(dets)
}

/// Many images sliced, one after the other (each image is many network batches already).
fn run_sliced(detector: &Detector, entries: &[ImageEntry], args: &Args, category_ids: &[u32], mut results: Option<&mut ResultsFile>) -> Result<usize, AnyError> {
    let cfg = slice_config(args)?.expect("--slice given");
    let limits = limits(args)?;
    let mut failed = 0;
    for entry in entries {
        let outcome = BgrImage::open_with_limits(&entry.path, &limits).map_err(mask_rcnn_burn::Error::from).and_then(|img| {
            let dets = detector.predict_sliced(&img, &cfg)?;
            Ok((img, dets))
        });
        match outcome {
            Err(e) => {
                eprintln!("skipped {}: {}", entry.path.display(), e.one_line());
                failed += 1;
            }
            Ok((img, dets)) => {
                let image = args.output.is_some().then_some(&img);
                write_outcome(entry, &dets, image, category_ids, results.as_deref_mut(), args.output.as_deref())?;
            }
        }
    }
    println!("{} images sliced, {failed} failed", entries.len());
    Ok(failed)
}

/// Class names from a file, one per line in label order (blank lines and surrounding spaces ignored).
fn read_classes(path: &Path) -> Result<Vec<String>, AnyError> {
    use std::io::Read;
    let mut text = String::new();
    File::open(path).and_then(|f| f.take(1 << 20).read_to_string(&mut text)).map_err(|e| format!("cannot read --classes {}: {e}", path.display()))?;
    let names: Vec<String> = text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
    if names.is_empty() {
        return Err(format!("--classes {} names no class", path.display()).into());
    }
    Ok(names)
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
fn run_dataset(detector: &Detector, entries: &[ImageEntry], args: &Args, category_ids: &[u32], mut results: Option<&mut ResultsFile>) -> Result<usize, AnyError> {
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
                let written = write_outcome(&outcome.entry, &dets, outcome.image.as_ref(), category_ids, results.as_deref_mut(), args.output.as_deref());
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
        save_annotated_png(image, dets, &path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
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
            let ids = std::fs::read_to_string(&done_path).map_err(|e| {
                format!(
                    "--resume: cannot read {} ({e}), the list of images {} holds; without it the run cannot tell which are done: \
                     restore it, or run again without --resume to start over",
                    done_path.display(),
                    path.display()
                )
            })?;
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
