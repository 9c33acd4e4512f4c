//! What the CubeCL kernels share: the launch preamble, and the store of a register-blocked output block.

use cubecl::client::Client;
use cubecl::{CubeCount, CubeDim, calculate_cube_count_elemwise};

/// Cube count and size for one unit per element of `units` (the kernels check `ABSOLUTE_POS` against their
/// own bound, since the last cube is partly empty).
pub(crate) fn elementwise(client: &Client, units: usize) -> (CubeCount, CubeDim) {
    let dim = CubeDim::new(client, units);
    (calculate_cube_count_elemwise(client, units, dim), dim)
}

pub(crate) use block::store_block;

mod block {
    use cubecl::prelude::*;

    /// Writes `acc` (`rows` x `cols`, row-major) to `out[base + r * row_stride + c]` for the `valid_rows` x
    /// `valid_cols` corner that lies inside the output (blocks at the edges are partly outside).
    #[cube]
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn store_block<F: Float>(
        out: &mut Tensor<F>,
        acc: &Array<f32>,
        base: usize,
        row_stride: usize,
        valid_rows: usize,
        valid_cols: usize,
        #[comptime] rows: usize,
        #[comptime] cols: usize,
    ) {
        #[unroll]
        for r in 0..rows {
            if r < valid_rows {
                #[unroll]
                for c in 0..cols {
                    if c < valid_cols {
                        out[base + r * row_stride + c] = F::cast_from(acc[r * cols + c]);
                    }
                }
            }
        }
    }
}
