"""Batch inference on a Ray cluster (``pip install ".[ray]"``): the same detections as the ``infer`` binary, over
millions of images, with Ray Data.

    import ray
    from mask_rcnn_burn.ray import Predictor

    ds = ray.data.read_binary_files("s3://bucket/images/", include_paths=True)
    out = ds.map_batches(Predictor, fn_constructor_kwargs={"model": "r50-2x", "weights": "/models/r50.safetensors"},
                         concurrency=8, num_cpus=2, batch_size=8)
    out.write_parquet("s3://bucket/detections/")

Each actor loads one detector; images are decoded in Rust (JPEG exactly as OpenCV decodes it) and same-shape ones go
through the network together; each row comes out with ``path``, ``detections`` (the binary's COCO results entries for
that image, as JSON text, masks as RLE) and ``error`` (``None``, or the one-line message: a corrupt or unreadable
image is a row with an error, never a failed job).

To have each actor read its own files (no read tasks in processes beside the actors, no image bytes through the
object store: what the entry does), give the read the actors' resources and hand each actor whole blocks, capping the
network's batch in the actor instead; Ray Data then fuses the two (``ReadBinary->MapBatches(Predictor)``):

    ds = ray.data.read_binary_files(paths, include_paths=True, num_cpus=2)
    out = ds.map_batches(Predictor, fn_constructor_kwargs={..., "max_batch": 8}, concurrency=8, num_cpus=2, batch_size=None)

``python -m mask_rcnn_burn.ray --images DIR --json OUT`` runs it end to end (see ``--help``).
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import re
import threading
from typing import Any, Sequence

import numpy as np

from . import Detector, Error, _native, imread

__all__ = ["Predictor", "image_ids", "path_id", "adapter_for_gpu"]


def _yield_to_workers(niceness: int = 19) -> None:
    """Puts every thread of this driver below Ray's workers (niceness 19; Ray starts its workers at 15). The driver
    only feeds the actors and writes results, but Ray Data's scheduling loop wakes it ten times a second, and at
    niceness 0 each wake-up preempts an actor's thread at once: a 2-thread actor's parallel step then waits for that
    thread while the kernel leaves the other core idle rather than move it (perf sched on this 2-core VM: 6% idle
    in a Ray run, 1-3% in the binary's). A paired A/B (benches/ray_driver_niceness.py) measured the actor's images
    ~2% faster with the driver at 19. Raising a niceness needs no privilege; Linux keeps one per thread (threads
    started later inherit their creator's), elsewhere id 0 sets the whole process's. ``niceness``: the A/B bench
    also sets 0 (as root) to compare."""
    if not hasattr(os, "setpriority"):
        return
    threads = os.listdir("/proc/self/task") if os.path.isdir("/proc/self/task") else ["0"]
    for tid in threads:
        try:
            os.setpriority(os.PRIO_PROCESS, int(tid), niceness)
        except OSError:  # a thread that just ended
            pass


def _assigned_cpus() -> int | None:
    """The CPUs Ray gave this actor (Ray sets only OMP_NUM_THREADS for them)."""
    for source in (os.environ.get("MRB_THREADS"), os.environ.get("OMP_NUM_THREADS")):
        if source and source.isdigit() and int(source) > 0:
            return int(source)
    try:
        import ray

        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
        return max(1, int(cpus)) if cpus else None
    except Exception:  # not in a Ray worker
        return None


def adapter_for_gpu(gpu_index: int) -> str:
    """The device spec (``wgpu:N``) of the ``gpu_index``-th hardware GPU wgpu lists: Ray hands each GPU actor its own
    GPU ids, and Vulkan, unlike CUDA, ignores CUDA_VISIBLE_DEVICES, so the actor picks its adapter by index."""
    hardware = [a for a in _native.adapters() if a[2] in ("DiscreteGpu", "IntegratedGpu", "VirtualGpu")]
    if not hardware:
        raise Error("a GPU actor, but wgpu finds no hardware GPU adapter")
    return f"wgpu:{hardware[gpu_index % len(hardware)][0]}"


class Predictor:
    """A callable class for ``Dataset.map_batches``: one detector per actor.

    Args:
        model, weights, device, precision, score_thr, classes: as :class:`mask_rcnn_burn.Detector`'s. With
            ``device="auto"`` in an actor Ray gave GPUs, the actor takes its own GPU (:func:`adapter_for_gpu`).
        threads: the Rust thread pool's size (default: the actor's CPUs as Ray assigned them).
        max_batch: the most images per network call (default: all of a call's images, same-shape ones together):
            with ``map_batches(batch_size=None)`` a whole block comes in one call, and this keeps the network's
            batch small.
        streams: on the CPU, images run at once in the actor, each on its own share of its threads (default 1;
            see :class:`mask_rcnn_burn.Detector`): with ``max_batch``, ``streams x max_batch`` images are decoded
            at a time and run one per stream. No effect on a GPU (the network batch stays ``max_batch``). Let
            the actor run as many calls at once (``ActorPoolStrategy(max_concurrent_calls_per_actor=streams,
            enable_true_multi_threading=True)``, as the entry does): each image then takes whichever stream is
            free, so no stream idles while a call waits for its last image. More calls than streams wait.
        image_ids: maps a path (or its file name) to its COCO image id, a non-negative integer (default: a file
            stem that is a number, as :func:`image_ids`; else :func:`path_id`).
        category_ids: the dataset category id of each label (default: COCO's for COCO's 80 classes, else 1..N).

    Input batches hold ``bytes`` (the encoded images) and ``path``, as ``read_binary_files(..., include_paths=True)``
    gives them; output batches hold ``path``, ``image_id``, ``detections`` (JSON text) and ``error``.

    Raises:
        ValueError: ``max_batch`` below 1, an ``image_ids`` value outside 0..2**64 - 1, a category id outside
            0..2**32 - 1, or ``streams`` outside 1..64.
        mask_rcnn_burn.Error: the detector cannot be built (as :class:`mask_rcnn_burn.Detector`).
    """

    def __init__(
        self,
        model: str = "r50-2x",
        weights: str | None = None,
        device: str = "auto",
        precision: str = "f32",
        score_thr: float | None = None,
        classes: Sequence[str] | None = None,
        threads: int | None = None,
        image_ids: dict[str, int] | None = None,
        category_ids: Sequence[int] | None = None,
        max_batch: int | None = None,
        streams: int = 1,
    ) -> None:
        if max_batch is not None and max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        # Checked here, not image by image: a bad id would otherwise fail every call of the job.
        for key, value in (image_ids or {}).items():
            if not 0 <= int(value) < 2**64:
                raise ValueError(f"image_ids[{key!r}] must be from 0 to 2**64 - 1, got {value}")
        if category_ids is not None and any(not 0 <= int(c) < 2**32 for c in category_ids):
            raise ValueError(f"category ids must be from 0 to 2**32 - 1, got {list(category_ids)}")
        threads = threads or _assigned_cpus()
        if threads:
            # Read when the Rust thread pool starts: when this process builds its first detector.
            os.environ["RAYON_NUM_THREADS"] = str(threads)
        if device == "auto":
            try:
                import ray

                gpus = ray.get_gpu_ids()
            except Exception:
                gpus = []
            if gpus:
                device = adapter_for_gpu(int(gpus[0]))
        self.detector = Detector(model, weights=weights, device=device, precision=precision, score_thr=score_thr, classes=classes,
                                 streams=streams)
        self.image_ids = image_ids
        self.category_ids = None if category_ids is None else list(category_ids)
        self.max_batch = max_batch
        # Calls Ray runs at once beyond the streams (or any on a GPU, where streams is 1) wait here.
        self._lanes = threading.BoundedSemaphore(self.detector.streams)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        paths = [str(p) for p in batch["path"]]
        out: dict[str, list] = {"path": paths, "image_id": [self._image_id(p, i) for i, p in enumerate(paths)],
                                "detections": [None] * len(paths), "error": [None] * len(paths)}
        # Decoded a network batch at a time, so a large block holds one batch of pixels, not all of its images'.
        # With streams (CPU only: `streams` is 1 on a GPU), each runs one of `max_batch` images at once. N calls at
        # once on N streams decode N x N x `max_batch` images: splitting the streams among the calls running
        # (`max_batch` each) was 2-4% slower on 2 cores (two paired 36-image jobs), so each call keeps every stream
        # busy while the others decode.
        step = self.max_batch * self.detector.streams if self.max_batch else max(1, len(paths))
        for at in range(0, len(paths), step):
            images, rows = [], []
            for i in range(at, min(at + step, len(paths))):
                try:
                    images.append(imread(bytes(batch["bytes"][i])))
                    rows.append(i)
                except Error as e:
                    out["error"][i] = f"{paths[i]}: {e}"
            if images:
                self._predict(images, rows, paths, out)
        return out

    def _predict(self, images: list, rows: list[int], paths: list[str], out: dict[str, list]) -> None:
        """Fills ``out``'s rows ``rows`` with the detections of ``images`` (one network call) or their errors."""
        with self._lanes:
            try:
                results = self.detector.predict_batch(images)
            except Error:
                # A batch that fails (a device out of memory) runs again image by image: each row its own outcome.
                results = []
                for i, image in zip(rows, images):
                    try:
                        results.append(self.detector.predict(image))
                    except Error as e:
                        out["error"][i] = f"{paths[i]}: {e}"
                        results.append(None)
        for i, res in zip(rows, results):
            if res is not None:
                out["detections"][i] = json.dumps(res.to_coco(out["image_id"][i], self.category_ids), separators=(",", ":"))

    def _image_id(self, path: str, position: int) -> int:
        if self.image_ids is not None:
            key = path if path in self.image_ids else os.path.basename(path)
            if key in self.image_ids:
                return int(self.image_ids[key])
        stem = pathlib.Path(path).stem
        return int(stem) if re.fullmatch(r"\d+", stem) else path_id(path)


def path_id(path: str) -> int:
    """The image id of a path whose file stem is not a number (and that ``image_ids`` does not map): the path's
    BLAKE2b hash, 53 bits (exact in any JSON reader), the same in every actor and every run, where the binary's
    rule (a position in the sorted list) needs every path at once. Two of ten million paths share one with
    probability ~0.5%: pass ``image_ids`` where ids must be unique or match annotations."""
    return int.from_bytes(hashlib.blake2b(path.encode("utf-8", "surrogateescape"), digest_size=8).digest(), "big") >> 11


def image_ids(paths: Sequence[str]) -> dict[str, int]:
    """The binary's rule (``dataset::image_files``): a file stem that is a number is its id (COCO's
    ``000000397133.jpg`` is 397133); when any stem is not, or two collide, every image gets its position in the
    sorted list instead."""
    stems = [pathlib.Path(p).stem for p in paths]
    if all(re.fullmatch(r"\d+", s) for s in stems) and len({int(s) for s in stems}) == len(stems):
        return {p: int(s) for p, s in zip(paths, stems)}
    return {p: i for i, p in enumerate(paths)}


IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


def _entries(args) -> list[tuple[str, int]]:
    """``(path, image id)`` of every image to run, as the binary finds them."""
    if args.annotations:
        coco = json.loads(pathlib.Path(args.annotations).read_text())
        out = []
        for image in coco["images"]:
            name = pathlib.PurePath(image["file_name"])
            if name.is_absolute() or ".." in name.parts:
                raise SystemExit(f"error: annotations {args.annotations}: image {image['id']}'s file_name leaves the images folder")
            out.append((os.path.join(args.images, image["file_name"]), int(image["id"])))
        return out
    paths: list[str] = []
    for item in args.inputs + ([args.images] if args.images else []):
        if os.path.isdir(item):
            found = sorted(os.path.join(item, f) for f in os.listdir(item) if f.lower().endswith(IMAGE_EXTENSIONS))
            paths.extend(found)
        elif os.path.isfile(item):
            paths.append(item)
        else:
            raise SystemExit(f"error: input {item} is neither a file nor a folder")
    ids = image_ids(paths)
    return [(p, ids[p]) for p in paths]


class _Results:
    """The binary's results file: a COCO results JSON kept valid after every batch (``[``, entries, ``]``, the closing
    bracket rewritten at each append, so an append costs its own entries, not the file's), and ``<json>.done`` listing
    the image ids it holds, written after their entries, so a killed run resumes with every image exactly once."""

    def __init__(self, path: str, resume: bool) -> None:
        self.path, self.done_path = path, path + ".done"
        self.done: set[int] = set()
        kept: list = []
        if resume and os.path.isfile(path):
            if not os.path.isfile(self.done_path):
                raise SystemExit(f"error: --resume: cannot read {self.done_path}, the list of images {path} holds; restore it, or run again without --resume")
            self.done = {int(line) for line in open(self.done_path) if line.strip()}
            text = pathlib.Path(path).read_text()
            if not text.lstrip().startswith("["):
                raise SystemExit(f"error: --resume: {path} is not a results JSON this tool wrote")
            kept = [r for r in _complete_entries(text) if r["image_id"] in self.done]
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(kept, f, separators=(",", ":"))
        os.replace(tmp, path)
        self.empty = not kept
        with open(self.done_path, "w") as f:
            f.writelines(f"{i}\n" for i in sorted(self.done))

    def append(self, rows: list[tuple[int, list]]) -> None:
        """Adds images' results (possibly none) and records them as done, results first."""
        entries = [e for _, image_entries in rows for e in image_entries]
        if entries:
            text = json.dumps(entries, separators=(",", ":"))[1:-1]
            with open(self.path, "r+b") as f:
                f.seek(-1, os.SEEK_END)  # the closing bracket
                f.write(("" if self.empty else ",").encode() + text.encode() + b"]")
            self.empty = False
        with open(self.done_path, "a") as f:
            for image_id, _ in rows:
                f.write(f"{image_id}\n")
                self.done.add(image_id)


def _complete_entries(text: str) -> list:
    """The entries of a results JSON; of one cut off mid-append (a killed run), the complete ones before the cut."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    decoder, out, i = json.JSONDecoder(), [], text.find("[") + 1
    while 0 < i < len(text):
        while i < len(text) and text[i] in " \n\r\t,":
            i += 1
        if i >= len(text) or text[i] == "]":
            break
        try:
            entry, i = decoder.raw_decode(text, i)
        except json.JSONDecodeError:
            break
        out.append(entry)
    return out


def _blocks(images: int, actors: int, batch: int) -> int:
    """How many blocks the entry reads ``images`` into. Small ones: results reach the output (and ``.done``) as each
    block finishes, so a killed job loses little and ``--resume`` redoes little; one image per block for small sets,
    at most ~16 per block for large ones; but at least ``batch`` images a block, so that a network batch can fill."""
    return max(1, min(images, max(8 * actors, -(-images // 16)), images // batch))


def _default_streams(args) -> int:
    """The entry's streams when ``--streams`` is not given: one image per thread on CPU actors, throughput first (runs
    19-20 of benches/logs/ray_throughput.txt: a 2-thread actor 6-8% more images/s than with one image over both
    threads; that many images' activations in memory at once); 1 on GPU actors."""
    return min(_actor_threads(args), _native.MAX_STREAMS) if _cpu_actors(args) else 1


def _actor_threads(args) -> int:
    """Each actor's Rust threads: ``--threads``, else its CPUs, at least one."""
    return args.threads or max(1, int(args.cpus_per_actor))


def _cpu_actors(args) -> bool:
    """Whether the entry's actors run on the CPU (no GPU asked, a CPU or automatic device)."""
    return not args.gpus_per_actor and args.device in ("auto", "cpu", "flex")


def _pipeline(args, present: list[tuple[str, int]], categories: list[int] | None):
    """The entry's dataset: ``present``'s ``(path, image id)`` read and run through :class:`Predictor` actors."""
    import ray

    blocks = _blocks(len(present), args.actors, args.batch)
    # Read tasks that ask what the actors ask, and a whole block per call (batch_size=None; `--batch` caps the
    # network's batch inside the actor): Ray Data then fuses the read into the actors (ReadBinary->MapBatches), so
    # each actor reads its own files, with no read-task worker process beside it (on 2 cores, ~0.9 s of CPU importing
    # ray.data) and no image bytes through the object store.
    resources = dict(num_cpus=args.cpus_per_actor, num_gpus=args.gpus_per_actor)
    ds = ray.data.read_binary_files([p for p, _ in present], include_paths=True, override_num_blocks=blocks, **resources)
    kwargs = dict(model=args.model, weights=args.weights, device=args.device, precision=args.precision, score_thr=args.score_thr,
                  threads=_actor_threads(args), image_ids=dict(present), category_ids=categories,
                  max_batch=args.batch, streams=args.streams)
    # With streams, as many calls at once as streams per actor (see Predictor's `streams`).
    concurrent = dict(max_concurrent_calls_per_actor=args.streams, enable_true_multi_threading=True) if args.streams > 1 and _cpu_actors(args) else {}
    return ds.map_batches(Predictor, fn_constructor_kwargs=kwargs, compute=ray.data.ActorPoolStrategy(size=args.actors, **concurrent),
                          batch_size=None, batch_format="numpy", **resources)


def main(argv: Sequence[str] | None = None, *, yield_driver: bool = False) -> int:
    """The ``python -m mask_rcnn_burn.ray`` command; ``yield_driver`` (what the command passes) puts this process's
    threads at niceness 19 once Ray is up (:func:`_yield_to_workers`), which an unprivileged process cannot undo, so
    a caller of ``main`` in its own process keeps its niceness unless it asks."""
    import argparse
    import sys
    import time

    ap = argparse.ArgumentParser(prog="python -m mask_rcnn_burn.ray", description="GN Mask R-CNN over a dataset on a Ray cluster (the infer binary's dataset flags).")
    ap.add_argument("inputs", nargs="*", help="images and folders of them")
    ap.add_argument("--images", help="the folder of --annotations' file_names (or of the images)")
    ap.add_argument("--annotations", help="a COCO instances file: run on its images and print COCO AP")
    ap.add_argument("--json", required=True, help="the COCO results JSON to write")
    ap.add_argument("--eval-json", help="with --annotations: write the bbox and segm summaries here")
    ap.add_argument("--parquet", help="also write the rows (path, image_id, detections, error) as Parquet files here")
    ap.add_argument("--resume", action="store_true", help="skip the images --json already holds")
    ap.add_argument("--model", default="r50-2x")
    ap.add_argument("--weights")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", default="f32")
    ap.add_argument("--score-thr", type=float)
    ap.add_argument("--batch", type=int, default=1, help="images per network call in an actor (same-shape ones batched)")
    ap.add_argument("--streams", type=int,
                    help="images run at once in each CPU actor, each on its share of the actor's threads (as the binary's --streams), as many calls at once per actor "
                         "(default: the actor's threads, one image per thread, on CPU actors; 1 on GPU actors; 1: one image at a time over all the threads)")
    ap.add_argument("--actors", type=int, default=1)
    ap.add_argument("--cpus-per-actor", type=float, default=1)
    ap.add_argument("--gpus-per-actor", type=float, default=0)
    ap.add_argument("--threads", type=int, help="each actor's Rust threads (default: its CPUs, at least 1; on CPU nodes one 1-thread actor per core is fastest)")
    ap.add_argument("--address", help="an existing cluster (ray start --head ...); default: a local one")
    args = ap.parse_args(argv)
    if args.annotations and not args.images:
        ap.error("--annotations needs --images")
    if args.batch < 1:
        ap.error(f"--batch must be at least 1, got {args.batch}")
    if args.streams is None:
        args.streams = _default_streams(args)
    if not 1 <= args.streams <= _native.MAX_STREAMS:
        ap.error(f"--streams must be 1 to {_native.MAX_STREAMS}, got {args.streams}")

    import ray

    entries = _entries(args)
    results = _Results(args.json, args.resume)
    todo = [(p, i) for p, i in entries if i not in results.done]
    if len(todo) < len(entries):
        print(f"resuming: {len(entries) - len(todo)} of {len(entries)} images already done")
    categories = None
    if args.annotations:
        coco = json.loads(pathlib.Path(args.annotations).read_text())
        names = {c["name"]: c["id"] for c in coco["categories"]}
        detector_classes = Detector(args.model, weights=args.weights, device="cpu").classes
        missing = [c for c in detector_classes if c not in names]
        if missing:
            raise SystemExit(f"error: class {missing[0]!r} is not a category of the annotations")
        categories = [names[c] for c in detector_classes]

    import logging

    ray.init(address=args.address, ignore_reinit_error=True, log_to_driver=False, include_dashboard=False, logging_level=logging.WARNING)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    if yield_driver:
        _yield_to_workers()
    start, failed, parts = time.perf_counter(), 0, 0
    present = [(p, i) for p, i in todo if os.path.isfile(p)]
    for p, i in todo:
        if not os.path.isfile(p):
            print(f"skipped {p}: cannot read image {p}: No such file or directory", file=sys.stderr)
            results.append([(i, [])])
            failed += 1
    if present:
        for batch in _pipeline(args, present, categories).iter_batches(batch_size=None, batch_format="numpy"):
            rows = []
            for path, image_id, dets, error in zip(batch["path"], batch["image_id"], batch["detections"], batch["error"]):
                # Missing values come back as None or NaN, depending on the block format.
                if isinstance(error, str) and error:
                    print(f"skipped {error}", file=sys.stderr)
                    failed += 1
                rows.append((int(image_id), json.loads(dets) if isinstance(dets, str) else []))
            results.append(rows)
            if args.parquet:
                import pyarrow as pa
                import pyarrow.parquet as pq

                os.makedirs(args.parquet, exist_ok=True)
                clean = lambda v: v if isinstance(v, str) else None  # noqa: E731
                table = pa.table({"path": [str(p) for p in batch["path"]], "image_id": [int(i) for i in batch["image_id"]],
                                  "detections": [clean(d) for d in batch["detections"]], "error": [clean(e) for e in batch["error"]]})
                pq.write_table(table, os.path.join(args.parquet, f"part-{os.getpid()}-{parts:06d}.parquet"))
                parts += 1
    elapsed = time.perf_counter() - start
    print(f"{len(todo)} images in {elapsed:.1f} s ({(len(todo) - failed) / max(elapsed, 1e-9):.2f} images/s), {failed} failed")
    print(f"wrote {args.json}")
    if args.annotations:
        summary = json.loads(_native.evaluate(args.annotations, args.json))
        for name in ("bbox", "segm"):
            print(f"\nCOCO {name}:")
            for line in summary[name]["lines"]:
                print(line)
        if args.eval_json:
            with open(args.eval_json, "w") as f:
                json.dump({k: summary[k]["stats"] for k in ("bbox", "segm")}, f, indent=2)
            print(f"wrote {args.eval_json}")
    ray.shutdown()
    return 3 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(yield_driver=True))
