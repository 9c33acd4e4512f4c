use burn::nn::conv::Conv2dConfig;
use burn::nn::{GroupNormConfig, PaddingConfig2d};
use burn::module::Module;
use burn::tensor::{Device, DeviceKind, Distribution, Tensor};
use mask_rcnn_burn::layers::group_norm;
fn main() {
    let what = std::env::args().nth(1).unwrap_or_default();
    let device = Device::wgpu(DeviceKind::DefaultDevice);
    let flex = Device::flex();
    let x = Tensor::<4>::random([2, 16, 12, 10], Distribution::Default, &flex);
    let k: usize = if what == "conv1" { 1 } else { 3 };
    let conv = Conv2dConfig::new([16, 32], [k, k]).with_padding(PaddingConfig2d::Explicit(k / 2, k / 2, k / 2, k / 2)).init(&flex);
    let gn = GroupNormConfig::new(8, 32).init(&flex);
    let run = |d: &Device| -> Vec<f32> {
        let x = Tensor::<4>::from_data(x.to_data(), d);
        let conv = conv.clone().to_device(d);
        let gn = gn.clone().to_device(d);
        let y = match what.as_str() {
            "conv3" | "conv1" => conv.forward(x),
            "convgn" => group_norm::<true>(conv.forward(x), &gn),
            "deconv" => {
                let d = burn::nn::conv::ConvTranspose2dConfig::new([16, 8], [2, 2]).with_stride([2, 2]).init(&Device::flex());
                d.to_device(&x.device()).forward(x)
            }
            "softmax" => burn::tensor::activation::softmax(x, 1),
            _ => panic!(),
        };
        y.into_data().to_vec().unwrap()
    };
    let a = run(&flex);
    let b = run(&device);
    let m = a.iter().zip(&b).map(|(p, q)| (p - q).abs()).fold(0f32, f32::max);
    println!("{what}: max diff {m}");
}
