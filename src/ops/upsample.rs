//! FPN's top-down merge, `fine + nearest_upsample_2x(coarse)`: on flex in f32 one pass over host buffers, adding
//! in place (Burn's composition, used elsewhere, materialises the upsampled map through a strided copy first).

use burn::tensor::{DType, Tensor};

use super::dispatch::{Impl, Op, implementation};
use super::flex;

/// `fine + F.interpolate(coarse, scale_factor=2, mode='nearest')` for `fine: [N, C, 2H, 2W]`,
/// `coarse: [N, C, H, W]`.
pub fn add_upsampled_2x(fine: Tensor<4>, coarse: Tensor<4>) -> Tensor<4> {
    let [n, c, h, w] = coarse.dims();
    assert_eq!(fine.dims(), [n, c, 2 * h, 2 * w], "the fine map is exactly twice the coarse one");
    if implementation(Op::UpsampleAdd, &fine.device(), fine.dtype()) != Impl::Host || coarse.dtype() != DType::F32 {
        let up = coarse.reshape([n, c, h, 1, w, 1]).expand([n, c, h, 2, w, 2]).reshape([n, c, 2 * h, 2 * w]);
        return fine.add(up);
    }
    let device = fine.device();
    let mut values = flex::to_host(fine);
    add_upsampled_in_place(&mut values, &flex::host_values(coarse), w);
    flex::from_host(values, [n, c, 2 * h, 2 * w], &device)
}

/// `fine[2y + dy, 2x + dx] += coarse[y, x]` over planes of `coarse` rows `w` wide, fine rows `2w` wide.
fn add_upsampled_in_place(fine: &mut [f32], coarse: &[f32], w: usize) {
    use rayon::prelude::*;
    if w == 0 {
        return;
    }
    fine.par_chunks_mut(2 * 2 * w).zip(coarse.par_chunks(w)).for_each(|(rows, src)| {
        for row in rows.chunks_exact_mut(2 * w) {
            for (pair, v) in row.chunks_exact_mut(2).zip(src) {
                pair[0] += v;
                pair[1] += v;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};

    #[test]
    fn host_merge_equals_burns_composition() {
        let device = Device::flex();
        let fine = Tensor::<4>::random([2, 3, 6, 10], Distribution::Default, &device);
        let coarse = Tensor::<4>::random([2, 3, 3, 5], Distribution::Default, &device);
        let [n, c, h, w] = coarse.dims();
        let up = coarse.clone().reshape([n, c, h, 1, w, 1]).expand([n, c, h, 2, w, 2]).reshape([n, c, 2 * h, 2 * w]);
        let want = fine.clone().add(up).into_data().try_to_vec::<f32>().unwrap();
        let got = add_upsampled_2x(fine, coarse).into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(got, want);
    }
}
