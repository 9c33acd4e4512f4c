//! CubeCL kernels for the GPU backends (wgpu, Vulkan), reached through Burn's backend-extension mechanism
//! (`#[backend_extension]`: one implementation for `CubeBackend`, a lazy one generated for `Fusion`).

pub mod matmul;

pub use matmul::{plain_matmul, use_plain_matmul};
