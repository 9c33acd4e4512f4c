//! A plain batched matmul kernel (each invocation a `ROWS` x `COLS` block of the output), for software Vulkan.
//!
//! Mesa's lavapipe (22.3 and 25.0) segfaults while compiling Burn 0.22.1's tiled matmul
//! (`cubek_matmul`'s `MatmulEntry`), which every `matmul`, 1x1 conv and transposed conv reaches. This kernel
//! compiles there; on hardware GPUs Burn's tuned matmul is used instead (see [`dispatch`](crate::ops::dispatch)).
//! Loads set its speed on lavapipe (see [`conv`](crate::ops::conv)'s plain kernel): a block takes `ROWS + COLS`
//! loads per step of the inner dimension for `ROWS * COLS` multiply-adds.

use burn::backend::cubecl::dtype_to_storage_type;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, backend_extension};
use burn::tensor::{Shape, Tensor};
use burn_cubecl::CubeBackend;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_dtype;

use crate::ops::launch;

#[backend_extension(Cube, Fusion)]
pub trait PlainMatmul: Backend {
    /// `[B|1, M, K] x [B|1, K, N] -> [B, M, N]`.
    #[fusion(dtype = lhs, shape = output_shape(lhs, rhs))]
    fn plain_matmul(lhs: FloatTensor<Self>, rhs: FloatTensor<Self>) -> FloatTensor<Self>;
}

fn output_shape(lhs: &Shape, rhs: &Shape) -> Shape {
    Shape::from(vec![lhs[0].max(rhs[0]), lhs[1], rhs[2]])
}

/// Output rows per invocation.
const ROWS: usize = 8;
/// Output columns per invocation.
const COLS: usize = 8;

mod kernel {
    use cubecl::prelude::*;

    /// One invocation per (batch, block of `rows` output rows, block of `cols` output columns).
    #[cube(launch)]
    pub fn plain_matmul_kernel<F: Float>(
        lhs: &Tensor<F>,
        rhs: &Tensor<F>,
        out: &mut Tensor<F>,
        lhs_batch_stride: usize,
        rhs_batch_stride: usize,
        #[comptime] rows: usize,
        #[comptime] cols: usize,
        #[define(F)] _dtype: ElemType,
    ) {
        let m = out.shape(1);
        let n = out.shape(2);
        let k = lhs.shape(2);
        let row_blocks = (m + rows - 1) / rows;
        let col_blocks = (n + cols - 1) / cols;
        if ABSOLUTE_POS >= out.shape(0) * row_blocks * col_blocks {
            terminate!();
        }
        let j0 = (ABSOLUTE_POS % col_blocks) * cols;
        let i0 = ((ABSOLUTE_POS / col_blocks) % row_blocks) * rows;
        let b = ABSOLUTE_POS / (col_blocks * row_blocks);
        // Rows and columns past the end read the last one and are not written.
        let mut lhs_rows = Array::<usize>::new(rows);
        #[unroll]
        for r in 0..rows {
            lhs_rows[r] = b * lhs_batch_stride + usize::min(i0 + r, m - 1) * k;
        }
        let mut rhs_cols = Array::<usize>::new(cols);
        #[unroll]
        for c in 0..cols {
            rhs_cols[c] = b * rhs_batch_stride + usize::min(j0 + c, n - 1);
        }
        // f32 accumulation whatever F is: an f16 sum over the box head's 12544 inputs would lose the result.
        let mut acc = Array::<f32>::new(rows * cols);
        #[unroll]
        for i in 0..rows * cols {
            acc[i] = 0.0;
        }
        let mut a = Array::<f32>::new(rows);
        for kk in 0..k {
            #[unroll]
            for r in 0..rows {
                a[r] = f32::cast_from(lhs[lhs_rows[r] + kk]);
            }
            let offset = kk * n;
            #[unroll]
            for c in 0..cols {
                let v = f32::cast_from(rhs[rhs_cols[c] + offset]);
                #[unroll]
                for r in 0..rows {
                    acc[r * cols + c] += a[r] * v;
                }
            }
        }
        let base = (b * m + i0) * n + j0;
        crate::ops::launch::store_block(out, &acc, base, n, m - i0, n - j0, rows, cols);
    }
}

impl PlainMatmul for CubeBackend {
    fn plain_matmul(lhs: FloatTensor<Self>, rhs: FloatTensor<Self>) -> FloatTensor<Self> {
        let (lhs, rhs) = (into_contiguous(lhs), into_contiguous(rhs));
        let (ls, rs) = (lhs.meta.shape().clone(), rhs.meta.shape().clone());
        assert!(ls[0] == rs[0] || ls[0] == 1 || rs[0] == 1, "batches of {} and {}: equal, or one of 1", ls[0], rs[0]);
        assert_eq!(ls[2], rs[1], "inner dimensions");
        let shape = output_shape(&ls, &rs);
        let out = empty_device_dtype(lhs.client.clone(), lhs.device.clone(), shape.clone(), lhs.dtype);
        if shape.num_elements() == 0 {
            return out;
        }
        let units = shape[0] * shape[1].div_ceil(ROWS) * shape[2].div_ceil(COLS);
        let (cube_count, cube_dim) = launch::elementwise(&lhs.client, units);
        let stride = |s: &Shape| if s[0] == 1 { 0 } else { s[1] * s[2] };
        let dtype = lhs.dtype;
        launch::counted();
        kernel::plain_matmul_kernel::launch(
            &out.client,
            cube_count,
            cube_dim,
            lhs.into_tensor_arg(),
            rhs.into_tensor_arg(),
            out.clone().into_tensor_arg(),
            stride(&ls),
            stride(&rs),
            ROWS,
            COLS,
            dtype_to_storage_type(dtype),
        );
        out
    }
}

/// `lhs.matmul(rhs)` for `[B|1, M, K] x [B|1, K, N]` through [`PlainMatmul`].
pub fn plain_matmul(lhs: Tensor<3>, rhs: Tensor<3>) -> Tensor<3> {
    Tensor::from_dispatch(<Dispatch as PlainMatmul>::plain_matmul(lhs.into_dispatch(), rhs.into_dispatch()))
}
