//! One operator's hardware-GPU branch (Burn's own kernels) run on the first wgpu adapter, whatever it is, against
//! flex: a software adapter (lavapipe) is made to claim it is hardware. tests/gpu.rs runs it once per operator in its
//! own process, because some of Burn's kernels crash lavapipe's shader compiler (a crash must not take the test
//! binary with it); the dispatch table (src/ops/dispatch.rs) records which.
//!
//!     cargo run --release --example hardware_branch -- conv3x3|conv1x1|linear|matmul|deconv|group_norm|roi_align

use burn::module::Module;
use burn::nn::conv::{Conv2dConfig, ConvTranspose2dConfig};
use burn::nn::{GroupNormConfig, LinearConfig, PaddingConfig2d};
use burn::tensor::{Device, Distribution, Tensor};
use mask_rcnn_burn::device::AdapterClass;
use mask_rcnn_burn::internals::{RoiAlignConfig, RoiFeatures, batched_matmul, conv_transpose_2x2, conv2d, group_norm_relu, linear, roi_align};
use mask_rcnn_burn::{DeviceProfile, DeviceSpec};

fn rel_l2<const D: usize>(ours: Tensor<D>, reference: Tensor<D>) -> f64 {
    let (a, b) = (ours.into_data().convert::<f32>().try_into_vec::<f32>().unwrap(), reference.into_data().convert::<f32>().try_into_vec::<f32>().unwrap());
    assert_eq!(a.len(), b.len());
    let num: f64 = a.iter().zip(&b).map(|(x, y)| (*x as f64 - *y as f64).powi(2)).sum();
    let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (num / den.max(1e-30)).sqrt()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // SAFETY: first thing in main: no other thread exists yet.
    unsafe { mask_rcnn_burn::device::quiet_vulkan_probe() };
    let op = std::env::args().nth(1).ok_or("usage: hardware_branch OP")?;
    let (profile, why) = DeviceProfile::resolve(DeviceSpec::Wgpu(None))?;
    let gpu = profile.device().clone();
    let flex = Device::flex();
    let hardware = profile.claiming(AdapterClass::Hardware);
    let on = |t: &Tensor<4>| Tensor::<4>::from_data(t.to_data(), &gpu);
    let rel = hardware.scope(|| -> Result<f64, Box<dyn std::error::Error>> {
        Ok(match op.as_str() {
            "conv3x3" | "conv1x1" => {
                let k = if op == "conv3x3" { 3 } else { 1 };
                let conv = Conv2dConfig::new([8, 12], [k, k]).with_padding(PaddingConfig2d::Explicit(k / 2, k / 2, k / 2, k / 2)).init(&flex);
                let x = Tensor::<4>::random([2, 8, 9, 11], Distribution::Normal(0.0, 1.0), &flex);
                rel_l2(conv2d(&conv.clone().to_device(&gpu), on(&x)).to_device(&flex), conv.forward(x))
            }
            "linear" => {
                let fc = LinearConfig::new(40, 24).init(&flex);
                let x = Tensor::<2>::random([5, 40], Distribution::Normal(0.0, 1.0), &flex);
                rel_l2(linear(&fc.clone().to_device(&gpu), Tensor::from_data(x.to_data(), &gpu)).to_device(&flex), fc.forward(x))
            }
            "matmul" => {
                let a = Tensor::<3>::random([3, 5, 16], Distribution::Normal(0.0, 1.0), &flex);
                let b = Tensor::<3>::random([3, 16, 7], Distribution::Normal(0.0, 1.0), &flex);
                let got = batched_matmul(Tensor::from_data(a.to_data(), &gpu), Tensor::from_data(b.to_data(), &gpu)).to_device(&flex);
                rel_l2(got, a.matmul(b))
            }
            "deconv" => {
                let up = ConvTranspose2dConfig::new([12, 7], [2, 2]).with_stride([2, 2]).init(&flex);
                let x = Tensor::<4>::random([3, 12, 5, 4], Distribution::Normal(0.0, 1.0), &flex);
                rel_l2(conv_transpose_2x2(&up.clone().to_device(&gpu), on(&x)).to_device(&flex), up.forward(x))
            }
            "group_norm" => {
                let gn = GroupNormConfig::new(8, 32).init(&flex);
                let x = Tensor::<4>::random([2, 32, 6, 7], Distribution::Normal(1.0, 2.0), &flex);
                rel_l2(group_norm_relu(on(&x), &gn.clone().to_device(&gpu)).to_device(&flex), group_norm_relu(x, &gn))
            }
            "roi_align" => {
                let levels: Vec<Tensor<4>> = [4usize, 8, 16, 32].iter().map(|s| Tensor::random([1, 6, 96 / s, 128 / s], Distribution::Normal(0.0, 1.0), &flex)).collect();
                let rois = [(0, [10.0, 12.0, 40.5, 33.0]), (0, [-60.0, -50.0, 180.0, 170.0])];
                let cfg = RoiAlignConfig { output_size: 7, sampling_ratio: 0, finest_scale: 56.0 };
                let host = roi_align(&RoiFeatures::new(levels.clone(), vec![4, 8, 16, 32]), &rois, &cfg);
                let device = RoiFeatures::new(levels.iter().map(on).collect(), vec![4, 8, 16, 32]);
                rel_l2(roi_align(&device, &rois, &cfg).to_device(&flex), host)
            }
            other => return Err(format!("unknown operator `{other}`").into()),
        })
    })?;
    println!("{op} on {why}, claimed hardware: rel L2 {rel:.2e}");
    if rel > 1e-5 {
        return Err(format!("{op}: rel L2 {rel:.2e} against flex").into());
    }
    Ok(())
}
