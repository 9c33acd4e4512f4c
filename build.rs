//! `#[backend_extension]` (layers/cube) generates code under `cfg(cube_backend)`, which burn-dispatch sets for
//! itself; this crate always builds Burn's wgpu backend, so it sets it too.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(cube_backend)");
    println!("cargo::rustc-cfg=cube_backend");
}
