//! What the CubeCL kernels share: the launch preamble, the store of a register-blocked output block, and the
//! count of this crate's kernel launches (CubeCL keeps none), which the batch tests and reports read.

use std::sync::atomic::{AtomicU64, Ordering};

use cubecl::client::Client;
use cubecl::{CubeCount, CubeDim, calculate_cube_count_elemwise};

/// Cube count and size for one unit per element of `units` (the kernels check `ABSOLUTE_POS` against their
/// own bound, since the last cube is partly empty).
pub(crate) fn elementwise(client: &Client, units: usize) -> (CubeCount, CubeDim) {
    let dim = CubeDim::new(client, units);
    (calculate_cube_count_elemwise(client, units, dim), dim)
}

pub(crate) use block::store_block;

/// This crate's kernel launches in this process (Burn's own kernels are not counted). Process-wide: Burn's fusion
/// runs the operations of a stream on a thread of its own, not on the thread that asked for them, so a count per
/// calling thread would see none. Measure it where nothing else runs kernels (examples/launches.rs, gpu_report).
static LAUNCHES: AtomicU64 = AtomicU64::new(0);

/// Counts one launch of a kernel of this crate.
pub(crate) fn counted() {
    LAUNCHES.fetch_add(1, Ordering::Relaxed);
}

/// This crate's kernel launches so far in this process.
pub fn launches() -> u64 {
    LAUNCHES.load(Ordering::Relaxed)
}

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
