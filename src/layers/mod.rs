//! Building blocks shared by the stages.

pub mod conv;
pub mod conv_module;
pub mod cube;
pub mod flex;
pub mod linear;
pub mod group_norm;

pub use conv::conv2d;
pub use conv_module::{ConvModule, ConvModuleConfig, conv_no_bias};
pub use group_norm::group_norm;
pub use linear::{conv_transpose_2x2, linear};
