//! The whole network as one Burn module, its fields named like mmdetection's top-level state_dict prefixes, and
//! its inference: a batch of network inputs in, each image's detections (resized-image frame) and mask logits out.

use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::backbone::{ResNet, ResNetConfig};
use crate::config::{ModelConfig, TestConfig};
use crate::device::DeviceProfile;
use crate::error::{Error, Result};
use crate::neck::{Fpn, FpnConfig, PyramidFeatures};
use crate::precision::Precision;
use crate::roi_heads::{BBoxHeadConfig, MaskHeadConfig, RoiHead, RoiHeadConfig, RoiOutput};
use crate::rpn::{RpnHead, RpnHeadConfig};
use crate::timing::{Stage, StageClock};

/// Keys `backbone.…`, `neck.…`, `rpn_head.…`, `roi_head.{bbox_head,mask_head}.…`.
#[derive(Module, Debug)]
pub struct MaskRcnn {
    /// ResNet or ResNeXt with GroupNorm.
    pub backbone: ResNet,
    /// FPN with GroupNorm.
    pub neck: Fpn,
    /// The RPN head, shared by every level, and its proposal generation.
    pub rpn_head: RpnHead,
    /// Box and mask heads, and their RoI extractors.
    pub roi_head: RoiHead,
}

impl MaskRcnn {
    /// The architecture of `config` with heads for `num_classes` classes, its parameters uninitialised (lazily
    /// random) until weights are loaded: each module's config defaults are mmdetection's GN Mask R-CNN; the model
    /// config sets depth, groups, norm, anchors and RoI sizes.
    pub fn new(config: &ModelConfig, num_classes: usize, device: &Device) -> Self {
        let (arch, norm) = (&config.model, &config.model.norm);
        Self {
            backbone: ResNetConfig::new()
                .with_depth(arch.backbone.depth)
                .with_groups(arch.backbone.groups)
                .with_base_width(arch.backbone.base_width)
                .with_norm(norm.clone())
                .init(device),
            neck: FpnConfig::new().with_norm(norm.clone()).init(device),
            rpn_head: RpnHeadConfig::new().with_prior(arch.rpn.clone()).init(device),
            roi_head: RoiHeadConfig::new()
                .with_roi(arch.roi.clone())
                .with_bbox_head(BBoxHeadConfig::new().with_num_classes(num_classes).with_norm(norm.clone()))
                .with_mask_head(MaskHeadConfig::new().with_num_classes(num_classes).with_norm(norm.clone()))
                .init(device),
        }
    }

    /// Backbone and FPN: P2..P6 of a batch, stored in `precision`. Both run on the f32 input in f32 whatever
    /// `precision`, as their ~60 layers amplify each f16 rounding (on the small GPU case, f16 from the input on:
    /// P2..P6 3e-3 relative L2 off f32, mask I/U 0.916; from the stem's output: 2.6e-3, 0.937; from C2..C5: 6.2e-4,
    /// 0.980; from P2..P6, one rounding: 2.1e-4, 0.990; `cargo run --release --example precision_report`).
    pub fn features(&self, input: Tensor<4>, precision: Precision) -> PyramidFeatures {
        // C2..C5 go into the FPN by value, so each is freed after its lateral conv (keeping them: +88 MB of peak
        // memory at 800x1216).
        self.neck.forward(self.backbone.forward(input)).map(|p| precision.cast(p))
    }

    /// Each image's detections and mask logits for a batch of network inputs `[N, 3, H, W]` (`img_shapes[i]`:
    /// image `i`'s resized, unpadded `(h, w)`), the pyramid and heads' activations in `precision`, timing each
    /// stage on `clock`. The batch goes through in parts where the device cannot bind the backbone's largest
    /// activation of all of it at once.
    pub(crate) fn predict(&self, input: Tensor<4>, img_shapes: &[(usize, usize)], test: &TestConfig, precision: Precision, clock: &mut StageClock) -> Result<RoiOutput> {
        let [n, _, h, w] = input.dims();
        if n != img_shapes.len() {
            return Err(Error::internal("model", format!("{n} inputs for {} image shapes", img_shapes.len())));
        }
        let profile = DeviceProfile::of(&input.device());
        let per_part = profile.rows_per_binding(self.backbone.activation_per_image(h, w) * input.dtype().size());
        if n <= per_part {
            return self.predict_part(input, img_shapes, test, precision, clock);
        }
        let (mut detections, mut logits) = (Vec::with_capacity(n), Vec::new());
        for start in (0..n).step_by(per_part) {
            let end = (start + per_part).min(n);
            let out = self.predict_part(input.clone().slice([start..end]), &img_shapes[start..end], test, precision, clock)?;
            detections.extend(out.detections);
            logits.push(out.mask_logits);
        }
        Ok(RoiOutput { detections, mask_logits: Tensor::cat(logits, 0) })
    }

    fn predict_part(&self, input: Tensor<4>, img_shapes: &[(usize, usize)], test: &TestConfig, precision: Precision, clock: &mut StageClock) -> Result<RoiOutput> {
        let device = input.device();
        let pyramid = self.features(input, precision);
        device.sync().map_err(|e| Error::device("backbone", e))?;
        clock.lap(Stage::BackboneFpn);
        let proposals = self.rpn_head.predict(&pyramid, img_shapes, &test.rpn)?;
        clock.lap(Stage::Rpn);
        // Where RoIAlign runs on the host, the features hold their own copies: the pyramid goes now.
        let features = self.roi_head.features(pyramid.into());
        self.roi_head.predict(&features, &proposals, img_shapes, &test.rcnn, clock)
    }
}
