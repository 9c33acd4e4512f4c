//! `[rows, cols]` -> `[cols, rows]` on host buffers: the RoI heads' channels-last copies of the pyramid levels
//! (`[C, H W]` -> `[H W, C]`) and the fc weights loaded for a GPU (`[out, in]` -> `[in, out]`). 16 x 16 blocks go
//! through a local array, so input runs are read and output runs written as whole vectors (per-element strided
//! writes took twice as long on the 256 x 200 x 304 level); the output is not zeroed first.

use rayon::prelude::*;

use super::simd::Simd;

/// Block side: one AVX-512 vector of f32.
const B: usize = 16;

/// The transpose of `data` (`[rows, cols]`, row-major), in parallel over blocks of output rows.
///
/// # Panics
/// If `data` is not `rows * cols` long.
pub(crate) fn transpose_2d(data: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let len = rows * cols;
    assert_eq!(data.len(), len, "a [{rows}, {cols}] matrix");
    let mut out: Vec<f32> = Vec::with_capacity(len);
    if len > 0 {
        let simd = Simd::detect();
        out.spare_capacity_mut()[..len].par_chunks_mut(B * rows).enumerate().for_each(|(chunk, dst)| {
            columns(simd, data, rows, cols, chunk * B, dst);
        });
    }
    // SAFETY: the capacity is `len`; the chunks cover all `cols` output rows of `rows` values, and `columns` writes
    // every value of its chunk.
    unsafe { out.set_len(len) };
    out
}

/// Output rows `j0..j0 + dst.len() / rows` (input columns) of the transpose into `dst`, every element written.
fn columns(simd: Simd, data: &[f32], rows: usize, cols: usize, j0: usize, dst: &mut [std::mem::MaybeUninit<f32>]) {
    match simd {
        // SAFETY: `Simd::detect` saw the CPU support these features.
        #[cfg(target_arch = "x86_64")]
        Simd::Avx512 => unsafe { columns_avx512(data, rows, cols, j0, dst) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Simd::Avx2 => unsafe { columns_avx2(data, rows, cols, j0, dst) },
        Simd::Baseline => columns_with(data, rows, cols, j0, dst),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn columns_avx512(data: &[f32], rows: usize, cols: usize, j0: usize, dst: &mut [std::mem::MaybeUninit<f32>]) {
    columns_with(data, rows, cols, j0, dst)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn columns_avx2(data: &[f32], rows: usize, cols: usize, j0: usize, dst: &mut [std::mem::MaybeUninit<f32>]) {
    columns_with(data, rows, cols, j0, dst)
}

#[inline(always)]
fn columns_with(data: &[f32], rows: usize, cols: usize, j0: usize, dst: &mut [std::mem::MaybeUninit<f32>]) {
    let n = dst.len() / rows;
    let full_rows = rows - rows % B;
    if n == B {
        for r0 in (0..full_rows).step_by(B) {
            // Plain loops: `array::from_fn` closures can stay uninlined, outside the target features.
            let mut block = [[0f32; B]; B];
            for (i, run) in block.iter_mut().enumerate() {
                run.copy_from_slice(&data[(r0 + i) * cols + j0..][..B]);
            }
            for (j, out) in dst.chunks_exact_mut(rows).enumerate() {
                for (i, v) in out[r0..r0 + B].iter_mut().enumerate() {
                    v.write(block[i][j]);
                }
            }
        }
    }
    let done = if n == B { full_rows } else { 0 };
    for (j, out) in dst.chunks_exact_mut(rows).enumerate() {
        for (r, v) in out.iter_mut().enumerate().skip(done) {
            v.write(data[r * cols + j0 + j]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every value lands where the definition says, with and without partial blocks, on every SIMD level.
    #[test]
    fn transposes_by_the_definition() {
        for (rows, cols) in [(32, 48), (19, 21), (5, 7), (256, 34), (1, 17), (17, 1), (0, 3), (3, 0), (64, 16)] {
            let data: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
            for simd in Simd::all_available() {
                let mut out = vec![std::mem::MaybeUninit::new(-1f32); rows * cols];
                if out.is_empty() {
                    continue;
                }
                for (chunk, dst) in out.chunks_mut(B * rows).enumerate() {
                    columns(simd, &data, rows, cols, chunk * B, dst);
                }
                for j in 0..cols {
                    for r in 0..rows {
                        // SAFETY: initialised above (and overwritten by the transpose).
                        let got = unsafe { out[j * rows + r].assume_init() };
                        assert_eq!(got, data[r * cols + j], "{simd:?} [{rows}, {cols}] ({r}, {j})");
                    }
                }
            }
            let t = transpose_2d(&data, rows, cols);
            assert!((0..rows * cols).all(|k| t[(k % cols) * rows + k / cols] == data[k]), "[{rows}, {cols}]");
        }
    }
}
