//! CubeCL kernels for the GPU backends (wgpu, Vulkan), reached through Burn's backend-extension mechanism
//! (`#[backend_extension]`: one implementation for `CubeBackend`, a lazy one generated for `Fusion`).

pub mod conv;
pub mod group_norm;
pub mod matmul;

pub use conv::plain_conv2d;
pub use group_norm::group_norm;
pub use matmul::{plain_matmul, use_plain_matmul};
