//! Which vector instruction set the host kernels' inner loops run with. The crate is compiled for the target's
//! baseline (SSE2 on x86-64), so each kernel also compiles its loops inside `#[target_feature]` wrappers for
//! AVX-512 and AVX2 and picks one at run time with [`Simd::detect`]; results are identical on each (no FMA
//! contraction: Rust keeps every multiply and add as written).

/// An instruction set the CPU has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Simd {
    #[cfg(target_arch = "x86_64")]
    Avx512,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    Baseline,
}

impl Simd {
    /// The widest this CPU runs (the standard library caches the CPUID answer).
    pub(crate) fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Simd::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                return Simd::Avx2;
            }
        }
        Simd::Baseline
    }

    /// Every instruction set this CPU runs, so tests can check each kernel variant.
    #[cfg(test)]
    pub(crate) fn all_available() -> Vec<Self> {
        let mut all = vec![Simd::Baseline];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                all.push(Simd::Avx2);
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                all.push(Simd::Avx512);
            }
        }
        all
    }
}
