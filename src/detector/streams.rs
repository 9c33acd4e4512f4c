//! Inference streams on the host (OpenVINO's throughput streams): `n` images at once, each on its own rayon pool
//! of `threads / n` threads, instead of one image at a time over all threads. One image over two threads forks
//! and joins thousands of times, and small layers split poorly; one image per thread does neither. On this
//! 2-core VM the gain is small and not reliable: 36 images with two 1-thread streams took 0.94x, 0.97x, 0.99x and
//! 0.94x the time of one 2-thread stream in the binary in four runs (one the median of 10 pairs, faster in 5;
//! benches/logs/streams.txt, runs 15-16 of benches/logs/ray_throughput.txt), 0.93x / 0.98x in a Ray actor; the
//! fork-join cost grows with the threads one image is split over, so more cores should gain more (not measured
//! here). Each image takes longer, and `n` images' activations are in memory at once (2 streams: ~0.97 GB peak
//! against ~0.75 GB here). Results do not depend on the number of threads, so not on the streams.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use rayon::{ThreadPool, ThreadPoolBuilder};

use crate::error::{Error, Result};

/// Most streams a detector takes (each holds an image's activations).
pub const MAX_STREAMS: usize = 64;

/// The streams' thread pools; none for one stream, which runs on the caller's (the global) pool.
pub(crate) struct Streams {
    pools: Vec<ThreadPool>,
}

impl Streams {
    /// `n` streams sharing the global pool's thread count (`RAYON_NUM_THREADS`, else the cores): `threads / n`
    /// each, rounded down, at least one (more streams than threads oversubscribe the cores).
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

    /// `work` once per stream, all at once on threads of their own, until all return; each is handed its
    /// [`Stream`] to run model calls in. With one stream, `work` runs here. The loops stay outside the pools:
    /// a pool's worker waiting in a parallel step may pick up any job of its pool, and a loop that blocks (on
    /// a queue, on other streams) taken up that way by another caller's stream could wait on itself.
    pub(crate) fn run_all(&self, work: impl Fn(Stream<'_>) + Sync) {
        let Some((first, rest)) = self.pools.split_first() else { return work(Stream::HERE) };
        let work = &work;
        std::thread::scope(|s| {
            let others: Vec<_> = rest.iter().map(|pool| s.spawn(move || work(Stream(Some(pool))))).collect();
            work(Stream(Some(first)));
            // Joined here so that a stream's panic reaches the caller as itself, not as "a scoped thread panicked".
            for other in others {
                if let Err(panic) = other.join() {
                    std::panic::resume_unwind(panic);
                }
            }
        });
    }

    /// `f(item)` for each of `items`, every stream taking the next item as it finishes one; results in input
    /// order.
    pub(crate) fn map<T: Sync, R: Send>(&self, items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
        let next = AtomicUsize::new(0);
        let out: Vec<Mutex<Option<R>>> = items.iter().map(|_| Mutex::new(None)).collect();
        self.run_all(|stream| {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let r = stream.install(|| f(item));
                *out[i].lock().unwrap_or_else(PoisonError::into_inner) = Some(r);
            }
        });
        // Every index below items.len() was taken by exactly one stream, which stored its result.
        out.into_iter().map(|m| m.into_inner().unwrap_or_else(PoisonError::into_inner).expect("each item ran")).collect()
    }
}

/// One stream's place to run model calls: its pool, or the caller's thread when there is one stream.
#[derive(Clone, Copy)]
pub(crate) struct Stream<'a>(Option<&'a ThreadPool>);

impl Stream<'_> {
    /// The caller's thread (and the global pool).
    pub(crate) const HERE: Stream<'static> = Stream(None);

    /// `f` inside this stream's pool (the caller waits), so the host kernels' parallel loops stay in it.
    pub(crate) fn install<R: Send>(self, f: impl FnOnce() -> R + Send) -> R {
        match self.0 {
            Some(pool) => pool.install(f),
            None => f(),
        }
    }
}
