//! The launch preamble the CubeCL kernels share.

use cubecl::client::Client;
use cubecl::{CubeCount, CubeDim, calculate_cube_count_elemwise};

/// Cube count and size for one unit per element of `units` (the kernels check `ABSOLUTE_POS` against their
/// own bound, since the last cube is partly empty).
pub(crate) fn elementwise(client: &Client, units: usize) -> (CubeCount, CubeDim) {
    let dim = CubeDim::new(client, units);
    (calculate_cube_count_elemwise(client, units, dim), dim)
}
