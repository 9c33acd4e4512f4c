//! The allocator a CPU (flex) run wants: mimalloc that keeps freed memory mapped.
//!
//! Every Burn op on flex returns a fresh tensor, up to 62 MB each at 800x1216 (a 256-channel stride-4 map).
//! glibc's malloc serves blocks that large with `mmap` and gives them back with `munmap` on free, so each op
//! page-faults its output in again: 16% of a cold single-image run's CPU time went to page faults and munmap
//! (perf). mimalloc with purging off reuses the freed pages instead. The process keeps its peak footprint
//! (a cold R-50 run peaks at ~0.7 GB resident), which is what PyTorch's caching allocators do too.
//!
//! A binary opts in with two lines (the `infer` example does):
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOC: mask_rcnn_burn::alloc::MiMalloc = mask_rcnn_burn::alloc::MiMalloc;
//! fn main() { mask_rcnn_burn::alloc::keep_freed_memory(); /* ... */ }
//! ```

pub use mimalloc::MiMalloc;

/// `mi_option_purge_delay` in the `mi_option_t` enum of the bundled mimalloc (`mimalloc.h`, the same index in
/// its v2 and v3 sources); libmimalloc-sys names only some options.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Never return freed memory to the OS (mimalloc's purge delay -1), and let mimalloc back large blocks with
/// transparent huge pages (fewer page faults still). Process-wide and harmless to call more than once; it only
/// changes anything when [`MiMalloc`] is the global allocator.
pub fn keep_freed_memory() {
    // SAFETY: mi_option_set only stores a value in mimalloc's option table (atomic stores); both indices are
    // valid options of the bundled mimalloc, and -1 / 1 are documented values for them.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1);
        libmimalloc_sys::mi_option_set(libmimalloc_sys::mi_option_large_os_pages, 1);
    }
}
