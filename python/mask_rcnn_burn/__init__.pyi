import os
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from .errors import ConfigError as ConfigError
from .errors import DatasetError as DatasetError
from .errors import DeviceError as DeviceError
from .errors import Error as Error
from .errors import FileError as FileError
from .errors import ImageError as ImageError
from .errors import WeightsError as WeightsError

__version__: str

ImageInput = str | os.PathLike[str] | bytes | bytearray | memoryview | np.ndarray

def models() -> list[str]: ...
def imread(image: str | os.PathLike[str] | bytes) -> np.ndarray: ...

class Detection:
    box: np.ndarray
    score: float
    label: int
    class_name: str
    @property
    def mask(self) -> np.ndarray: ...

class Result:
    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    image_size: tuple[int, int]
    def __len__(self) -> int: ...
    def __getitem__(self, i: int) -> Detection: ...
    def __iter__(self) -> Iterator[Detection]: ...
    @property
    def masks(self) -> np.ndarray: ...
    @property
    def rle(self) -> list[dict[str, Any]]: ...
    def to_coco(self, image_id: int = 0, category_ids: Sequence[int] | None = None) -> list[dict[str, Any]]: ...

class Detector:
    def __init__(
        self,
        model: str = "r50-2x",
        weights: str | os.PathLike[str] | None = None,
        device: str = "auto",
        precision: str = "f32",
        score_thr: float | None = None,
        classes: Sequence[str] | None = None,
        streams: int = 1,
    ) -> None: ...
    @property
    def streams(self) -> int: ...
    @property
    def classes(self) -> list[str]: ...
    @property
    def device(self) -> str: ...
    @property
    def config_name(self) -> str: ...
    def predict(self, image: ImageInput, channel_order: str = "bgr") -> Result: ...
    def predict_batch(self, images: Iterable[ImageInput], channel_order: str = "bgr") -> list[Result]: ...
    def predict_sliced(
        self,
        image: ImageInput,
        slice: tuple[int, int] = (512, 512),
        overlap: float | tuple[float, float] = 0.2,
        full_image: bool = True,
        merge: str = "greedy-nmm",
        match_metric: str = "ios",
        match_threshold: float = 0.5,
        class_agnostic: bool = False,
        max_detections: int | None = None,
        channel_order: str = "bgr",
    ) -> Result: ...
