"""Batch inference on a Ray cluster (``pip install ".[ray]"``): the same detections as the ``infer`` binary, over
millions of images, with Ray Data.

    import ray
    from mask_rcnn_burn.ray import Predictor

    ds = ray.data.read_binary_files("s3://bucket/images/", include_paths=True)
    out = ds.map_batches(Predictor, fn_constructor_kwargs={"model": "r50-2x", "weights": "/models/r50.safetensors"},
                         concurrency=8, num_cpus=2, batch_size=8)
    out.write_parquet("s3://bucket/detections/")

Each actor loads one detector; images are decoded in Rust (JPEG exactly as OpenCV decodes it) and same-shape ones go
through the network together; each row comes out with ``path``, ``image_id``, ``detections`` (the binary's COCO
results entries for that image, as JSON text, masks as RLE) and ``error`` (``None``, or the one-line message: a
corrupt image is a row with an error, never a failed job).

To have each actor read its own files (no read tasks in processes beside the actors, no image bytes through the
object store: what the entry does), give the read the actors' resources and hand each actor whole blocks, capping the
network's batch in the actor instead; Ray Data then fuses the two (``ReadBinary->MapBatches(Predictor)``):

    ds = ray.data.read_binary_files(paths, include_paths=True, num_cpus=2)
    out = ds.map_batches(Predictor, fn_constructor_kwargs={..., "max_batch": 8}, concurrency=8, num_cpus=2, batch_size=None)

A file Ray's read cannot open fails that job; given batches of paths alone (``ray.data.from_items([{"path": p} ...])``)
the Predictor reads each file itself and such a file is a row with an error (5-9% slower than the fused read on a
2-core machine: benches/logs/ray_throughput.txt, run 23).

``python -m mask_rcnn_burn.ray --images DIR --json OUT`` runs it end to end (see ``--help``).
"""

from __future__ import annotations

import hashlib
import json
import operator
import os
import pathlib
import re
import threading
from typing import Any, Sequence

import numpy as np

from .. import Detector, Error, _native, _uint, imread

__all__ = ["Predictor", "image_ids", "path_id", "adapter_for_gpu"]


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

    Input batches hold ``path`` and ``bytes`` (the encoded images), as ``read_binary_files(..., include_paths=True)``
    gives them, or ``path`` alone (each file then read here, with the binary's size limit: what the entry does), and
    optionally ``image_id`` (overriding ``image_ids``); output batches hold ``path``, ``image_id`` (unsigned 64-bit),
    ``detections`` (JSON text) and ``error`` (``None``, or the row's one-line error: an unreadable, corrupt or oversized image,
    bytes that are not bytes, an ``image_id`` no COCO entry can hold).

    Raises:
        TypeError: ``max_batch`` is not an integer.
        ValueError: ``max_batch`` below 1, an ``image_ids`` value that is not an integer from 0 to 2**64 - 1,
            category ids that are not integers from 0 to 2**32 - 1 or not one per class, or any argument
            :class:`mask_rcnn_burn.Detector` refuses as a ``ValueError``; when called, a batch without a ``path``
            column or with columns of different lengths.
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
        # Checked here, not image by image: a bad value would otherwise fail every call of the job.
        if max_batch is not None:
            max_batch = operator.index(max_batch)  # TypeError for 2.5 or "4"
            if max_batch < 1:
                raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        image_ids = None if image_ids is None else {key: _coco_id(value, f"image_ids[{key!r}]") for key, value in image_ids.items()}
        if category_ids is not None:
            category_ids = list(category_ids)
            if not all(_uint(c, 32) for c in category_ids):
                raise ValueError(f"category ids must be integers from 0 to 2**32 - 1, got {category_ids}")
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
                if not str(gpus[0]).isdigit():  # CUDA_VISIBLE_DEVICES given as UUIDs
                    raise Error(f"Ray gave this actor GPU {gpus[0]!r}, not an index: pass device='wgpu:N'")
                device = adapter_for_gpu(int(gpus[0]))
        self.detector = Detector(model, weights=weights, device=device, precision=precision, score_thr=score_thr, classes=classes,
                                 streams=streams)
        if category_ids is not None and len(category_ids) != len(self.detector.classes):
            raise ValueError(f"{len(category_ids)} category ids for the model's {len(self.detector.classes)} classes")
        self.image_ids = image_ids
        self.category_ids = category_ids
        self.max_batch = max_batch
        # Calls Ray runs at once beyond the streams (or any on a GPU, where streams is 1) wait here.
        self._lanes = threading.BoundedSemaphore(self.detector.streams)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        if "path" not in batch:
            raise ValueError("the batch has no 'path' column: read with read_binary_files(..., include_paths=True), or give the files' paths")
        paths = [str(p) for p in batch["path"]]
        data, ids = batch.get("bytes"), batch.get("image_id")
        for name, column in (("bytes", data), ("image_id", ids)):
            if column is not None and len(column) != len(paths):
                raise ValueError(f"the batch's '{name}' column has {len(column)} rows, its 'path' column {len(paths)}")
        out: dict[str, list] = {"path": paths, "image_id": [None] * len(paths), "detections": [None] * len(paths), "error": [None] * len(paths)}
        for i, path in enumerate(paths):
            try:
                out["image_id"][i] = _coco_id(ids[i], f"row {i}'s image_id") if ids is not None else self._image_id(path)
            except ValueError as e:
                out["error"][i] = f"{path}: {e}"
        # Decoded a network batch at a time, so a large block holds one batch of pixels, not all of its images'.
        # With streams (CPU only: `streams` is 1 on a GPU), each runs one of `max_batch` images at once. N calls at
        # once on N streams decode N x N x `max_batch` images: splitting the streams among the calls running
        # (`max_batch` each) was 2-4% slower on 2 cores (two paired 36-image jobs), so each call keeps every stream
        # busy while the others decode.
        step = self.max_batch * self.detector.streams if self.max_batch else max(1, len(paths))
        for at in range(0, len(paths), step):
            images, rows = [], []
            for i in range(at, min(at + step, len(paths))):
                if out["error"][i] is not None:
                    continue
                try:
                    images.append(imread(paths[i]) if data is None else _decode(data[i]))
                    rows.append(i)
                except (Error, ValueError) as e:
                    out["error"][i] = f"{paths[i]}: {e}"
            if images:
                self._predict(images, rows, paths, out)
        if None not in out["image_id"]:
            # Typed, or numpy would hold ids past 2**63 as floats (and Arrow refuse them as int64).
            out["image_id"] = np.array(out["image_id"], dtype=np.uint64)
        return out

    def _predict(self, images: list, rows: list[int], paths: list[str], out: dict[str, list]) -> None:
        """Fills ``out``'s rows ``rows`` with the detections of ``images`` (one network call) or their errors."""
        with self._lanes:
            try:
                results = self.detector.predict_batch(images)
            except (Error, ValueError):
                # A batch that fails (a device out of memory, too many masks to paste at once) runs again image by
                # image: each row its own outcome.
                results = []
                for i, image in zip(rows, images):
                    try:
                        results.append(self.detector.predict(image))
                    except (Error, ValueError) as e:
                        out["error"][i] = f"{paths[i]}: {e}"
                        results.append(None)
        for i, res in zip(rows, results):
            if res is not None:
                out["detections"][i] = json.dumps(res.to_coco(out["image_id"][i], self.category_ids), separators=(",", ":"))

    def _image_id(self, path: str) -> int:
        if self.image_ids is not None:
            key = path if path in self.image_ids else os.path.basename(path)
            if key in self.image_ids:
                return self.image_ids[key]
        stem = _stem_id(path)
        return path_id(path) if stem is None else stem


def _decode(data: Any) -> Any:
    """A row's image from its ``bytes`` value. (With no bytes column, ``imread(path)`` reads the file: the binary's
    size limit; an unreadable file is a :class:`mask_rcnn_burn.FileError`.)"""
    if isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 1:
        data = data.tobytes()
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValueError(f"its bytes are a {type(data).__name__}, not the encoded image")
    return imread(bytes(data))


def _coco_id(value: Any, what: str) -> int:
    """``value`` as a COCO image id (an integer from 0 to 2**64 - 1: what a results entry holds), or a ValueError
    naming ``what``."""
    if not _uint(value, 64):
        raise ValueError(f"{what} must be an integer from 0 to 2**64 - 1, got {value!r}")
    return int(value)


def _stem_id(path: str) -> int | None:
    """The binary's id of a path (``dataset::image_files``): its file stem when that is an ASCII number below 2**64."""
    stem = pathlib.PurePath(path).stem
    return int(stem) if re.fullmatch(r"[0-9]+", stem) and int(stem) < 2**64 else None


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
    ids = [_stem_id(p) for p in paths]
    if all(i is not None for i in ids) and len(set(ids)) == len(ids):
        return dict(zip(paths, ids))
    return {p: i for i, p in enumerate(paths)}
