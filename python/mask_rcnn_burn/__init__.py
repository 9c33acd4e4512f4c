"""mmdetection's Group Normalization Mask R-CNN, run by a Rust core (Burn): boxes, classes and masks a numpy call
away, with mmdetection's answers.

    >>> import mask_rcnn_burn as mrb
    >>> det = mrb.Detector("r50-2x", weights="r50-2x.safetensors", device="cpu")
    >>> res = det.predict("photo.jpg")
    >>> res.boxes, res.scores, res.labels, res.class_names   # numpy arrays and a list
    >>> res.masks                                             # (N, H, W) bool, decoded on first access
    >>> res.to_coco(image_id=0)                               # the infer binary's COCO results entries

Images are paths (``str`` or ``os.PathLike``), bytes of an encoded PNG or JPEG (decoded as OpenCV's ``imread``
decodes them, so ``predict(path)`` equals mmdetection on the same file), or numpy ``uint8`` arrays: ``H x W x 3``
BGR as ``cv2.imread`` gives them (``channel_order="rgb"`` for PIL / imageio arrays) or ``H x W`` gray.
"""

from __future__ import annotations

import json
import operator
import os
from typing import Any, Iterable, Sequence

import numpy as np

# Mesa's Vulkan device-select layer prints "XDG_RUNTIME_DIR is invalid or not set" twice at every adapter probe on a
# machine without a Wayland session (servers, containers, CI); with no display to select by, it is switched off, as
# the infer binary does (unless the user steers it).
if not os.environ.get("XDG_RUNTIME_DIR") and not any(v in os.environ for v in ("NODEVICE_SELECT", "MESA_VK_DEVICE_SELECT", "DRI_PRIME")):
    os.environ["NODEVICE_SELECT"] = "1"

from . import _native  # noqa: E402
from .errors import ConfigError, DatasetError, DeviceError, Error, FileError, ImageError, WeightsError  # noqa: E402

__all__ = [
    "Detector",
    "Result",
    "Detection",
    "models",
    "imread",
    "Error",
    "ImageError",
    "WeightsError",
    "ConfigError",
    "DeviceError",
    "DatasetError",
    "FileError",
    "__version__",
]

__version__: str = _native.version()


def _uint(value: Any, bits: int) -> bool:
    """Whether ``value`` is an integer (not a bool) from 0 to 2**bits - 1: what a COCO results entry holds as an
    image id (64 bits) or a category id (32)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)) and 0 <= int(value) < 2**bits


def models() -> list[str]:
    """The built-in model configs' aliases (``r50-2x``, ``x101-ws-2x``, ...); ``Detector`` also takes
    mmdetection's config names and TOML files."""
    return list(_native.models())


def imread(image: str | os.PathLike | bytes) -> np.ndarray:
    """Decodes a PNG or JPEG file (or its bytes) into an ``H x W x 3`` uint8 BGR array exactly as OpenCV's
    ``cv2.imread(path, cv2.IMREAD_COLOR)`` does (EXIF orientation applied, gray replicated): what :meth:`Detector.predict`
    sees of a path."""
    kind, value = ("bytes", bytes(image)) if isinstance(image, (bytes, bytearray, memoryview)) else ("path", os.fspath(image))
    data, height, width = _native.decode(kind, value)
    return np.frombuffer(data, dtype=np.uint8).reshape(height, width, 3).copy()


def _input(image: Any, channel_order: str) -> tuple:
    """One image as the native layer takes it: ``(kind, value, height, width, channels, rgb)``."""
    if channel_order not in ("bgr", "rgb"):
        raise ValueError(f"channel_order must be 'bgr' or 'rgb', not {channel_order!r}")
    if isinstance(image, (str, os.PathLike)):
        return ("path", os.fspath(image), 0, 0, 3, False)
    if isinstance(image, (bytes, bytearray, memoryview)):
        return ("bytes", bytes(image), 0, 0, 3, False)
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise TypeError(f"an image array must be uint8, not {image.dtype} (convert it, e.g. arr.astype(np.uint8))")
        if image.ndim == 3 and image.shape[2] == 1:
            image = image[:, :, 0]
        if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
            raise ValueError(f"an image array is H x W x 3 or H x W, not {image.shape}")
        if image.shape[0] == 0 or image.shape[1] == 0:
            raise ImageError(f"an image array of shape {image.shape} has no pixels")
        channels = 1 if image.ndim == 2 else 3
        data = np.ascontiguousarray(image).tobytes()
        return ("pixels", data, int(image.shape[0]), int(image.shape[1]), channels, channel_order == "rgb")
    raise TypeError(f"an image is a path, bytes of an encoded image or a uint8 numpy array, not {type(image).__name__}")


class Detection:
    """One detected object: ``box`` (x1, y1, x2, y2), ``score``, ``label``, ``class_name``, and its ``mask``."""

    __slots__ = ("box", "score", "label", "class_name", "_result", "_index")

    def __init__(self, result: "Result", index: int) -> None:
        self._result, self._index = result, index
        self.box = result.boxes[index]
        self.score = float(result.scores[index])
        self.label = int(result.labels[index])
        self.class_name = result.class_names[index]

    @property
    def mask(self) -> np.ndarray:
        """The ``(H, W)`` bool mask."""
        return self._result._mask(self._index)

    def __repr__(self) -> str:
        x1, y1, x2, y2 = (float(v) for v in self.box)
        return f"Detection({self.class_name!r}, score={self.score:.3f}, box=({x1:.1f}, {y1:.1f}, {x2:.1f}, {y2:.1f}))"


class Result:
    """The detections of one image, by decreasing score: numpy arrays, masks decoded on first access."""

    def __init__(self, native: Any, category_ids: Sequence[int]) -> None:
        self._native = native
        self._category_ids = list(category_ids)
        self.boxes: np.ndarray = np.frombuffer(native.boxes(), dtype="<f4").reshape(-1, 4).astype(np.float32)
        """``(N, 4)`` float32 boxes, x1 y1 x2 y2 in the original image's pixels."""
        self.scores: np.ndarray = np.frombuffer(native.scores(), dtype="<f4").astype(np.float32)
        """``(N,)`` float32 scores."""
        self.labels: np.ndarray = np.frombuffer(native.labels(), dtype="<i8").astype(np.int64)
        """``(N,)`` int64 class indices."""
        self.class_names: list[str] = native.class_names()
        """The class name of each detection."""
        self.image_size: tuple[int, int] = native.image_size
        """``(height, width)`` of the image."""
        self._masks: np.ndarray | None = None
        self._windows: list | None = None

    def __len__(self) -> int:
        return len(self.scores)

    def __getitem__(self, i: int) -> Detection:
        if not -len(self) <= i < len(self):
            raise IndexError(f"detection {i} of {len(self)}")
        return Detection(self, i % len(self))

    def __iter__(self):
        return (Detection(self, i) for i in range(len(self)))

    def __repr__(self) -> str:
        h, w = self.image_size
        return f"Result({len(self)} detections in a {w}x{h} image)"

    def _window_list(self) -> list:
        if self._windows is None:
            self._windows = self._native.mask_windows()
        return self._windows

    def _mask(self, i: int) -> np.ndarray:
        h, w = self.image_size
        (x0, y0, x1, y1), data = self._window_list()[i]
        out = np.zeros((h, w), dtype=bool)
        out[y0:y1, x0:x1] = np.frombuffer(data, dtype=np.uint8).reshape(y1 - y0, x1 - x0) != 0
        return out

    @property
    def masks(self) -> np.ndarray:
        """``(N, H, W)`` bool masks at the image's resolution (built on first access; each detection's mask is stored
        as its box's window until then)."""
        if self._masks is None:
            h, w = self.image_size
            masks = np.zeros((len(self), h, w), dtype=bool)
            for i, ((x0, y0, x1, y1), data) in enumerate(self._window_list()):
                masks[i, y0:y1, x0:x1] = np.frombuffer(data, dtype=np.uint8).reshape(y1 - y0, x1 - x0) != 0
            self._masks = masks
        return self._masks

    @property
    def rle(self) -> list[dict]:
        """Each mask as COCO RLE, ``{"size": [h, w], "counts": str}`` (pycocotools' compressed form)."""
        return [{"size": [h, w], "counts": counts} for counts, h, w in self._native.rle()]

    def to_coco(self, image_id: int = 0, category_ids: Sequence[int] | None = None) -> list[dict]:
        """The ``infer`` binary's COCO results JSON entries for this image: ``image_id``, ``category_id`` (COCO's ids
        for COCO's 80 classes, else 1..N, or ``category_ids[label]``), ``label``, ``class``, ``bbox`` ``[x, y, w,
        h]``, ``score``, ``segmentation`` (RLE).

        Raises:
            ValueError: ``image_id`` is negative or above 2**64 - 1, a category id outside 0..2**32 - 1, or a
                label without a category id.
        """
        ids = self._category_ids if category_ids is None else [int(c) for c in category_ids]
        image_id = operator.index(image_id)  # TypeError for 1.9: an id is never rounded
        if not _uint(image_id, 64):
            raise ValueError(f"image_id must be from 0 to 2**64 - 1, got {image_id}")
        bad = [c for c in ids if not _uint(c, 32)]
        if bad:
            raise ValueError(f"category ids must be from 0 to 2**32 - 1, got {bad[0]}")
        return json.loads(self._native.to_coco_json(image_id, ids))


class Detector:
    """A GN Mask R-CNN ready to detect objects.

    Args:
        model: a built-in config's alias (``"r50-2x"``, ``"x101-ws-2x"``; see :func:`models`), an mmdetection config
            name (``"mask-rcnn_r50_fpn_gn-all_2x_coco"``) or a TOML config file.
        weights: a ``.safetensors`` or mmdetection ``.pth`` checkpoint (your own fine-tuned ones too: the classes come
            from the file). ``None`` downloads the config's official checkpoint into the cache once.
        device: ``"auto"`` (the first hardware GPU, else the CPU), ``"cpu"``, ``"wgpu"``, ``"vulkan"``, or
            ``"wgpu:N"`` / ``"vulkan:N"`` for adapter N.
        precision: ``"f32"``, or ``"f16"`` (the pyramid and heads' activations in half precision, the backbone and FPN in f32; GPUs).
        score_thr: keep detections scoring above this (default: the config's, 0.05).
        classes: class names in label order, overriding the checkpoint's.
        streams: on the CPU, how many images :meth:`predict_batch` runs at once, each on its own share of the
            threads: more images per second, each image slower, that many images' activations in memory (2 streams
            on 2 cores: 0.94-0.99x the time of 1). Each stream has ``threads // streams`` threads, at least one
            (so a one-image :meth:`predict_batch` runs on one stream's threads; :meth:`predict` uses them all);
            :meth:`predict_batch` calls from several threads at once share the streams, each image on a stream no
            other call holds. No effect on a GPU. 1 to 64.

    Raises:
        ConfigError, WeightsError, DeviceError, FileError: what is wrong, in one line.
        ValueError: an argument out of its range: ``device``, ``precision``, ``score_thr``, as many ``classes`` as
            the model has, ``streams`` from 1 to 64.
        TypeError: ``streams`` is not an integer.

    Inference releases the GIL: several threads may share one detector. A detector pickles (it is re-created from
    its arguments where it is unpickled), so Spark, Dask or Ray closures can carry it.
    """

    def __init__(
        self,
        model: str = "r50-2x",
        weights: str | os.PathLike | None = None,
        device: str = "auto",
        precision: str = "f32",
        score_thr: float | None = None,
        classes: Sequence[str] | None = None,
        streams: int = 1,
    ) -> None:
        if isinstance(streams, bool):
            raise TypeError("streams must be an integer, not a bool")
        streams = operator.index(streams)  # TypeError for a float or a string
        if not 1 <= streams <= _native.MAX_STREAMS:
            raise ValueError(f"streams must be 1 to {_native.MAX_STREAMS}, got {streams}")
        self._args = (
            os.fspath(model),
            None if weights is None else os.fspath(weights),
            str(device),
            str(precision),
            None if score_thr is None else float(score_thr),
            None if classes is None else [str(c) for c in classes],
            streams,
        )
        self._native = _native.NativeDetector(*self._args)
        self._category_ids = self._native.category_ids

    def __reduce__(self):
        return (Detector, self._args)

    def __repr__(self) -> str:
        return f"Detector({self._args[0]!r}, device={self.device!r}, {len(self.classes)} classes)"

    @property
    def streams(self) -> int:
        """Images :meth:`predict_batch` runs at once (1 on a GPU, whatever was asked)."""
        return self._native.streams

    @property
    def classes(self) -> list[str]:
        """Class names in label order."""
        return list(self._native.classes)

    @property
    def device(self) -> str:
        """The device it runs on: the adapter's name and API."""
        return self._native.device

    @property
    def config_name(self) -> str:
        """The mmdetection config the model follows."""
        return self._native.config_name

    def predict(self, image: Any, channel_order: str = "bgr") -> Result:
        """Detects objects in one image: a path, bytes of an encoded image, or a uint8 array (BGR unless
        ``channel_order="rgb"``)."""
        return Result(self._native.predict(*_input(image, channel_order)), self._category_ids)

    def predict_sliced(
        self,
        image: Any,
        slice: tuple[int, int] = (512, 512),
        overlap: float | tuple[float, float] = 0.2,
        full_image: bool = True,
        merge: str = "greedy-nmm",
        match_metric: str = "ios",
        match_threshold: float = 0.5,
        class_agnostic: bool = False,
        max_detections: int | None = None,
        channel_order: str = "bgr",
    ) -> Result:
        """Detects objects in a large image tile by tile, as SAHI does: overlapping ``slice`` (width, height) tiles at
        native resolution (``overlap``: a fraction of the tile, or (width, height) fractions), plus the whole image
        unless ``full_image=False``, merged by ``merge`` ("greedy-nmm", SAHI's default, "nmm" or "nms") where they
        overlap by more than ``match_threshold`` of the smaller box ("ios") or of the union ("iou").

        Raises:
            ValueError: a ``slice`` side or ``max_detections`` below 1, or what the tiling refuses (an overlap
                outside [0, 1), an unknown ``merge`` or ``match_metric``); ImageError, FileError: as :meth:`predict`.
        """
        if any(int(side) < 1 for side in slice) or (max_detections is not None and int(max_detections) < 1):
            raise ValueError(f"slice sides and max_detections must be at least 1, got slice={tuple(slice)}, max_detections={max_detections}")
        ow, oh = (overlap, overlap) if isinstance(overlap, (int, float)) else overlap
        native = self._native.predict_sliced(
            *_input(image, channel_order), (int(slice[0]), int(slice[1])), (float(ow), float(oh)), bool(full_image),
            str(merge), str(match_metric), float(match_threshold), bool(class_agnostic), max_detections,
        )
        return Result(native, self._category_ids)

    def predict_batch(self, images: Iterable[Any], channel_order: str = "bgr") -> list[Result]:
        """:meth:`predict` of each image; images of the same input shape go through the network together (with
        ``streams`` on the CPU, one image per stream instead). Each result equals what :meth:`predict` gives that
        image alone."""
        items = [_input(image, channel_order) for image in images]
        return [Result(r, self._category_ids) for r in self._native.predict_batch(items)]
