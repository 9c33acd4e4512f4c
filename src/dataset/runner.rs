//! A dataset run: decoder threads read and preprocess the next images while the model runs, batches of
//! same-shape images go through the network, and a writer thread hands results on in input order.
//!
//! Memory is bounded independently of the dataset's size: the decoders block once `queue` decoded images wait
//! (back-pressure), the model holds at most `queue + decoders` of them, and the writer's queue holds `queue`
//! batches' results; with streams, a batch starts at most `queue + streams x batch` images past the oldest result
//! not yet handed on, which bounds the results waiting out of order. A bad image (unreadable, corrupt, too large)
//! is one failed outcome; the run goes on.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::source::ImageEntry;
use crate::detector::Detector;
use crate::error::{Error, Result};
use crate::image::{BgrImage, ImageLimits};
use crate::output::Detections;
use crate::preprocess::Preprocessed;
use crate::timing::StageTimings;

/// How a run batches and overlaps its work.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Images of the same padded shape run through the network together, up to this many (1: one by one).
    pub batch: usize,
    /// Decoded images (and results) waiting at most; bounds memory.
    pub queue: usize,
    /// Threads decoding and preprocessing.
    pub decoders: usize,
    /// Hand each outcome its decoded image too (to draw it), at the cost of keeping it until written.
    pub keep_images: bool,
    /// Limits checked on every image's header.
    pub limits: ImageLimits,
}

impl Default for RunnerConfig {
    /// One image at a time, 8 queued, one decoder thread, images not kept.
    fn default() -> Self {
        Self { batch: 1, queue: 8, decoders: 1, keep_images: false, limits: ImageLimits::default() }
    }
}

/// One image's result, handed on in input order.
#[derive(Debug)]
pub struct Outcome {
    /// Position in the run's input.
    pub index: usize,
    /// The image it is about.
    pub entry: ImageEntry,
    /// Its detections, or why there are none (a bad file, a device failure).
    pub result: Result<Detections>,
    /// The decoded image, with [`RunnerConfig::keep_images`].
    pub image: Option<BgrImage>,
    /// The stage times of the batch it ran in (the whole batch's, shared by its images), when it succeeded.
    pub timings: Option<StageTimings>,
}

/// What a run did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RunSummary {
    /// Images with detections (possibly none found).
    pub done: usize,
    /// Images that failed.
    pub failed: usize,
    /// Wall time of the run.
    pub elapsed: Duration,
}

type Decoded = Result<(Preprocessed, Option<BgrImage>)>;

/// Same-shape images for one network call (with their kept images), or the failed decode that is a batch alone.
type Batch = Result<Vec<(Preprocessed, Option<BgrImage>)>>;

/// A batch's results: per image, its detections (or error), its kept image, the batch's timings.
type Produced = Vec<(Result<Detections>, Option<BgrImage>, Option<StageTimings>)>;

/// Runs `detector` on `entries`, calling `on_result` (on a writer thread) once per entry, in order. With
/// [streams](Detector::with_streams), that many batches run at once, each stream taking the next one as it
/// finishes.
pub fn run(detector: &Detector, entries: &[ImageEntry], config: &RunnerConfig, on_result: impl FnMut(Outcome) + Send) -> RunSummary {
    let start = Instant::now();
    let (queue, batch) = (config.queue.max(1), config.batch.max(1));
    let next = AtomicUsize::new(0);
    let (decoded_tx, decoded_rx) = sync_channel::<(usize, Decoded)>(queue);
    let inbox = Inbox { rx: Some(decoded_rx), pending: BTreeMap::new(), total: entries.len(), next: 0 };
    let ahead = queue + detector.streams() * batch;
    let (written, stopped, waiting) = (AtomicUsize::new(0), AtomicBool::new(false), AtomicUsize::new(0));
    let order = Order { inbox: Mutex::new(inbox), written, advanced: Condvar::new(), ahead, stopped, waiting };
    let mut summary = std::thread::scope(|s| {
        for _ in 0..config.decoders.max(1) {
            let tx = decoded_tx.clone();
            let next = &next;
            s.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(entry) = entries.get(i) else { break };
                    let decoded = BgrImage::open_with_limits(&entry.path, &config.limits)
                        .map(|img| (detector.preprocess(&img), config.keep_images.then_some(img)))
                        .map_err(Error::from);
                    if tx.send((i, decoded)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(decoded_tx);
        let (out_tx, out_rx) = sync_channel::<(usize, Produced)>(queue);
        let order = &order;
        let writer = s.spawn(move || write_in_order(out_rx, entries, order, on_result));
        let _shut = Shutdown(order);
        detector.on_streams(|stream| {
            let _stop = StopOnPanic(order);
            while let Some((index, images)) = order.take(batch) {
                if out_tx.send((index, stream.install(|| predict(detector, images)))).is_err() {
                    break;
                }
            }
        });
        drop(out_tx);
        writer.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    });
    summary.elapsed = start.elapsed();
    summary
}

/// A batch through the model; a failed batch (a device out of memory, say) runs again image by image, so each
/// image gets its own result or its own typed error.
fn predict(detector: &Detector, batch: Batch) -> Produced {
    let items = match batch {
        Err(e) => return vec![(Err(e), None, None)],
        Ok(items) => items,
    };
    let inputs: Vec<&Preprocessed> = items.iter().map(|(p, _)| p).collect();
    match detector.predict_preprocessed(&inputs) {
        Ok((dets, t)) if dets.len() == items.len() => dets.into_iter().zip(items).map(|(d, (_, img))| (Ok(d), img, Some(t))).collect(),
        // One outcome per image whatever happens: the writer counts on it to hand the next ones on.
        Ok((dets, _)) => {
            let message = format!("{} results for a batch of {} images", dets.len(), items.len());
            items.into_iter().map(|(_, img)| (Err(Error::internal("predict", message.clone())), img, None)).collect()
        }
        Err(_) if items.len() > 1 => items
            .into_iter()
            .map(|(p, img)| match detector.predict_preprocessed(&[&p]) {
                Ok((mut d, t)) => (Ok(d.remove(0)), img, Some(t)),
                Err(e) => (Err(e), img, None),
            })
            .collect(),
        Err(e) => vec![(Err(e), items.into_iter().next().and_then(|(_, img)| img), None)],
    }
}

/// Hands batches' results on in input order (streams finish out of order) and counts them.
fn write_in_order(rx: Receiver<(usize, Produced)>, entries: &[ImageEntry], order: &Order, mut on_result: impl FnMut(Outcome)) -> RunSummary {
    let _stop = StopOnPanic(order);
    let mut summary = RunSummary::default();
    let mut held = BTreeMap::new();
    let mut index = 0;
    for (at, produced) in rx {
        held.insert(at, produced);
        while let Some(produced) = held.remove(&index) {
            for (result, image, timings) in produced {
                match &result {
                    Ok(_) => summary.done += 1,
                    Err(_) => summary.failed += 1,
                }
                on_result(Outcome { index, entry: entries[index].clone(), result, image, timings });
                index += 1;
            }
            order.written_up_to(index);
        }
    }
    summary
}

/// The streams' shared place in the input: the inbox they take batches from, and how far results are handed on.
struct Order {
    inbox: Mutex<Inbox>,
    /// Images handed on, in order.
    written: AtomicUsize,
    advanced: Condvar,
    /// How far past `written` a batch may start (`queue + streams x batch`): bounds the results held out of
    /// order, and lets every stream have a batch.
    ahead: usize,
    /// Set when the writer or a stream panicked (a bug): the streams take no more batches.
    stopped: AtomicBool,
    /// Streams waiting (or about to) for `written` to advance: the writer takes the inbox's lock to wake them
    /// only then, not behind every batch's decoding.
    waiting: AtomicUsize,
}

impl Order {
    /// The next batch (its first image's index), once it starts within `ahead` images of the oldest result not
    /// yet handed on; `None` when all are taken. The oldest unfinished batch always starts within it, so the
    /// streams never all wait.
    fn take(&self, max: usize) -> Option<(usize, Batch)> {
        let mut inbox = self.inbox.lock().unwrap_or_else(PoisonError::into_inner);
        let stopped = || self.stopped.load(Ordering::SeqCst);
        // Counted as waiting before `written` is read: a writer that then finds no one waiting stored its
        // `written` before that read (sequentially consistent), so the check below sees it.
        self.waiting.fetch_add(1, Ordering::SeqCst);
        while !stopped() && inbox.next < inbox.total && inbox.next >= self.written.load(Ordering::SeqCst) + self.ahead {
            inbox = self.advanced.wait(inbox).unwrap_or_else(PoisonError::into_inner);
        }
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        let first = inbox.next;
        if stopped() || first >= inbox.total {
            return None;
        }
        let batch = inbox.batch_from(first, max);
        inbox.next += batch.as_ref().map_or(1, Vec::len);
        Some((first, batch))
    }

    /// Results are handed on up to image `index`: wakes streams waiting to run further ahead.
    fn written_up_to(&self, index: usize) {
        self.written.store(index, Ordering::SeqCst);
        self.wake();
    }

    /// The streams take no more batches; those waiting return.
    fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.wake();
    }

    fn wake(&self) {
        if self.waiting.load(Ordering::SeqCst) > 0 {
            // Taken and dropped so that a stream between its check and its wait cannot miss the wake-up.
            drop(self.inbox.lock().unwrap_or_else(PoisonError::into_inner));
            self.advanced.notify_all();
        }
    }
}

/// Stops the streams when the writer or a stream panics (a bug), so that none waits forever for results that
/// will not come, and the panic reaches the caller.
struct StopOnPanic<'a>(&'a Order);

impl Drop for StopOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.stop();
        }
    }
}

/// Ends a run's model side, also when it stops early (a panic): the decoders' channel is closed, so a decoder
/// blocked on a full queue stops instead of being waited for.
struct Shutdown<'a>(&'a Order);

impl Drop for Shutdown<'_> {
    fn drop(&mut self) {
        self.0.inbox.lock().unwrap_or_else(PoisonError::into_inner).rx = None;
    }
}

/// Decoded images as they arrive (decoders finish out of order), taken in input order.
struct Inbox {
    /// `None` once the run is over (or stopped early): decoders still sending then stop.
    rx: Option<Receiver<(usize, Decoded)>>,
    pending: BTreeMap<usize, Decoded>,
    total: usize,
    /// The first image no stream has taken yet.
    next: usize,
}

impl Inbox {
    /// Waits for image `i`; `None` if the decoders stopped without it (they never do before the end).
    fn take(&mut self, i: usize) -> Option<Decoded> {
        while !self.pending.contains_key(&i) {
            let (j, decoded) = self.rx.as_ref()?.recv().ok()?;
            self.pending.insert(j, decoded);
        }
        self.pending.remove(&i)
    }

    /// Image `first` and the next images after it of the same padded shape, up to `max`; a failed decode is
    /// an error batch of its own.
    fn batch_from(&mut self, first: usize, max: usize) -> Batch {
        let head = self.take(first).unwrap_or_else(|| Err(Error::internal("decode", "the decoder threads stopped")))?;
        let shape = head.0.meta.pad_shape;
        let mut batch = vec![head];
        while batch.len() < max && first + batch.len() < self.total {
            let i = first + batch.len();
            // Waiting is cheap (decoding is far faster than the model); a different shape or a failure ends the
            // batch and stays in the inbox for the next one.
            match self.take(i) {
                Some(Ok(item)) if item.0.meta.pad_shape == shape => batch.push(item),
                Some(other) => {
                    self.pending.insert(i, other);
                    break;
                }
                None => break,
            }
        }
        Ok(batch)
    }
}
