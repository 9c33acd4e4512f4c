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
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use rayon::{ThreadPool, ThreadPoolBuilder};

use crate::error::{Error, Result};

/// Most streams a detector takes (each holds an image's activations).
pub const MAX_STREAMS: usize = 64;

/// The streams' thread pools; none for one stream, which runs on the caller's (the global) pool. Callers on
/// several threads at once (a Ray actor's concurrent calls) share them: each image runs on a stream no other
/// caller holds, so two one-image calls run side by side on two streams, not both on one.
pub(crate) struct Streams {
    pools: Vec<ThreadPool>,
    /// The pools no caller holds.
    free: Mutex<Vec<usize>>,
    /// Signalled when a pool is handed back.
    freed: Condvar,
}

impl Streams {
    /// `n` streams sharing the global pool's thread count (`RAYON_NUM_THREADS`, else the cores): `threads / n`
    /// each, rounded down, at least one (more streams than threads oversubscribe the cores).
    pub(crate) fn new(n: usize) -> Result<Self> {
        if !(1..=MAX_STREAMS).contains(&n) {
            return Err(Error::invalid_argument(format!("streams must be 1 to {MAX_STREAMS}, got {n}")));
        }
        if n == 1 {
            return Ok(Self { pools: Vec::new(), free: Mutex::new(Vec::new()), freed: Condvar::new() });
        }
        let threads = (rayon::current_num_threads() / n).max(1);
        let pools = (0..n)
            .map(|i| ThreadPoolBuilder::new().num_threads(threads).thread_name(move |t| format!("mrb-stream{i}-{t}")).build())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::internal("streams", format!("cannot start {n} thread pools: {e}")))?;
        Ok(Self { pools, free: Mutex::new((0..n).rev().collect()), freed: Condvar::new() })
    }

    /// How many streams.
    pub(crate) fn len(&self) -> usize {
        self.pools.len().max(1)
    }

    /// `work` once per stream, all at once on threads of their own, until all return; each is handed its
    /// [`Stream`] to run model calls in. With one stream, `work` runs here. Waits until no other caller holds a
    /// stream, then holds them all until every `work` returns: a `work` (or what it hands results to) that
    /// predicts on the same detector meanwhile waits forever. The loops stay outside the pools: a pool's worker
    /// waiting in a parallel step may pick up any job of its pool, and a loop that blocks (on a queue, on other
    /// streams) taken up that way by another caller's stream could wait on itself.
    pub(crate) fn run_all(&self, work: impl Fn(Stream<'_>) + Sync) {
        if self.pools.is_empty() {
            return work(Stream::HERE);
        }
        let held: Vec<Held<'_>> = {
            let n = self.pools.len();
            let free = self.freed.wait_while(self.lock_free(), |free| free.len() < n).unwrap_or_else(PoisonError::into_inner);
            Held::take(self, free, n)
        };
        let work = &work;
        on_threads(held.len(), |lane| work(held[lane].stream()));
    }

    /// `f(item)` for each of `items`, each on whichever stream is free when it starts (other callers' images
    /// included), up to one lane per stream taking the next item as it finishes one; results in input order.
    pub(crate) fn map<T: Sync, R: Send>(&self, items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
        if self.pools.is_empty() {
            return items.iter().map(f).collect();
        }
        let next = AtomicUsize::new(0);
        let out: Vec<Mutex<Option<R>>> = items.iter().map(|_| Mutex::new(None)).collect();
        on_threads(items.len().min(self.pools.len()), |_| {
            loop {
                // A stream first, then an item: a lane never holds an item while it waits for a stream.
                let held = self.claim();
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let r = held.stream().install(|| f(item));
                drop(held);
                *out[i].lock().unwrap_or_else(PoisonError::into_inner) = Some(r);
            }
        });
        // Every index below items.len() was taken by exactly one lane, which stored its result.
        out.into_iter().map(|m| m.into_inner().unwrap_or_else(PoisonError::into_inner).expect("each item ran")).collect()
    }

    /// One free stream, waiting for one if every stream is held.
    fn claim(&self) -> Held<'_> {
        let free = self.freed.wait_while(self.lock_free(), |free| free.is_empty()).unwrap_or_else(PoisonError::into_inner);
        Held::take(self, free, 1).remove(0)
    }

    /// The free list; a panic elsewhere cannot leave it half-updated (each update is one push or pop).
    fn lock_free(&self) -> MutexGuard<'_, Vec<usize>> {
        self.free.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `lane(i)` for `i` in `0..n` at once, lane 0 on the calling thread, the others on scoped threads of their own;
/// returns when all have. A lane's panic reaches the caller as itself, not as "a scoped thread panicked". Called
/// from a rayon worker (a caller's own `par_iter`), every lane gets a thread of its own: a worker waiting in
/// `install` runs other jobs of its pool meanwhile, and one that blocked there in `claim` on top of a held stream
/// could leave every stream held by a waiting claim.
fn on_threads(n: usize, lane: impl Fn(usize) + Sync) {
    let lane = &lane;
    let here = usize::from(rayon::current_thread_index().is_none() && n > 0);
    std::thread::scope(|s| {
        let others: Vec<_> = (here..n).map(|i| s.spawn(move || lane(i))).collect();
        if here == 1 {
            lane(0);
        }
        for other in others {
            if let Err(panic) = other.join() {
                std::panic::resume_unwind(panic);
            }
        }
    });
}

/// A stream one caller holds; handed back when dropped (also when its work panics).
struct Held<'a> {
    streams: &'a Streams,
    pool: usize,
}

impl<'a> Held<'a> {
    /// The last `n` pools of `free` (which holds at least `n`), taken under its lock.
    fn take(streams: &'a Streams, mut free: MutexGuard<'_, Vec<usize>>, n: usize) -> Vec<Self> {
        let at = free.len() - n;
        free.drain(at..).map(|pool| Held { streams, pool }).collect()
    }

    fn stream(&self) -> Stream<'a> {
        Stream(Some(&self.streams.pools[self.pool]))
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.streams.lock_free().push(self.pool);
        self.streams.freed.notify_all();
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    use super::Streams;

    /// Two callers at once, one item each, on two streams: each item runs on a stream of its own, side by side
    /// (each waits, up to 10 s, until both are running; on one stream they would run one after the other and
    /// neither would see the other start). Afterwards every stream is free again.
    #[test]
    fn concurrent_callers_take_different_streams() {
        let streams = Streams::new(2).unwrap();
        let running = AtomicUsize::new(0);
        let side_by_side = |_: &()| {
            running.fetch_add(1, Ordering::SeqCst);
            let deadline = Instant::now() + Duration::from_secs(10);
            while running.load(Ordering::SeqCst) < 2 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            running.load(Ordering::SeqCst) == 2
        };
        let both = std::thread::scope(|s| {
            let other = s.spawn(|| streams.map(&[()], side_by_side));
            let mine = streams.map(&[()], side_by_side);
            [mine[0], other.join().unwrap()[0]]
        });
        assert_eq!(both, [true, true], "the two callers' items did not run at once");
        assert_eq!(streams.lock_free().len(), 2);
        // run_all holds every stream at once.
        let lanes = AtomicUsize::new(0);
        streams.run_all(|_| {
            lanes.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(lanes.into_inner(), 2);
    }

    /// Callers that are rayon workers themselves (a user's `par_iter` over images) finish: their lanes wait for
    /// a stream off the pool, so a worker never blocks on a claim on top of a stream it holds.
    #[test]
    fn callers_inside_a_rayon_pool_finish() {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use rayon::prelude::*;
            let streams = Streams::new(2).unwrap();
            let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
            let sums: Vec<usize> = pool.install(|| {
                (0..16usize).into_par_iter().map(|i| streams.map(&[i, i], |&x| {
                    std::thread::sleep(Duration::from_millis(2));
                    x
                }).iter().sum()).collect()
            });
            tx.send(sums).unwrap();
        });
        let sums = rx.recv_timeout(Duration::from_secs(60)).expect("callers inside a rayon pool did not finish in 60 s");
        assert_eq!(sums, (0..16).map(|i| 2 * i).collect::<Vec<_>>());
    }
}
