//! mmcv's `ConvWS2d` (the gn+ws models), folded into the weights once at load instead of at every forward:
//! each output filter `w` of a conv followed by a GroupNorm becomes `(w - mean(w)) / (std(w) + eps)`, the mean and
//! the unbiased std taken over the filter's fan-in (`conv_ws_2d` in mmcv/cnn/bricks/conv_ws.py).

use rayon::prelude::*;

use super::state_dict::StateDict;

/// Whether `key` is the weight of a conv mmdetection's gn+ws configs build as `ConvWS2d`: every 4-D weight of a
/// conv followed by a GroupNorm (backbone stem, bottleneck and downsample convs, FPN lateral and output convs,
/// the box head's shared convs, the mask head's convs), and so not the RPN's, the mask head's upsampling or
/// its logits.
pub(crate) fn is_standardized(key: &str, shape: &[usize]) -> bool {
    let excluded = key.starts_with("rpn_head.") || key.starts_with("roi_head.mask_head.upsample.") || key.starts_with("roi_head.mask_head.conv_logits.");
    shape.len() == 4 && key.ends_with(".weight") && !excluded
}

/// Standardises, in place, the filters of every conv [`is_standardized`] names.
pub(crate) fn standardize_weights(dict: &mut StateDict, eps: f64) {
    for (key, t) in dict.tensors.iter_mut() {
        if !is_standardized(key, &t.shape) {
            continue;
        }
        let fan_in: usize = t.shape[1..].iter().product();
        if fan_in == 0 {
            continue;
        }
        t.data.par_chunks_mut(fan_in).for_each(|filter| standardize(filter, eps));
    }
}

/// One filter: statistics in f64 (torch reduces in f32 with its own order: the two agree to an ulp of the
/// result), the affine step in f32 as torch computes it.
fn standardize(filter: &mut [f32], eps: f64) {
    let n = filter.len() as f64;
    let mean = filter.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = filter.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    let (mean, denom) = (mean as f32, (var.sqrt() as f32) + eps as f32);
    for v in filter {
        *v = (*v - mean) / denom;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::weights::HostTensor;

    #[test]
    fn filters_get_zero_mean_and_unit_unbiased_std() {
        let mut dict = StateDict::default();
        let values: Vec<f32> = (0..2 * 3 * 3 * 3).map(|i| (i as f32 * 0.37).sin() * 2.0 + 0.5).collect();
        for key in ["backbone.layer1.0.conv2.weight", "rpn_head.rpn_conv.weight", "roi_head.mask_head.upsample.weight"] {
            dict.tensors.insert(key.into(), HostTensor { shape: vec![2, 3, 3, 3], data: values.clone().into() });
        }
        standardize_weights(&mut dict, 1e-5);
        let w = &dict.tensors["backbone.layer1.0.conv2.weight"].data;
        for filter in w.chunks(27) {
            let mean = filter.iter().map(|&v| v as f64).sum::<f64>() / 27.0;
            let std = (filter.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / 26.0).sqrt();
            assert!(mean.abs() < 1e-6 && (std - 1.0).abs() < 1e-4, "mean {mean}, std {std}");
        }
        assert_eq!(dict.tensors["rpn_head.rpn_conv.weight"].data, values, "the RPN is not standardised");
        assert_eq!(dict.tensors["roi_head.mask_head.upsample.weight"].data, values);
        assert!(!is_standardized("roi_head.bbox_head.fc_cls.weight", &[81, 1024]));
        assert!(is_standardized("backbone.layer2.0.downsample.0.weight", &[512, 256, 1, 1]));
        assert!(!is_standardized("backbone.layer2.0.downsample.1.weight", &[512]));
    }
}
