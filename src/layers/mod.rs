//! Building blocks shared by the stages.

pub mod conv_module;
pub mod group_norm;

pub use conv_module::{ConvModule, ConvModuleConfig, conv_no_bias};
pub use group_norm::group_norm;
