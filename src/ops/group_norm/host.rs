//! GroupNorm (+ReLU, or + a residual then ReLU) in place: per (sample, group) chunk, a mean pass, a centred
//! variance pass (both summed in f64 from f32 lanes, so the variance does not cancel), and one
//! `(x - mean) * scale + beta` pass that also applies what follows (centred first, like PyTorch, so a large mean
//! costs no precision). Chunks are contiguous in NCHW and run in parallel.

use rayon::prelude::*;

use crate::ops::simd::Simd;

/// What the normalising pass applies after the affine, in the same f32 order as the separate ops.
#[derive(Clone, Copy)]
pub enum Then<'a> {
    /// Nothing.
    Nothing,
    /// `max(y, 0)`.
    Relu,
    /// `max(y + residual, 0)`: a ResNet block's end (`residual` laid out like `x`).
    AddRelu(&'a [f32]),
}

/// `x: [N, C, HW]` flattened; `gamma`, `beta`: `[C]`; biased variance like PyTorch.
#[allow(clippy::too_many_arguments)]
pub fn group_norm_in_place(x: &mut [f32], channels: usize, hw: usize, groups: usize, gamma: &[f32], beta: &[f32], eps: f64, then: Then) {
    let per_group = channels / groups;
    let chunk = per_group * hw;
    if chunk == 0 {
        return;
    }
    if let Then::AddRelu(residual) = then {
        assert_eq!(residual.len(), x.len(), "residual shaped like the input");
    }
    let simd = Simd::detect();
    let p = Params { hw, groups, per_group, gamma, beta, eps, then };
    x.par_chunks_mut(chunk).enumerate().for_each(|(i, values)| match simd {
        // SAFETY: `Simd::detect` saw the CPU support these features.
        #[cfg(target_arch = "x86_64")]
        Simd::Avx512 => unsafe { normalise_avx512(values, i, &p) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Simd::Avx2 => unsafe { normalise_avx2(values, i, &p) },
        Simd::Baseline => normalise(values, i, &p),
    });
}

/// What every (sample, group) chunk needs.
struct Params<'a> {
    hw: usize,
    groups: usize,
    per_group: usize,
    gamma: &'a [f32],
    beta: &'a [f32],
    eps: f64,
    then: Then<'a>,
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn normalise_avx512(values: &mut [f32], i: usize, p: &Params) {
    normalise(values, i, p)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn normalise_avx2(values: &mut [f32], i: usize, p: &Params) {
    normalise(values, i, p)
}

/// Chunk `i` (sample `i / groups`, group `i % groups`): statistics, then the normalising pass.
#[inline(always)]
fn normalise(values: &mut [f32], i: usize, p: &Params) {
    let count = values.len() as f64;
    let mean = lane_sum(values, |v| v) / count;
    let mean32 = mean as f32;
    let var = lane_sum(values, |v| (v - mean32) * (v - mean32)) / count;
    let inv_std = 1.0 / (var + p.eps).sqrt();
    let first = (i % p.groups) * p.per_group;
    let chunk = values.len();
    for (j, plane) in values.chunks_mut(p.hw).enumerate() {
        let scale = (p.gamma[first + j] as f64 * inv_std) as f32;
        let shift = p.beta[first + j];
        match p.then {
            Then::Nothing => plane.iter_mut().for_each(|v| *v = (*v - mean32) * scale + shift),
            Then::Relu => plane.iter_mut().for_each(|v| *v = ((*v - mean32) * scale + shift).max(0.0)),
            Then::AddRelu(residual) => {
                let r = &residual[i * chunk + j * p.hw..][..p.hw];
                plane.iter_mut().zip(r).for_each(|(v, r)| *v = ((*v - mean32) * scale + shift + r).max(0.0));
            }
        }
    }
}

/// `sum f(v)` with 16 f32 lanes per 1024-value block, blocks added in f64.
#[inline(always)]
fn lane_sum(values: &[f32], f: impl Fn(f32) -> f32 + Copy) -> f64 {
    values
        .chunks(1024)
        .map(|block| {
            let mut lanes = [0f32; 16];
            let mut it = block.chunks_exact(16);
            for c in &mut it {
                for (l, &v) in lanes.iter_mut().zip(c) {
                    *l += f(v);
                }
            }
            lanes.iter().map(|&l| l as f64).sum::<f64>() + it.remainder().iter().map(|&v| f(v) as f64).sum::<f64>()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Straightforward f64 reference.
    fn reference(x: &[f32], n: usize, c: usize, g: usize, gamma: &[f32], beta: &[f32], eps: f64, relu: bool) -> Vec<f32> {
        let hw = x.len() / n / c;
        let cg = c / g * hw;
        let mut out = vec![0f32; x.len()];
        for s in 0..n * g {
            let v = &x[s * cg..(s + 1) * cg];
            let mean = v.iter().map(|&a| a as f64).sum::<f64>() / cg as f64;
            let var = v.iter().map(|&a| (a as f64 - mean).powi(2)).sum::<f64>() / cg as f64;
            for (j, &a) in v.iter().enumerate() {
                let ch = (s % g) * (c / g) + j / hw;
                let y = (a as f64 - mean) / (var + eps).sqrt() * gamma[ch] as f64 + beta[ch] as f64;
                out[s * cg + j] = if relu { y.max(0.0) as f32 } else { y as f32 };
            }
        }
        out
    }

    #[test]
    fn matches_f64_reference_with_offset_data() {
        let (n, c, g, hw) = (3, 64, 32, 37);
        // A large mean next to a small spread: a sum-of-squares variance would cancel here.
        let x: Vec<f32> = (0..n * c * hw).map(|i| 1000.0 + ((i * 7919) % 1013) as f32 * 0.01).collect();
        let gamma: Vec<f32> = (0..c).map(|i| 0.5 + i as f32 * 0.03).collect();
        let beta: Vec<f32> = (0..c).map(|i| i as f32 * 0.1 - 3.0).collect();
        for relu in [false, true] {
            let mut y = x.clone();
            group_norm_in_place(&mut y, c, hw, g, &gamma, &beta, 1e-5, if relu { Then::Relu } else { Then::Nothing });
            let r = reference(&x, n, c, g, &gamma, &beta, 1e-5, relu);
            let max = y.iter().zip(&r).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(max < 2e-4, "relu {relu}: max diff {max}");
        }
        // + residual, then ReLU: exactly the separate ops in f32.
        let residual: Vec<f32> = (0..x.len()).map(|i| ((i * 31) % 17) as f32 * 0.25 - 2.0).collect();
        let mut fused = x.clone();
        group_norm_in_place(&mut fused, c, hw, g, &gamma, &beta, 1e-5, Then::AddRelu(&residual));
        let mut separate = x.clone();
        group_norm_in_place(&mut separate, c, hw, g, &gamma, &beta, 1e-5, Then::Nothing);
        separate.iter_mut().zip(&residual).for_each(|(v, r)| *v = (*v + r).max(0.0));
        assert_eq!(fused, separate);
    }
}
