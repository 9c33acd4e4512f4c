//! What large images cost: predict time against JSON and PNG output time (the output must cost what the masks cost,
//! not what the image's area costs), and sliced inference on a very large image (time per tile, peak memory).
//!
//!     cargo run --release --example large_image -- --weights W.safetensors                       # 6000x4000, 20000x15000
//!     cargo run --release --example large_image -- --weights W.safetensors --sliced 16000x12500  # 200 MP, 512x512 tiles
//!
//! Images are made in memory from the coffee fixture photo (tiled, every other copy mirrored), so nothing large is
//! read from disk; the weights are any R-50 GN checkpoint (the tests' synthetic ones are fine: they detect ~100
//! objects of every size, as a trained model does on a busy photo).

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use mask_rcnn_burn::eval::encode_dense;
use mask_rcnn_burn::render::{annotate, save_annotated_png};
use mask_rcnn_burn::sliced::SliceConfig;
use mask_rcnn_burn::{BgrImage, Detections, Detector, DeviceSpec};

/// CPU runs reuse freed tensor memory instead of page-faulting it in again (see `alloc`).
#[global_allocator]
static ALLOC: mask_rcnn_burn::alloc::MiMalloc = mask_rcnn_burn::alloc::MiMalloc;

const PHOTO: &[u8] = include_bytes!("../tests/fixtures/images/coffee_600x400.png");

#[derive(Parser)]
struct Args {
    /// An R-50 GN checkpoint.
    #[arg(long)]
    weights: PathBuf,
    /// Image sizes for the output-cost table.
    #[arg(long, default_value = "6000x4000,20000x15000", value_delimiter = ',')]
    sizes: Vec<String>,
    /// Instead: slice an image of this size into 512x512 tiles (overlap 0.2, plus the whole image).
    #[arg(long)]
    sliced: Option<String>,
    /// Skip the dense-RLE "before" column (minutes at 300 MP).
    #[arg(long)]
    skip_dense: bool,
    /// Timed repetitions (medians).
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

fn size(s: &str) -> (usize, usize) {
    let (w, h) = s.split_once('x').expect("WxH");
    (w.parse().expect("width"), h.parse().expect("height"))
}

/// A `width x height` image of copies of the photo, every other one mirrored.
fn large_image(width: usize, height: usize) -> BgrImage {
    let photo = BgrImage::decode(PHOTO, "coffee").expect("fixture photo");
    let mut data = vec![0u8; width * height * 3];
    for y in 0..height {
        let (ty, py) = (y / photo.height, y % photo.height);
        for x in 0..width {
            let (tx, px) = (x / photo.width, x % photo.width);
            let px = if (tx + ty) % 2 == 1 { photo.width - 1 - px } else { px };
            let src = (py * photo.width + px) * 3;
            data[(y * width + x) * 3..][..3].copy_from_slice(&photo.data[src..src + 3]);
        }
    }
    BgrImage::from_bgr(width, height, data).expect("sizes agree")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut out = None;
    let secs = (0..runs.max(1))
        .map(|_| {
            let start = Instant::now();
            out = Some(f());
            start.elapsed().as_secs_f64()
        })
        .collect();
    (median(secs), out.expect("ran"))
}

fn peak_rss_mb() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct it is given and reads nothing else.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    usage.ru_maxrss as f64 / 1024.0
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    mask_rcnn_burn::alloc::keep_freed_memory();
    let args = Args::parse();
    let det = Detector::builder("r50-2x").weights(&args.weights).device(DeviceSpec::Cpu).build()?;
    let dir = std::env::temp_dir().join(format!("mrb-large-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    if let Some(s) = &args.sliced {
        let (w, h) = size(s);
        let img = large_image(w, h);
        let cfg = SliceConfig::default();
        let start = Instant::now();
        let mut last = Instant::now();
        let mut tile_secs = Vec::new();
        let dets = det.predict_sliced_with_progress(&img, &cfg, |p| {
            tile_secs.push(last.elapsed().as_secs_f64() / cfg.batch as f64);
            last = Instant::now();
            if p.done % 50 == 0 || p.done == p.total {
                eprintln!("{} / {} predictions, {:.0} s", p.done, p.total, start.elapsed().as_secs_f64());
            }
        })?;
        let total = start.elapsed().as_secs_f64();
        let tiles = mask_rcnn_burn::sliced::slice_boxes(w, h, cfg.width, cfg.height, cfg.overlap_width, cfg.overlap_height).len();
        println!(
            "{w}x{h} ({:.0} MP) sliced into {tiles} tiles of 512x512 + the whole image: {total:.0} s, {:.2} s per tile (median of batches), {} detections, peak RSS {:.0} MB",
            (w * h) as f64 / 1e6,
            median(tile_secs),
            dets.len(),
            peak_rss_mb()
        );
        return Ok(());
    }
    println!("| image | detections | predict | JSON (window RLE) | JSON (dense RLE, before) | PNG (drawn per strip) | drawing alone (`annotate`) | (JSON + PNG) / predict |");
    println!("|---|---|---|---|---|---|---|---|");
    for s in &args.sizes {
        let (w, h) = size(s);
        let img = large_image(w, h);
        det.predict(&img)?; // warm-up
        let (predict, dets): (f64, Detections) = time(args.runs, || det.predict(&img).expect("predict"));
        let ids: Vec<u32> = (1..=80).collect();
        let json_path = dir.join("out.json");
        let (json, _) = time(args.runs, || {
            let text = serde_json::to_string(&dets.to_coco_results(1, &ids)).expect("serialise");
            std::fs::write(&json_path, text).expect("write");
        });
        let dense = if args.skip_dense {
            "-".to_string()
        } else {
            let (secs, _) = time(1, || dets.items.iter().map(|d| encode_dense(&d.mask.to_dense(), h, w).counts.len()).sum::<usize>());
            format!("{secs:.2} s")
        };
        let png_path = dir.join("out.png");
        let (png, _) = time(args.runs, || save_annotated_png(&img, &dets, &png_path).expect("png"));
        let (draw, _) = time(args.runs, || annotate(&img, &dets));
        println!(
            "| {w}x{h} | {} | {predict:.2} s | {json:.3} s | {dense} | {png:.3} s | {draw:.3} s | {:.0}% |",
            dets.len(),
            100.0 * (json + png) / predict
        );
    }
    println!("\npeak RSS {:.0} MB", peak_rss_mb());
    std::fs::remove_dir_all(dir).ok();
    Ok(())
}
