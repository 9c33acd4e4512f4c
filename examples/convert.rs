//! Converts an mmdetection `.pth` checkpoint to safetensors with the same keys and its class names, natively (no
//! Python), after checking its keys and shapes against the model it is for.
//!
//!     cargo run --release --example convert -- mask_rcnn_r50_fpn_gn-all_2x_coco_20200206-8eee02a6.pth r50-2x.safetensors --model r50-2x

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use mask_rcnn_burn::ModelConfig;
use mask_rcnn_burn::weights::convert_pth;

#[derive(Parser)]
#[command(about = "Convert an mmdetection .pth checkpoint to safetensors")]
struct Args {
    /// The .pth checkpoint.
    input: PathBuf,
    /// The .safetensors file to write.
    output: PathBuf,
    /// The config the checkpoint is for (an alias like r50-2x, an mmdetection config name, or a TOML file): its
    /// keys and shapes are checked against that model (with the checkpoint's own number of classes).
    #[arg(long, default_value = "r50-2x")]
    model: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(n) => {
            println!("wrote {} ({n} tensors)", args.output.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<usize, Box<dyn std::error::Error>> {
    let config = ModelConfig::from_name_or_file(&args.model)?;
    Ok(convert_pth(&args.input, &args.output, &config)?.tensors.len())
}
