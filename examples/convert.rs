//! Converts an mmdetection `.pth` checkpoint to safetensors with the same keys, natively (no Python).
//!
//!     cargo run --release --example convert -- mask_rcnn_r50_fpn_gn-all_2x_coco_20200206-8eee02a6.pth r50-2x.safetensors

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use mask_rcnn_burn::ModelConfig;
use mask_rcnn_burn::model::MaskRcnn;
use mask_rcnn_burn::weights::{StateDict, expected_keys};

#[derive(Parser)]
#[command(about = "Convert an mmdetection .pth checkpoint to safetensors")]
struct Args {
    /// The .pth checkpoint.
    input: PathBuf,
    /// The .safetensors file to write.
    output: PathBuf,
    /// Check the keys against this config (an alias like r50-2x, or a TOML file) before writing.
    #[arg(long)]
    model: Option<String>,
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
    let dict = StateDict::from_pth(&args.input)?;
    if let Some(model) = &args.model {
        let config = ModelConfig::from_name_or_file(model)?;
        let want: std::collections::BTreeSet<String> =
            expected_keys(&MaskRcnn::new(&config, &burn::tensor::Device::flex())).into_iter().map(|s| s.key).collect();
        let have: std::collections::BTreeSet<String> = dict.tensors.keys().cloned().collect();
        if want != have {
            let missing = want.difference(&have).count();
            let extra = have.difference(&want).count();
            return Err(format!("{} does not fit {model}: {missing} keys missing, {extra} unexpected", args.input.display()).into());
        }
    }
    dict.write_safetensors(&args.output)?;
    Ok(dict.tensors.len())
}
