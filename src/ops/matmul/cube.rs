//! A plain batched matmul kernel (one invocation per output element), for software Vulkan.
//!
//! Mesa's lavapipe (22.3 and 25.0) segfaults while compiling Burn 0.22.1's tiled matmul
//! (`cubek_matmul`'s `MatmulEntry`), which every `matmul`, 1x1 conv and transposed conv reaches. This kernel
//! compiles there; on hardware GPUs Burn's tuned matmul is used instead (see [`dispatch`](crate::ops::dispatch)).

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

mod kernel {
    use cubecl::prelude::*;

    #[cube(launch)]
    pub fn plain_matmul_kernel<F: Float>(
        lhs: &Tensor<F>,
        rhs: &Tensor<F>,
        out: &mut Tensor<F>,
        lhs_batch_stride: usize,
        rhs_batch_stride: usize,
        #[define(F)] _dtype: ElemType,
    ) {
        if ABSOLUTE_POS >= out.len() {
            terminate!();
        }
        let m = out.shape(1);
        let n = out.shape(2);
        let k = lhs.shape(2);
        let b = ABSOLUTE_POS / (m * n);
        let i = (ABSOLUTE_POS / n) % m;
        let j = ABSOLUTE_POS % n;
        let lhs_row = b * lhs_batch_stride + i * k;
        let rhs_col = b * rhs_batch_stride + j;
        // f32 accumulation whatever F is: an f16 sum over the box head's 12544 inputs would lose the result.
        let mut sum = 0.0f32;
        for kk in 0..k {
            sum += f32::cast_from(lhs[lhs_row + kk]) * f32::cast_from(rhs[rhs_col + kk * n]);
        }
        out[ABSOLUTE_POS] = F::cast_from(sum);
    }
}

impl PlainMatmul for CubeBackend {
    fn plain_matmul(lhs: FloatTensor<Self>, rhs: FloatTensor<Self>) -> FloatTensor<Self> {
        let (lhs, rhs) = (into_contiguous(lhs), into_contiguous(rhs));
        let (ls, rs) = (lhs.meta.shape().clone(), rhs.meta.shape().clone());
        let shape = output_shape(&ls, &rs);
        let out = empty_device_dtype(lhs.client.clone(), lhs.device.clone(), shape.clone(), lhs.dtype);
        let total = shape.num_elements();
        let (cube_count, cube_dim) = launch::elementwise(&lhs.client, total);
        let stride = |s: &Shape| if s[0] == 1 { 0 } else { s[1] * s[2] };
        let dtype = lhs.dtype;
        kernel::plain_matmul_kernel::launch(
            &out.client,
            cube_count,
            cube_dim,
            lhs.into_tensor_arg(),
            rhs.into_tensor_arg(),
            out.clone().into_tensor_arg(),
            stride(&ls),
            stride(&rs),
            dtype_to_storage_type(dtype),
        );
        out
    }
}

/// `lhs.matmul(rhs)` for `[B|1, M, K] x [B|1, K, N]` through [`PlainMatmul`].
pub fn plain_matmul(lhs: Tensor<3>, rhs: Tensor<3>) -> Tensor<3> {
    Tensor::from_dispatch(<Dispatch as PlainMatmul>::plain_matmul(lhs.into_dispatch(), rhs.into_dispatch()))
}
