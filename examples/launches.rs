//! This crate's kernel launches and the read-backs per image, at batch 1 and batch 4, on a GPU device: what
//! batching the RoI heads' work across images saves. Alone in its process, so that nothing else launches kernels
//! while it counts (the launch counter is process-wide).
//!
//!     cargo run --release --example launches -- [--device wgpu] [--json out.json]
//!
//! The r50_hopper_320 fixture's weights and image at a 192x144 test scale with 20 proposals and 5 detections per
//! image (small enough for a software adapter); the same image four times makes one batch of four.

mod fixture;

use clap::Parser;
use mask_rcnn_burn::internals::{launches, readback};
use mask_rcnn_burn::{Detector, DeviceProfile, DeviceSpec};

#[derive(Parser)]
struct Args {
    /// The GPU device.
    #[arg(long, default_value = "wgpu")]
    device: DeviceSpec,
    /// Also write the figures as JSON here.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // SAFETY: first thing in main: no other thread exists yet.
    unsafe { mask_rcnn_burn::device::quiet_vulkan_probe() };
    let args = Args::parse();
    let (weights, config, img) = fixture::r50_hopper([192, 144], 20, 5)?;
    let (profile, why) = DeviceProfile::resolve(args.device)?;
    let det = Detector::from_state_dict(config, weights, profile.device().clone())?;
    det.predict_batch(&[img.clone(), img.clone()])?; // warm-up: shaders compiled for both batch sizes' shapes
    det.predict_batch(&vec![img.clone(); 4])?;
    let mut rows = Vec::new();
    println!("device: {why}");
    println!("| batch | launches per image | read-backs per image | bytes read back per image |");
    println!("|---|---|---|---|");
    for batch in [1usize, 4] {
        let (l0, r0) = (launches(), readback::stats());
        det.predict_batch(&vec![img.clone(); batch])?;
        let (l, r) = (launches() - l0, readback::stats().since(r0));
        let per = |v: u64| v as f64 / batch as f64;
        println!("| {batch} | {:.2} | {:.2} | {:.0} |", per(l), per(r.count), per(r.bytes));
        rows.push(serde_json::json!({"batch": batch, "launches_per_image": per(l), "readbacks_per_image": per(r.count), "bytes_per_image": per(r.bytes)}));
    }
    if let Some(path) = args.json {
        std::fs::write(path, serde_json::to_string_pretty(&rows)?)?;
    }
    Ok(())
}
