//! Backbone: image tensor -> C2..C5.

mod bottleneck;
mod resnet;

pub use bottleneck::{Bottleneck, BottleneckConfig};
pub use resnet::{BackboneFeatures, ResNet, ResNetConfig};
