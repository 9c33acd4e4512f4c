//! Where half precision loses accuracy on a GPU device: each stage at f16 against flex at f32, on the same inputs
//! (every stage after the first is fed the f32 reference's own inputs, so each row is that stage's error alone).
//!
//!     cargo run --release --example precision_report -- [--device wgpu]
//!
//! The r50_hopper_320 fixture's weights and image with 100 proposals and 20 detections (the GPU tests' small case).

mod fixture;

use burn::tensor::{DType, Device, Tensor};
use clap::Parser;
use mask_rcnn_burn::eval::{DetRef, mask_overlap, match_detections};
use mask_rcnn_burn::{Detector, DeviceProfile, DeviceSpec, Precision};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "wgpu")]
    device: DeviceSpec,
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_into_vec::<f32>().unwrap()
}

fn rel_l2(a: &[f32], b: &[f32]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).powi(2)).sum();
    let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (num / den.max(1e-30)).sqrt()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // SAFETY: first thing in main: no other thread exists yet.
    unsafe { mask_rcnn_burn::device::quiet_vulkan_probe() };
    let args = Args::parse();
    let (weights, config, img) = fixture::r50_hopper([320, 240], 100, 20)?;
    let gpu = DeviceProfile::resolve(args.device)?.0.device().clone();
    let flex = Detector::from_state_dict(config.clone(), weights.clone(), Device::flex())?;
    let half = Detector::from_state_dict(config, weights, gpu.clone())?.with_precision(Precision::F16);
    let pre = flex.preprocess(&img);
    let (fm, hm) = (flex.model(), half.model());
    let to_gpu = |t: &Tensor<4>| Tensor::<4>::from_data(t.to_data(), &gpu).cast(DType::F16);

    let input = pre.to_tensor(&Device::flex());
    let pf = fm.features(input.clone(), Precision::F32);
    let ph = hm.features(Tensor::<4>::from_data(input.to_data(), &gpu), Precision::F16);
    println!("| stage (f16 on {:?} against flex f32) | rel L2 |\n|---|---|", gpu);
    for (i, (a, b)) in pf.iter().zip(&ph).enumerate() {
        println!("| P{} (backbone + FPN) | {:.2e} |", i + 2, rel_l2(&values(b.clone()), &values(a.clone())));
    }
    let shapes = [pre.meta.img_shape];
    let test = &flex.config().test;
    let pyramid_h: Vec<Tensor<4>> = pf.iter().map(to_gpu).collect();
    for (l, ((ca, ra), (cb, rb))) in fm.rpn_head.forward_levels(&pf).into_iter().zip(hm.rpn_head.forward_levels(&pyramid_h)).enumerate() {
        println!("| RPN logits / deltas P{} | {:.2e} / {:.2e} |", l + 2, rel_l2(&values(cb), &values(ca)), rel_l2(&values(rb), &values(rb_ref(&ra))));
    }
    let props = fm.rpn_head.predict(&pf, &shapes, &test.rpn)?;
    let (feat_f, feat_h) = (fm.roi_head.features(pf.to_vec()), hm.roi_head.features(pyramid_h.clone()));
    let rois: Vec<(usize, [f32; 4])> = props[0].boxes.iter().map(|b| (0, *b)).collect();
    let (ra, rb) = (fm.roi_head.bbox_roi_features(&feat_f, &rois), hm.roi_head.bbox_roi_features(&feat_h, &rois));
    println!("| box RoIAlign | {:.2e} |", rel_l2(&values(rb.clone()), &values(ra.clone())));
    let ((ca, da), (cb, db)) = (fm.roi_head.bbox_head.forward(ra), hm.roi_head.bbox_head.forward(rb));
    println!("| box head logits / deltas | {:.2e} / {:.2e} |", rel_l2(&values(cb), &values(ca)), rel_l2(&values(db), &values(da)));
    let dets = fm.roi_head.predict_boxes(&feat_f, &props, &shapes, &test.rcnn)?;
    let droi: Vec<(usize, [f32; 4])> = dets[0].boxes.iter().map(|b| (0, *b)).collect();
    let (ma, mb) = (fm.roi_head.mask_roi_features(&feat_f, &droi), hm.roi_head.mask_roi_features(&feat_h, &droi));
    println!("| mask RoIAlign | {:.2e} |", rel_l2(&values(mb.clone()), &values(ma.clone())));
    let (la, lb) = (fm.roi_head.mask_head.forward_own_class(ma, &dets[0].labels), hm.roi_head.mask_head.forward_own_class(mb, &dets[0].labels));
    let (la, lb) = (values(la), values(lb));
    let flips = la.iter().zip(&lb).filter(|(a, b)| (**a >= 0.0) != (**b >= 0.0)).count();
    println!("| mask logits (own class) | {:.2e} ({flips} of {} logits change sign) |", rel_l2(&lb, &la), la.len());
    // End to end.
    let (a, b) = (flex.predict(&img)?, half.predict(&img)?);
    let r = |d: &mask_rcnn_burn::Detection| DetRef { bbox: d.bbox, score: d.score, label: d.label };
    let pairs = match_detections(&a.items.iter().map(r).collect::<Vec<_>>(), &b.items.iter().map(r).collect::<Vec<_>>(), 0.98, 2e-3);
    let loose = match_detections(&a.items.iter().map(r).collect::<Vec<_>>(), &b.items.iter().map(r).collect::<Vec<_>>(), 0.9, 0.02);
    let (mut i, mut u) = (0, 0);
    for &(x, y) in &loose {
        let (ii, uu) = mask_overlap(&a.items[x].mask.to_dense(), &b.items[y].mask.to_dense());
        (i, u) = (i + ii, u + uu);
    }
    println!("\nend to end: {} strict / {} loose of {} matched, mask I/U {:.5}", pairs.len(), loose.len(), a.len(), i as f64 / u.max(1) as f64);
    Ok(())
}

fn rb_ref(t: &Tensor<4>) -> Tensor<4> {
    t.clone()
}
