//! Single operations on flex, to see where the pipeline's time goes: Burn's own ops next to the host kernels
//! the pipeline uses instead (`layers::flex`: GroupNorm+ReLU, Winograd 3x3 conv).
//!
//!     cargo bench --bench ops

use std::time::Duration;

use burn::nn::GroupNormConfig;
use burn::nn::conv::Conv2dConfig;
use burn::nn::PaddingConfig2d;
use burn::tensor::{Device, Distribution, Tensor};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use mask_rcnn_burn::internals::{conv2d, group_norm_relu};

/// The allocator the `infer` binary uses (see `alloc`).
#[global_allocator]
static ALLOC: mask_rcnn_burn::alloc::MiMalloc = mask_rcnn_burn::alloc::MiMalloc;

/// Times `op` on a fresh, uniquely owned copy of `x` (made outside the timing), as in the pipeline, where each
/// stage consumes the previous stage's output: the host kernels then take the buffer without copying it.
fn fresh<R>(b: &mut criterion::Bencher, x: &Tensor<4>, device: &Device, op: impl Fn(Tensor<4>) -> R) {
    let data = x.to_data();
    b.iter_batched(
        || Tensor::<4>::from_data(data.clone(), device),
        |x| {
            let y = op(x);
            device.sync().unwrap();
            y
        },
        BatchSize::PerIteration,
    )
}

fn ops(c: &mut Criterion) {
    mask_rcnn_burn::alloc::keep_freed_memory();
    let device = Device::flex();
    let mut g = c.benchmark_group("ops");
    g.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(5));
    let x = Tensor::<4>::random([1, 256, 200, 304], Distribution::Default, &device);
    let gn = GroupNormConfig::new(32, 256).init(&device);
    g.bench_function("gn_relu_256x200x304", |b| fresh(b, &x, &device, |t| group_norm_relu(t, &gn)));
    g.bench_function("burn_gn_256x200x304", |b| fresh(b, &x, &device, |t| gn.forward(t)));
    g.bench_function("copy_out_in_256x200x304", |b| b.iter(|| { let d = x.clone().into_data(); Tensor::<4>::from_data(d, &device) }));
    let conv = Conv2dConfig::new([256, 256], [3, 3]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)).with_bias(false).init(&device);
    g.bench_function("conv3x3_256x200x304", |b| fresh(b, &x, &device, |t| conv.forward(t)));
    g.bench_function("winograd_conv3x3_256x200x304", |b| fresh(b, &x, &device, |t| conv2d(&conv, t)));
    let c1 = Conv2dConfig::new([256, 1024], [1, 1]).with_bias(false).init(&device);
    g.bench_function("conv1x1_256to1024_200x304", |b| fresh(b, &x, &device, |t| c1.forward(t)));
    g.bench_function("host_conv1x1_256to1024_200x304", |b| fresh(b, &x, &device, |t| conv2d(&c1, t)));
    let s2 = Conv2dConfig::new([256, 512], [1, 1]).with_stride([2, 2]).with_bias(false).init(&device);
    g.bench_function("conv1x1s2_256to512_200x304", |b| fresh(b, &x, &device, |t| s2.forward(t)));
    g.bench_function("host_conv1x1s2_256to512_200x304", |b| fresh(b, &x, &device, |t| conv2d(&s2, t)));
    // ResNeXt 32x4d's grouped 3x3 convs: stage 1 (32 groups of 4 channels at stride 4) and stage 3 (32 of 16 at
    // stride 16, 23 of X-101's blocks), Burn's against the host im2col path.
    for (c, h, w) in [(128, 200, 304), (512, 50, 76)] {
        let x = Tensor::<4>::random([1, c, h, w], Distribution::Default, &device);
        let grouped = Conv2dConfig::new([c, c], [3, 3]).with_groups(32).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)).with_bias(false).init(&device);
        g.bench_function(format!("conv3x3_g32_{c}x{h}x{w}"), |b| fresh(b, &x, &device, |t| grouped.forward(t)));
        g.bench_function(format!("host_conv3x3_g32_{c}x{h}x{w}"), |b| fresh(b, &x, &device, |t| conv2d(&grouped, t)));
    }
    let w = c1.weight.val().reshape([1024, 256]);
    g.bench_function("matmul1x1_256to1024_200x304", |b| fresh(b, &x, &device, |t| w.clone().matmul(t.reshape([256, 200 * 304])).reshape([1, 1024, 200, 304])));
    // The GEMM rate the floors divide by (`benches/floors.py`): 36 single-threaded 256x256x512 GEMMs on
    // column-major operands, spread over the threads, as the Winograd phases run them (2 * 36 * 256^2 * 512 flop).
    let (a, bm) = (vec![0.5f32; 256 * 256], vec![0.25f32; 256 * 512]);
    let mut dst = vec![0f32; 36 * 256 * 512];
    g.bench_function("gemm_36x256x256x512", |b| {
        b.iter(|| {
            use rayon::prelude::*;
            dst.par_chunks_mut(256 * 512).for_each(|d| {
                // SAFETY: d is 256 x 512 column-major (column stride 256), a 256 x 256 and bm 256 x 512, both
                // column-major: every index lies in the three slices.
                unsafe {
                    gemm::gemm(256, 512, 256, d.as_mut_ptr(), 256, 1, false, a.as_ptr(), 256, 1, bm.as_ptr(), 256, 1,
                        0.0, 1.0, false, false, false, gemm::Parallelism::None);
                }
            })
        })
    });
    let r = Tensor::<4>::random([1000, 256, 7, 7], Distribution::Default, &device);
    g.bench_function("conv3x3_1000x256x7x7", |b| fresh(b, &r, &device, |t| conv.forward(t)));
    g.bench_function("winograd_conv3x3_1000x256x7x7", |b| fresh(b, &r, &device, |t| conv2d(&conv, t)));
    g.bench_function("gn_relu_1000x256x7x7", |b| fresh(b, &r, &device, |t| group_norm_relu(t, &gn)));
    g.bench_function("burn_gn_1000x256x7x7", |b| fresh(b, &r, &device, |t| gn.forward(t)));
    g.finish();
    wgpu_ops(c);
}

/// A small run on wgpu (P4-sized conv + GN + ReLU), when wgpu finds an adapter; on lavapipe this measures the
/// software driver, on a real GPU the kernels. The warm-up absorbs compilation and autotuning.
fn wgpu_ops(c: &mut Criterion) {
    if mask_rcnn_burn::device::adapters().is_empty() {
        eprintln!("no wgpu adapter: wgpu benchmarks skipped");
        return;
    }
    let device = Device::wgpu(burn::tensor::DeviceKind::DefaultDevice);
    let mut g = c.benchmark_group("wgpu");
    g.sample_size(10).warm_up_time(Duration::from_secs(3)).measurement_time(Duration::from_secs(10));
    let x = Tensor::<4>::random([1, 256, 50, 76], Distribution::Default, &device);
    let conv = Conv2dConfig::new([256, 256], [3, 3]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)).with_bias(false).init(&device);
    let gn = GroupNormConfig::new(32, 256).init(&device);
    g.bench_function("conv3x3_gn_relu_256x50x76", |b| b.iter(|| { let y = group_norm_relu(conv2d(&conv, x.clone()), &gn); device.sync().unwrap(); y }));
    g.bench_function("conv3x3_256x50x76", |b| b.iter(|| { let y = conv2d(&conv, x.clone()); device.sync().unwrap(); y }));
    g.bench_function("gn_relu_256x50x76", |b| b.iter(|| { let y = group_norm_relu(x.clone(), &gn); device.sync().unwrap(); y }));
    // The box head's work on 200 RoIs: a 3x3 conv on 7x7 maps (11.6 GFLOP) and the 12544->1024 fc (5.1 GFLOP).
    let rois = Tensor::<4>::random([200, 256, 7, 7], Distribution::Default, &device);
    g.bench_function("conv3x3_200rois_7x7", |b| b.iter(|| { let y = conv2d(&conv, rois.clone()); device.sync().unwrap(); y }));
    let fc = burn::nn::LinearConfig::new(256 * 49, 1024).init(&device);
    let flat = rois.clone().reshape([200, 256 * 49]);
    g.bench_function("fc_200x12544x1024", |b| b.iter(|| { let y = mask_rcnn_burn::internals::linear(&fc, flat.clone()); device.sync().unwrap(); y }));
    g.finish();
}

criterion_group!(benches, ops);
criterion_main!(benches);
