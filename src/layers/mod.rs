//! Burn modules shared by the stages (mmcv's `ConvModule`, the GroupNorm settings); the operators they compute
//! with are in `ops`.

mod conv_module;
mod norm;

pub use conv_module::{ConvModule, ConvModuleConfig, conv_grouped, conv_no_bias};
pub use norm::NormConfig;
