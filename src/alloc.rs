//! The allocator a CPU (flex) run wants: mimalloc that keeps freed memory mapped.
//!
//! Every Burn op on flex returns a fresh tensor, up to 62 MB each at 800x1216 (a 256-channel stride-4 map).
//! glibc's malloc serves blocks that large with `mmap` and gives them back with `munmap` on free, so each op
//! page-faults its output in again: 16% of a cold single-image run's CPU time went to page faults and munmap
//! (perf). mimalloc with purging off reuses the freed pages instead. The process keeps its peak footprint (a
//! cold R-50 run peaks at ~0.6 GB resident, 183 MB of it the mapped weights file), which is what PyTorch's
//! caching allocators do too.
//!
//! A binary opts in with two lines (the `infer` example does):
//!
//! ```no_run
//! #[global_allocator]
//! static ALLOC: mask_rcnn_burn::alloc::MiMalloc = mask_rcnn_burn::alloc::MiMalloc;
//! fn main() { mask_rcnn_burn::alloc::keep_freed_memory(); /* ... */ }
//! ```

pub use mimalloc::MiMalloc;

/// `mi_option_purge_delay` in the `mi_option_t` enum of the bundled mimalloc (`mimalloc.h`, the same index in
/// its v2 and v3 sources); libmimalloc-sys names only some options.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Never return freed memory to the OS (mimalloc's purge delay -1), and back it with 4 KiB pages, not transparent
/// huge pages, unless `MIMALLOC_ALLOW_THP` is set. Process-wide and harmless to call more than once; the purge
/// setting only matters when [`MiMalloc`] is the global allocator, the huge-page one for every allocation.
///
/// Why no huge pages: on a VM whose balloon reports free memory to the host (Firecracker, many cloud VMs), a
/// fresh 2 MiB page is taken from exactly the blocks the guest reported, so its first touch faults on the host
/// for every 4 KiB inside it, where a 4 KiB page usually comes from memory the guest never gave back. Measured
/// here after 20 s idle: a cold R-50 CLI run spent 1.2 s in the kernel with huge pages and 0.25 s without
/// (wall 2.8 -> 2.3 s); touching 256 MiB, 0.63 s against 0.11 s. Warm, 4 KiB pages cost ~3% (TLB misses).
/// Like mimalloc's own opt-out, the setting is inherited by child processes and kept across `exec`.
pub fn keep_freed_memory() {
    retain_freed_allocations();
    // The process opts out whatever the system's THP mode (`madvise`: mimalloc advises its arenas huge;
    // `always`), as mimalloc itself does for `MIMALLOC_ALLOW_THP=0`, which it can only read before main.
    // A failure (a kernel before 3.15) leaves the system's default.
    #[cfg(target_os = "linux")]
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // SAFETY: PR_SET_THP_DISABLE takes one integer argument (1 = disable) and touches no memory of ours.
        let _ = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    }
}

/// Only the allocator's half of [`keep_freed_memory`]: mimalloc never returns freed memory to the OS. For a library
/// loaded into someone else's process (the Python extension), which should not change the process's huge-page mode.
pub fn retain_freed_allocations() {
    // SAFETY: mi_option_set only stores a value in mimalloc's option table (an atomic store); the index is a
    // valid option of the bundled mimalloc, and -1 a documented value.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    /// The process ends up opted out of transparent huge pages (unless the user asked for them).
    #[test]
    fn keep_freed_memory_disables_huge_pages() {
        super::keep_freed_memory();
        // SAFETY: PR_GET_THP_DISABLE takes no argument and returns the flag; it touches no memory of ours.
        let disabled = unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) };
        // -1: a kernel or sandbox without the call, which the function tolerates.
        if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() && disabled != -1 {
            assert_eq!(disabled, 1);
        }
    }
}
