"""The Python package against mmdetection's parity fixtures, the `infer` binary, and bad input of every kind."""

from __future__ import annotations

import json
import pickle
import subprocess
import threading
import time

import numpy as np
import pytest
from pycocotools import mask as mask_util  # noqa: F401  (decodes the fixtures' RLE below)

import mask_rcnn_burn as mrb

from conftest import FIXTURES, case

HOPPER = FIXTURES / "images" / "hopper_640x480.png"
COFFEE_JPEG = FIXTURES / "images" / "coffee_600x400_q85.jpg"


def box_iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match(reference: list[dict], res: mrb.Result, min_iou=0.98, max_score_diff=2e-3) -> list[tuple[int, int]]:
    """The crate's greedy one-to-one matching (eval::match_detections)."""
    taken, pairs = set(), []
    for r in sorted(range(len(reference)), key=lambda i: -reference[i]["score"]):
        want = reference[r]
        best = None
        for j in range(len(res)):
            if j in taken or int(res.labels[j]) != want["label"] or abs(float(res.scores[j]) - want["score"]) > max_score_diff:
                continue
            iou = box_iou(want["bbox"], res.boxes[j].tolist())
            if iou >= min_iou and (best is None or iou > best[1]):
                best = (j, iou)
        if best is not None:
            taken.add(best[0])
            pairs.append((r, best[0]))
    return pairs


def test_path_input_matches_mmdetection(detector):
    fixture = case("r50_hopper_320")["detections"]
    res = detector.predict(HOPPER)
    pairs = match(fixture, res)
    inter = union = 0
    for r, o in pairs:
        theirs = mask_util.decode(fixture[r]["rle"]).astype(bool)
        ours = res.masks[o]
        inter += int((theirs & ours).sum())
        union += int((theirs | ours).sum())
    print(f"{len(pairs)}/100 matched, mask I/U {inter / union:.5f}")
    assert len(fixture) == 100 and len(pairs) >= 99
    assert inter / union >= 0.99
    assert res.boxes.dtype == np.float32 and res.boxes.shape == (len(res), 4)
    assert res.scores.dtype == np.float32 and res.labels.dtype == np.int64
    assert res.masks.shape == (len(res), 480, 640) and res.masks.dtype == bool
    assert res.class_names == [detector.classes[int(i)] for i in res.labels]
    d = res[0]
    assert d.class_name == res.class_names[0] and d.mask.shape == (480, 640)
    # Each RLE decodes to its mask (pycocotools' decoder).
    for rle, mask in zip(res.rle[:10], res.masks[:10]):
        decoded = mask_util.decode({"size": rle["size"], "counts": rle["counts"].encode()}).astype(bool)
        assert np.array_equal(decoded, mask)


def test_to_coco_equals_the_binarys_json(detector, infer_bin, weights, config_320, tmp_path):
    for image in (HOPPER, COFFEE_JPEG):
        out = tmp_path / f"{image.stem}.json"
        subprocess.run([str(infer_bin), str(image), "--model", str(config_320), "--weights", str(weights), "--device", "cpu",
                        "--image-id", "7", "--json", str(out)], check=True, capture_output=True)
        binary = json.loads(out.read_text())
        ours = detector.predict(image).to_coco(image_id=7)
        assert len(ours) > 0
        assert ours == binary
    res = detector.predict(HOPPER)
    for bad in (dict(image_id=-1), dict(image_id=2**64), dict(category_ids=[-1] * len(detector.classes))):
        with pytest.raises(ValueError, match="must be from 0"):
            res.to_coco(**bad)
    with pytest.raises(TypeError):
        res.to_coco(image_id=1.9)


def test_arrays_and_bytes_equal_the_path(detector):
    by_path = detector.predict(COFFEE_JPEG)
    bgr = mrb.imread(COFFEE_JPEG)
    assert bgr.shape == (400, 600, 3) and bgr.dtype == np.uint8
    for res in (
        detector.predict(COFFEE_JPEG.read_bytes()),
        detector.predict(bgr),
        detector.predict(np.ascontiguousarray(bgr[:, :, ::-1]), channel_order="rgb"),
        detector.predict(bgr[:, :, ::-1], channel_order="rgb"),  # a non-contiguous view
        detector.predict(str(COFFEE_JPEG)),
    ):
        assert res.to_coco() == by_path.to_coco()
    gray = mrb.imread(HOPPER)[:, :, 1]
    assert detector.predict(gray).to_coco() == detector.predict(np.repeat(gray[:, :, None], 3, axis=2)).to_coco()


def test_predict_batch_equals_predict_each(detector):
    images = [HOPPER, COFFEE_JPEG, mrb.imread(HOPPER), HOPPER.read_bytes()]
    batch = detector.predict_batch(images)
    assert len(batch) == 4
    for image, res in zip(images, batch):
        assert res.to_coco() == detector.predict(image).to_coco()


def test_streams_give_each_image_its_own_result(weights, config_320, detector):
    streamed = mrb.Detector(str(config_320), weights=weights, device="cpu", streams=2)
    assert streamed.streams == 2 and detector.streams == 1
    images = [HOPPER, COFFEE_JPEG, mrb.imread(HOPPER), HOPPER.read_bytes(), COFFEE_JPEG]
    for image, res in zip(images, streamed.predict_batch(images)):
        assert res.to_coco() == detector.predict(image).to_coco()
    assert pickle.loads(pickle.dumps(streamed)).streams == 2
    assert mrb.Detector(str(config_320), weights=weights, device="cpu", streams=np.int64(2)).streams == 2
    for bad, error in ((0, ValueError), (65, ValueError), (1.5, TypeError), (True, TypeError), ("2", TypeError)):
        with pytest.raises(error, match="streams|integer"):
            mrb.Detector(str(config_320), weights=weights, device="cpu", streams=bad)


@pytest.mark.parametrize(
    "bad, error",
    [
        (np.zeros((10, 10, 3), dtype=np.float32), TypeError),
        (np.zeros((10, 10, 4), dtype=np.uint8), ValueError),
        (np.zeros((10,), dtype=np.uint8), ValueError),
        (np.zeros((0, 10, 3), dtype=np.uint8), mrb.ImageError),
        (np.zeros((2, 3, 4, 5), dtype=np.uint8), ValueError),
        (b"", mrb.ImageError),
        (b"not an image at all", mrb.ImageError),
        (b"\xff\xd8\xff" + bytes(200), mrb.ImageError),
        (12345, TypeError),
        (None, TypeError),
        (FIXTURES / "no_such_image.png", mrb.FileError),
        (FIXTURES, mrb.FileError),
    ],
)
def test_bad_images_raise_the_documented_exception(detector, bad, error):
    with pytest.raises(error) as info:
        detector.predict(bad)
    assert "\n" not in str(info.value)
    # The package's own errors are also the built-in exception of their kind (errors.py).
    builtin = {mrb.ImageError: ValueError, mrb.FileError: OSError}.get(error)
    if builtin is not None:
        assert isinstance(info.value, mrb.Error) and isinstance(info.value, builtin)


def test_fuzzed_arrays_never_crash(detector):
    rng = np.random.default_rng(0)
    for _ in range(40):
        ndim = int(rng.integers(0, 5))
        shape = tuple(int(s) for s in rng.integers(0, 9, size=ndim))
        dtype = rng.choice([np.uint8, np.int16, np.float64, np.bool_])
        array = np.zeros(shape, dtype=dtype)
        try:
            detector.predict(array)
        except (TypeError, ValueError):
            pass


def test_bad_construction_raises_the_documented_exception(weights, tmp_path):
    with pytest.raises(mrb.ConfigError):
        mrb.Detector("r152-1x", weights=weights, device="cpu")
    with pytest.raises(mrb.FileError):
        mrb.Detector("r50-2x", weights=tmp_path / "missing.safetensors", device="cpu")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}")
    with pytest.raises(mrb.WeightsError):
        mrb.Detector("r50-2x", weights=junk, device="cpu")
    with pytest.raises(mrb.WeightsError):
        mrb.Detector("r101-2x", weights=weights, device="cpu")
    # Arguments out of range: plain ValueErrors (not an input's Error), as errors.py says.
    for kwargs, message in ((dict(device="cuda"), "cuda"), (dict(device="cpu", precision="f8"), "f8"), (dict(device="cpu", score_thr=2.0), "2")):
        with pytest.raises(ValueError, match=message) as info:
            mrb.Detector("r50-2x", weights=weights, **kwargs)
        assert not isinstance(info.value, mrb.Error), info.value
    with pytest.raises(mrb.DeviceError):
        mrb.Detector("r50-2x", weights=weights, device="wgpu:99")


def test_threads_share_a_detector_and_the_gil_is_released(detector):
    expected = detector.predict(HOPPER).to_coco()
    results, ticks, done = [None] * 4, [0], threading.Event()

    def ticker():
        while not done.is_set():
            ticks[0] += 1
            time.sleep(0.001)

    tick = threading.Thread(target=ticker)
    tick.start()
    start = time.perf_counter()
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, detector.predict(HOPPER).to_coco())) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    done.set()
    tick.join()
    assert all(r == expected for r in results)
    # While predictions ran (seconds), the ticker kept running: a held GIL would let it tick only between them.
    assert ticks[0] >= max(20, 20 * elapsed), f"{ticks[0]} ticks in {elapsed:.2f} s"


def test_a_detector_pickles(detector):
    again = pickle.loads(pickle.dumps(detector))
    assert again.classes == detector.classes
    assert again.predict(HOPPER).to_coco() == detector.predict(HOPPER).to_coco()


def test_help_reads_like_a_library():
    text = mrb.Detector.__doc__
    assert "weights" in text and "device" in text and "Raises" in text
    assert "r50-2x" in mrb.models() and "x101-ws-2x" in mrb.models()
    assert mrb.__version__


def test_sliced_prediction_tiles_a_large_image(detector):
    big = np.concatenate([mrb.imread(HOPPER), mrb.imread(HOPPER)[:, ::-1]], axis=1)  # 1280 x 480
    res = detector.predict_sliced(big, slice=(512, 512), overlap=0.2)
    assert res.image_size == (480, 1280) and len(res) > 0
    assert (res.boxes[:, 2] <= 1280).all() and (res.scores[:-1] >= res.scores[1:]).all()
    assert len(detector.predict_sliced(big, slice=(512, 512), overlap=0.2, max_detections=5)) == 5
    with pytest.raises(ValueError):
        detector.predict_sliced(big, slice=(512, 512), overlap=1.0)
    with pytest.raises(ValueError):
        detector.predict_sliced(big, merge="average")
    for bad in (dict(slice=(-1, 512)), dict(slice=(512, 0)), dict(max_detections=-1)):
        with pytest.raises(ValueError, match="at least 1"):
            detector.predict_sliced(big, **bad)
