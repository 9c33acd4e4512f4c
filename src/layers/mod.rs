//! Burn modules shared by the stages (mmcv's `ConvModule`); the operators they compute with are in `ops`.

pub mod conv_module;

pub use conv_module::{ConvModule, ConvModuleConfig, conv_no_bias};
