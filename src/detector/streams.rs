//! Inference streams on the host (OpenVINO's throughput streams): `n` images at once, each on its own rayon pool
//! of `threads / n` threads, instead of one image at a time over all threads. One image over two threads forks
//! and joins thousands of times, and small layers split poorly; one image per thread does neither. On this
//! 2-core VM, 36 images with two 1-thread streams took 0.94x and 0.97x the time of one 2-thread stream in the
//! binary, in two runs an hour apart (benches/logs/streams.txt; run 15 of benches/logs/ray_throughput.txt), and
//! 0.93x / 0.98x in a Ray actor; each image takes longer, and `n` images' activations are in memory at once.
//! Results do not depend on the number of threads, so not on the streams.

use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::{ThreadPool, ThreadPoolBuilder};

use crate::error::{Error, Result};

/// Most streams a detector takes (each holds an image's activations).
pub const MAX_STREAMS: usize = 64;

/// The streams' thread pools; none for one stream, which runs on the caller's (the global) pool.
pub(crate) struct Streams {
    pools: Vec<ThreadPool>,
}

impl Streams {
    /// `n` streams sharing the global pool's thread count (`RAYON_NUM_THREADS`, else the cores), at least one
    /// thread each.
    pub(crate) fn new(n: usize) -> Result<Self> {
        if !(1..=MAX_STREAMS).contains(&n) {
            return Err(Error::invalid_argument(format!("streams must be 1 to {MAX_STREAMS}, got {n}")));
        }
        if n == 1 {
            return Ok(Self { pools: Vec::new() });
        }
        let threads = (rayon::current_num_threads() / n).max(1);
        let pools = (0..n)
            .map(|i| ThreadPoolBuilder::new().num_threads(threads).thread_name(move |t| format!("mrb-stream{i}-{t}")).build())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::internal("streams", format!("cannot start {n} thread pools: {e}")))?;
        Ok(Self { pools })
    }

    /// How many streams.
    pub(crate) fn len(&self) -> usize {
        self.pools.len().max(1)
    }

    /// `work` on every stream at once, each call inside its stream's pool (so the host kernels' parallel loops
    /// stay in it), until all return. With one stream, `work` runs here.
    pub(crate) fn run_all(&self, work: impl Fn() + Sync) {
        let Some((first, rest)) = self.pools.split_first() else { return work() };
        let work = &work;
        std::thread::scope(|s| {
            for pool in rest {
                s.spawn(move || pool.install(work));
            }
            first.install(work);
        });
    }

    /// `f(item)` for each of `items`, every stream taking the next item as it finishes one; results in input
    /// order.
    pub(crate) fn map<T: Sync, R: Send>(&self, items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
        let next = AtomicUsize::new(0);
        let out: Vec<std::sync::Mutex<Option<R>>> = items.iter().map(|_| std::sync::Mutex::new(None)).collect();
        self.run_all(|| {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let r = f(item);
                *out[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
            }
        });
        // Every index below items.len() was taken by exactly one stream, which stored its result.
        out.into_iter().map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()).expect("each item ran")).collect()
    }
}
