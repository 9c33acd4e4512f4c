"""``python -m mask_rcnn_burn.ray``: the ``infer`` binary's dataset job on Ray Data. Everything that can be checked
before the job is (arguments, annotations, model and weights) before the results file is opened or Ray started:
a bad run stops with a one-line ``error:`` and leaves earlier results as they were."""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import pathlib
import re
import sys
import time
from typing import Sequence

from .. import Detector, Error, _native, _uint
from . import Predictor, image_ids
from .results import Results

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")

#: The largest annotations file read, as the binary (COCO train2017's instances file is 448 MB).
MAX_ANNOTATIONS_BYTES = 4 << 30

DEVICES = re.compile(r"auto|cpu|flex|(wgpu|vulkan)(:[0-9]+)?")


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


def _parser() -> argparse.ArgumentParser:
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
    ap.add_argument("--device", default="auto", help="auto, cpu, wgpu, vulkan, or wgpu:N / vulkan:N for adapter N")
    ap.add_argument("--precision", default="f32", choices=["f32", "f16"])
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
    return ap


def _check_args(ap: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuses what the binary or Ray would refuse later (or misread: a negative thread count reads as 'all')."""
    if args.annotations and not args.images:
        ap.error("--annotations needs --images")
    if not args.annotations and not args.inputs and not args.images:
        ap.error("no images: give files or folders, --images DIR, or --annotations with --images")
    for flag, value in (("--batch", args.batch), ("--actors", args.actors), ("--threads", args.threads)):
        if value is not None and value < 1:
            ap.error(f"{flag} must be at least 1, got {value}")
    if not math.isfinite(args.cpus_per_actor) or args.cpus_per_actor <= 0:
        ap.error(f"--cpus-per-actor must be a number above 0, got {args.cpus_per_actor}")
    if not math.isfinite(args.gpus_per_actor) or args.gpus_per_actor < 0:
        ap.error(f"--gpus-per-actor must be a number from 0, got {args.gpus_per_actor}")
    if not DEVICES.fullmatch(args.device):
        ap.error(f"--device must be auto, cpu, wgpu, vulkan, wgpu:N or vulkan:N, got {args.device!r}")
    if args.streams is None:
        args.streams = _default_streams(args)
    if not 1 <= args.streams <= _native.MAX_STREAMS:
        ap.error(f"--streams must be 1 to {_native.MAX_STREAMS}, got {args.streams}")
    if args.parquet and os.path.exists(args.parquet) and not os.path.isdir(args.parquet):
        ap.error(f"--parquet {args.parquet} is a file, not a folder")


def _load_annotations(path: str, images_dir: str) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """``(path, image id)`` of a COCO instances file's images and ``(name, id)`` of its categories, checked as the
    binary checks them (``dataset::coco_images``): JSON of at most 4 GiB, integer ids, no id twice, every
    ``file_name`` a relative path inside ``images_dir``. Anything else is a one-line ``SystemExit``."""
    def bad(message: str) -> SystemExit:
        return SystemExit(f"error: annotations {path}: {message}")

    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_ANNOTATIONS_BYTES + 1)
    except OSError as e:
        raise SystemExit(f"error: annotations {path}: cannot read it: {e.strerror}")
    if len(raw) > MAX_ANNOTATIONS_BYTES:
        raise bad(f"larger than {MAX_ANNOTATIONS_BYTES} bytes")
    try:
        coco = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise bad(f"not a COCO instances file: {e}")
    if not isinstance(coco, dict) or not isinstance(coco.get("images"), list) or not isinstance(coco.get("categories", []), list):
        raise bad("not a COCO instances file: no 'images' list")
    images, seen, names = [], set(), {}
    for n, image in enumerate(coco["images"]):
        if not isinstance(image, dict) or not _uint(image.get("id"), 64) or not isinstance(image.get("file_name"), str):
            raise bad(f"images[{n}] needs an integer id from 0 to 2**64 - 1 and a file_name")
        image_id, name = image["id"], image["file_name"]
        if image_id in seen:
            raise bad(f"image id {image_id} appears twice")
        seen.add(image_id)
        pure = pathlib.PurePath(name)
        if not name or pure.is_absolute() or ".." in pure.parts:
            raise bad(f"image {image_id}'s file_name `{name}` leaves the images folder (absolute, or with `..`)")
        images.append((os.path.join(images_dir, name), image_id))
        if name in names:
            raise bad(f"images {names[name]} and {image_id} have the same file_name `{name}`")
        names[name] = image_id
    categories = []
    for n, c in enumerate(coco.get("categories", [])):
        if not isinstance(c, dict) or not _uint(c.get("id"), 32) or not isinstance(c.get("name"), str):
            raise bad(f"categories[{n}] needs an integer id from 0 to 2**32 - 1 and a name")
        categories.append((c["name"], c["id"]))
    return images, categories


def _input_entries(args) -> list[tuple[str, int]]:
    """``(path, image id)`` of the inputs' files (given, or in the folders given), as the binary finds them."""
    paths: list[str] = []
    for item in args.inputs + ([args.images] if args.images else []):
        if os.path.isdir(item):
            found = sorted(os.path.join(item, f) for f in os.listdir(item) if f.lower().endswith(IMAGE_EXTENSIONS))
            paths.extend(p for p in found if not os.path.isdir(p))
        elif os.path.isfile(item):
            paths.append(item)
        else:
            raise SystemExit(f"error: input {item} is neither a file nor a folder")
    seen: set[str] = set()
    for p in paths:
        real = os.path.realpath(p)
        if real in seen:
            raise SystemExit(f"error: input {p} is given twice")
        seen.add(real)
    ids = image_ids(paths)
    return [(p, ids[p]) for p in paths]


def _category_ids(categories: list[tuple[str, int]] | None, classes: list[str]) -> list[int] | None:
    """With ``--annotations``' ``(name, id)`` categories, the category id of each class, matched by name (the first
    of a name given twice, as the binary)."""
    if categories is None:
        return None
    by_name: dict[str, int] = {}
    for name, cid in categories:
        by_name.setdefault(name, cid)
    missing = [c for c in classes if c not in by_name]
    if missing:
        raise SystemExit(f"error: class {missing[0]!r} is not a category of the annotations")
    return [by_name[c] for c in classes]


def _blocks(images: int, actors: int, batch: int) -> int:
    """How many blocks the entry cuts ``images`` into. Small ones: results reach the output (and ``.done``) as each
    block finishes, so a killed job loses little and ``--resume`` redoes little; one image per block for small sets,
    at most ~16 per block for large ones; but at least ``batch`` images a block, so that a network batch can fill."""
    return max(1, min(images, max(8 * actors, -(-images // 16)), images // batch))


def _default_streams(args) -> int:
    """The entry's streams when ``--streams`` is not given: one image per thread on CPU actors, throughput first (runs
    19-20 of benches/logs/ray_throughput.txt: a 2-thread actor 6-8% more images/s than with one image over both
    threads; that many images' activations in memory at once, benches/logs/streams_memory.txt); 1 on GPU actors."""
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
    # ray.data) and no image bytes through the object store. (Handing the actors paths and ids instead, from_arrow,
    # and reading in the Predictor was 5-9% slower: benches/logs/ray_throughput.txt, after run 23.)
    resources = dict(num_cpus=args.cpus_per_actor, num_gpus=args.gpus_per_actor)
    ds = ray.data.read_binary_files([p for p, _ in present], include_paths=True, override_num_blocks=blocks, **resources)
    kwargs = dict(model=args.model, weights=args.weights, device=args.device, precision=args.precision, score_thr=args.score_thr,
                  threads=_actor_threads(args), image_ids=dict(present), category_ids=categories,
                  max_batch=args.batch, streams=args.streams)
    # With streams, as many calls at once as streams per actor (see Predictor's `streams`).
    concurrent = dict(max_concurrent_calls_per_actor=args.streams, enable_true_multi_threading=True) if args.streams > 1 and _cpu_actors(args) else {}
    return ds.map_batches(Predictor, fn_constructor_kwargs=kwargs, compute=ray.data.ActorPoolStrategy(size=args.actors, **concurrent),
                          batch_size=None, batch_format="numpy", **resources)


def _readable(path: str) -> str | None:
    """Why Ray Data's read would fail the job on ``path`` (the row's one-line error), or None: the driver's check,
    so such an image is a row with an error (a file that vanishes between this check and the read still fails the
    job)."""
    if not os.path.isfile(path):
        return f"{path}: cannot read image {path}: No such file or directory"
    if not os.access(path, os.R_OK):
        return f"{path}: cannot read image {path}: Permission denied"
    if not _utf8(path):
        return f"{path!r}: the file name is not UTF-8 (Ray Data holds paths as UTF-8 text): rename it"
    if re.search(r"[;?#]", os.path.basename(path)):
        return f"{path}: Ray Data reads paths as URLs, and this name's ';', '?' or '#' would cut it: rename it"
    return None


def _utf8(path: str) -> bool:
    try:
        path.encode("utf-8")
        return True
    except UnicodeEncodeError:  # a name Python decoded with surrogate escapes
        return False


class _Parquet:
    """``--parquet DIR``: each batch's rows as one file, named for this run (a resumed run adds files beside the
    earlier ones, never over them), written under a temporary name and renamed, so a kill leaves no half file."""

    def __init__(self, folder: str | None) -> None:
        self.folder, self.parts = folder, 0
        self.run = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        if folder:
            os.makedirs(folder, exist_ok=True)

    def write(self, rows: list[tuple[str, int, str | None, str | None]]) -> None:
        if not self.folder or not rows:
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        paths, ids, dets, errors = zip(*rows)
        table = pa.table({"path": list(paths), "image_id": pa.array(ids, pa.uint64()), "detections": list(dets), "error": list(errors)})
        final = os.path.join(self.folder, f"part-{self.run}-{self.parts:06d}.parquet")
        pq.write_table(table, final + ".tmp")
        os.replace(final + ".tmp", final)
        self.parts += 1


def main(argv: Sequence[str] | None = None, *, yield_driver: bool = False) -> int:
    """The ``python -m mask_rcnn_burn.ray`` command; ``yield_driver`` (what the command passes) puts this process's
    threads at niceness 19 once Ray is up (:func:`_yield_to_workers`), which an unprivileged process cannot undo, so
    a caller of ``main`` in its own process keeps its niceness unless it asks."""
    ap = _parser()
    args = ap.parse_args(argv)
    _check_args(ap, args)
    images, cats = _load_annotations(args.annotations, args.images) if args.annotations else (None, None)
    entries = images if images is not None else _input_entries(args)
    # The model, weights and score threshold checked here, once (a bad one would fail every actor), on the CPU (the
    # driver may have no GPU; the device is the actors'); with no --weights this also downloads the checkpoint.
    try:
        classes = Detector(args.model, weights=args.weights, device="cpu", score_thr=args.score_thr).classes
    except (Error, ValueError) as e:
        raise SystemExit(f"error: {e}")
    categories = _category_ids(cats, classes)
    results = Results(args.json, args.resume)
    todo = [(p, i) for p, i in entries if i not in results.done]
    if len(todo) < len(entries):
        print(f"resuming: {len(entries) - len(todo)} of {len(entries)} images already done")
    parquet = _Parquet(args.parquet)

    import ray

    ray.init(address=args.address, ignore_reinit_error=True, log_to_driver=False, include_dashboard=False, logging_level=logging.WARNING)
    try:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        if yield_driver:
            _yield_to_workers()
        start, failed = time.perf_counter(), 0
        present, skipped = [], []
        for p, i in todo:
            why = _readable(p)
            if why:
                skipped.append((p, i, None, why))
            else:
                # Absolute (an actor's working folder is not the driver's), one leading slash (Ray reads `//x` as
                # a URL's host).
                present.append(("/" + os.path.abspath(p).lstrip("/"), i))
        for p, i, _, error in skipped:
            print(f"skipped {error}", file=sys.stderr)
            failed += 1
        parquet.write([(p.encode("utf-8", "replace").decode(), i, d, e) for p, i, d, e in skipped])
        # Each row must come back once, with the id asked for its path (a path Ray read otherwise is an error).
        waiting = dict(present)
        if present:
            for batch in _pipeline(args, present, categories).iter_batches(batch_size=None, batch_format="numpy"):
                rows, done = [], []
                for path, image_id, dets, error in zip(batch["path"], batch["image_id"], batch["detections"], batch["error"]):
                    # Missing values come back as None or NaN, depending on the block format.
                    error = error if isinstance(error, str) and error else None
                    dets = dets if isinstance(dets, str) else None
                    if waiting.pop(str(path), None) != int(image_id):
                        error, dets = f"{path}: Ray Data returned this path, which was not asked for (under this id)", None
                    rows.append((str(path), int(image_id), dets, error))
                    if error:
                        print(f"skipped {error}", file=sys.stderr)
                        failed += 1
                    else:
                        done.append((int(image_id), json.loads(dets)))
                parquet.write(rows)
                results.append(done)
        for path, image_id in waiting.items():
            print(f"skipped {path}: Ray Data returned no row for it", file=sys.stderr)
            failed += 1
        elapsed = time.perf_counter() - start
        print(f"{len(todo)} images in {elapsed:.1f} s ({(len(todo) - failed) / max(elapsed, 1e-9):.2f} images/s), {failed} failed")
        print(f"wrote {args.json}")
        if args.annotations:
            try:
                summary = json.loads(_native.evaluate(args.annotations, args.json))
            except (Error, ValueError) as e:
                raise SystemExit(f"error: {e}")
            for name in ("bbox", "segm"):
                print(f"\nCOCO {name}:")
                for line in summary[name]["lines"]:
                    print(line)
            if args.eval_json:
                with open(args.eval_json, "w") as f:
                    json.dump({k: summary[k]["stats"] for k in ("bbox", "segm")}, f, indent=2)
                print(f"wrote {args.eval_json}")
    finally:
        ray.shutdown()
    return 3 if failed else 0
