"""The Ray Data runner on a local cluster: the same detections and AP as the infer binary, errors as rows, resume."""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

ray = pytest.importorskip("ray", reason="the [ray] extra is not installed")

from mask_rcnn_burn import ray as mrb_ray  # noqa: E402
from mask_rcnn_burn.ray import entry, results as ray_results  # noqa: E402

from conftest import FIXTURES  # noqa: E402

COCO = FIXTURES / "coco_eval" / "instances.json"
IMAGES = FIXTURES / "images"


def by_image(entries: list[dict]) -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = {}
    for e in entries:
        out.setdefault(e["image_id"], []).append(e)
    return out


def plain(out: dict) -> dict:
    """A Predictor's output batch with every column as a list, to compare."""
    return {k: list(v) if not isinstance(v, list) else v for k, v in out.items()}


def ray_processes() -> set[str]:
    return set(subprocess.run(["pgrep", "-f", "ray::|raylet|gcs_server"], capture_output=True, text=True).stdout.split())


def binary(infer_bin, args, tmp_path, name) -> tuple[dict, dict | None, subprocess.CompletedProcess]:
    out, ap = tmp_path / f"{name}.json", tmp_path / f"{name}_ap.json"
    extra = ["--eval-json", str(ap)] if "--annotations" in args else []
    run = subprocess.run([str(infer_bin), *args, "--json", str(out), *extra], capture_output=True, text=True)
    return by_image(json.loads(out.read_text())), (json.loads(ap.read_text()) if ap.exists() else None), run


def test_two_actors_give_the_binarys_detections_and_ap(infer_bin, weights, config_320, tmp_path):
    common = ["--model", str(config_320), "--weights", str(weights), "--device", "cpu"]
    want, want_ap, run = binary(infer_bin, ["--annotations", str(COCO), "--images", str(IMAGES), *common], tmp_path, "binary")
    assert run.returncode == 0, run.stderr
    out, ap = tmp_path / "ray.json", tmp_path / "ray_ap.json"
    code = entry.main(["--annotations", str(COCO), "--images", str(IMAGES), *common, "--json", str(out), "--eval-json", str(ap),
                         "--actors", "2", "--cpus-per-actor", "0.5", "--parquet", str(tmp_path / "parquet")])
    assert code == 0
    got = by_image(json.loads(out.read_text()))
    assert got == want and len(got) == 3
    assert json.loads(ap.read_text()) == want_ap
    # pycocotools on the Ray run's results: the same 12 + 12 numbers.
    from pycocotools.coco import COCO as Coco
    from pycocotools.cocoeval import COCOeval

    gt = Coco(str(COCO))
    for kind in ("bbox", "segm"):
        e = COCOeval(gt, gt.loadRes(str(out)), kind)
        e.evaluate(), e.accumulate(), e.summarize()
        ours = [want_ap[kind][k] for k in ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")]
        assert all(abs(a - b) <= 1e-4 for a, b in zip(e.stats, ours)), (kind, list(e.stats), ours)
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "parquet")
    assert sorted(table.column("image_id").to_pylist()) == [1, 2, 3]
    assert ray.is_initialized() is False


def test_corrupt_and_missing_images_are_rows_with_errors(infer_bin, weights, config_320, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for i, name in enumerate(["hopper_640x480.png", "coffee_600x400_q85.jpg"]):
        shutil.copy(IMAGES / name, folder / f"{i + 1:06d}{pathlib.Path(name).suffix}")
    (folder / "000003.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    coco = json.loads(COCO.read_text())
    coco["images"] = [{"id": 1, "file_name": "000001.png", "width": 640, "height": 480},
                      {"id": 2, "file_name": "000002.jpg", "width": 600, "height": 400},
                      {"id": 3, "file_name": "000003.png", "width": 600, "height": 400},
                      {"id": 4, "file_name": "000004.png", "width": 600, "height": 400}]
    coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] in (1, 2)]
    ann = tmp_path / "instances.json"
    ann.write_text(json.dumps(coco))
    common = ["--annotations", str(ann), "--images", str(folder), "--model", str(config_320), "--weights", str(weights), "--device", "cpu"]
    want, want_ap, run = binary(infer_bin, common, tmp_path, "binary")
    assert run.returncode == 3, run.stderr
    out = tmp_path / "ray.json"
    code = entry.main([*common, "--json", str(out), "--eval-json", str(tmp_path / "ray_ap.json"), "--actors", "2", "--cpus-per-actor", "0.5"])
    assert code == 3, "the job completes, with the failed images counted"
    assert by_image(json.loads(out.read_text())) == want
    assert json.loads((tmp_path / "ray_ap.json").read_text()) == want_ap
    # As the binary's: only the images that ran are done, so --resume tries the failed ones again.
    done = [int(v) for v in pathlib.Path(str(out) + ".done").read_text().split()]
    assert sorted(done) == [1, 2]
    assert sorted(done) == sorted(int(v) for v in (tmp_path / "binary.json.done").read_text().split())


def test_a_killed_job_resumes_with_every_image_once(infer_bin, weights, config_320, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(6):
        shutil.copy(IMAGES / ("hopper_640x480.png" if i % 2 else "coffee_600x400.png"), folder / f"{i + 10:06d}.png")
    common = [str(folder), "--model", str(config_320), "--weights", str(weights), "--device", "cpu"]
    want, _, run = binary(infer_bin, common, tmp_path, "binary")
    assert run.returncode == 0, run.stderr
    out = tmp_path / "ray.json"
    done = pathlib.Path(str(out) + ".done")
    cmd = [sys.executable, "-m", "mask_rcnn_burn.ray", *common, "--json", str(out), "--actors", "1", "--cpus-per-actor", "0.5"]
    already = ray_processes()  # another Ray job on this machine is not this test's concern
    job = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and not (done.exists() and len(done.read_text().split()) >= 1):
        time.sleep(0.2)
    os.killpg(job.pid, signal.SIGINT)
    job.wait(timeout=120)
    finished_before = len(done.read_text().split())
    assert 1 <= finished_before < 6, f"killed after {finished_before} images"
    resumed = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    ids = [int(v) for v in done.read_text().split()]
    assert sorted(ids) == list(range(10, 16)), "every image exactly once"
    assert by_image(json.loads(out.read_text())) == want
    # Both clusters shut down (the killed one through its own exit handler): no Ray process is left once they finish
    # stopping (a few seconds).
    deadline = time.time() + 30
    while leftover := ray_processes() - already:
        assert time.time() < deadline, f"Ray processes left behind: {leftover}"
        time.sleep(0.5)


def test_results_file_appends_in_place_and_a_cut_off_append_resumes(tmp_path):
    """The results file grows by each batch's entries (valid JSON after each), and a run killed mid-append resumes
    with the complete entries of the images its `.done` lists, the cut one dropped."""
    path = str(tmp_path / "out.json")
    results = ray_results.Results(path, resume=False)
    entry = lambda image_id, k: {"image_id": image_id, "category_id": 1, "score": k / 10}  # noqa: E731
    results.append([(1, [entry(1, 1), entry(1, 2)]), (2, [])])
    results.append([(3, [entry(3, 3)])])
    assert json.loads(pathlib.Path(path).read_text()) == [entry(1, 1), entry(1, 2), entry(3, 3)]
    # A kill between an append's entries and its `.done` line, mid-entry: image 4 is not done.
    with open(path, "r+b") as f:
        f.seek(-1, os.SEEK_END)
        f.write(b',{"image_id":4,"category_id":1,"sco')
    resumed = ray_results.Results(path, resume=True)
    assert resumed.done == {1, 2, 3}
    assert json.loads(pathlib.Path(path).read_text()) == [entry(1, 1), entry(1, 2), entry(3, 3)]
    resumed.append([(4, [entry(4, 4)])])
    assert [e["image_id"] for e in json.loads(pathlib.Path(path).read_text())] == [1, 1, 3, 4]
    pathlib.Path(path).write_text("not json")
    with pytest.raises(SystemExit, match="not a results JSON"):
        ray_results.Results(path, resume=True)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread niceness is Linux's")
def test_the_driver_yields_to_the_workers_on_every_thread():
    """Every thread of the driver, those already running (Ray's, started by ray.init) and those started after (Ray
    Data's scheduling loop), ends at niceness 19, below Ray's workers."""
    script = """
import os, threading
from mask_rcnn_burn.ray import entry
stop = threading.Event()
before = threading.Thread(target=stop.wait)
before.start()
print(os.getpriority(os.PRIO_PROCESS, 0))
entry._yield_to_workers()
after = threading.Thread(target=stop.wait)
after.start()
print(sorted({os.getpriority(os.PRIO_PROCESS, int(t)) for t in os.listdir("/proc/self/task")}), len(os.listdir("/proc/self/task")) >= 3)
stop.set()
"""
    start, *out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    assert int(start) < 19, "the test needs a process below niceness 19 to see the change"
    assert out == ["[19]", "True"]


def test_predictor_caps_the_network_batch_and_keeps_each_rows_outcome(weights, config_320):
    """A whole block in one call (the entry's batch_size=None): ``max_batch`` images per network call (and with
    two streams, two images at once, one per stream), the same detections as one call over them all, a corrupt
    image its own row's error."""
    names = ["coffee_600x400.png", "hopper_640x480.png", "coffee_600x400_q85.jpg"]
    batch = {"path": [f"/data/{i + 1:06d}.png" for i in range(4)],
             "bytes": [(IMAGES / n).read_bytes() for n in names[:2]] + [b"\x89PNG\r\n\x1a\n not really", (IMAGES / names[2]).read_bytes()]}
    kwargs = dict(model=str(config_320), weights=str(weights), device="cpu", threads=1)
    whole = plain(mrb_ray.Predictor(**kwargs)(batch))
    capped = plain(mrb_ray.Predictor(**kwargs, max_batch=1)(batch))
    assert capped == whole
    assert plain(mrb_ray.Predictor(**kwargs, max_batch=1, streams=2)(batch)) == whole
    assert whole["image_id"] == [1, 2, 3, 4]
    assert [e is None for e in whole["error"]] == [True, True, False, True]
    assert whole["error"][2].startswith("/data/000003.png: ")
    assert all(len(json.loads(d)) > 0 for i, d in enumerate(whole["detections"]) if i != 2)
    with pytest.raises(ValueError, match="max_batch"):
        mrb_ray.Predictor(**kwargs, max_batch=0)


def test_a_path_without_a_numeric_stem_gets_a_stable_id(weights, config_320):
    """Your own pipeline over files named anyhow (no ``image_ids``): each row its detections under an id hashed
    from its path, the same from any actor; ids that cannot be COCO ids are refused when the Predictor is built."""
    data = (IMAGES / "coffee_600x400.png").read_bytes()
    batch = {"path": ["/data/cat.png", "/data/dog.png", "/data/42.png"], "bytes": [data] * 3}
    kwargs = dict(model=str(config_320), weights=str(weights), device="cpu", threads=1)
    out = plain(mrb_ray.Predictor(**kwargs)(batch))
    assert out["error"] == [None, None, None]
    assert out["image_id"][2] == 42
    assert out["image_id"][:2] == [mrb_ray.path_id("/data/cat.png"), mrb_ray.path_id("/data/dog.png")]
    assert len(set(out["image_id"])) == 3 and all(0 <= i < 2**53 for i in out["image_id"])
    for image_id, dets in zip(out["image_id"], out["detections"]):
        assert {e["image_id"] for e in json.loads(dets)} == {image_id}
    assert plain(mrb_ray.Predictor(**kwargs)(batch)) == out
    with pytest.raises(ValueError, match="image_ids"):
        mrb_ray.Predictor(**kwargs, image_ids={"a.png": -1})
    with pytest.raises(ValueError, match="category ids"):
        mrb_ray.Predictor(**kwargs, category_ids=[-1] * 80)


class Spy:
    """Wraps a Predictor's detector: records each network call's batch size and the most calls running at once."""

    def __init__(self, detector, hold: float = 0.0):
        import threading

        self.detector, self.hold, self.sizes, self.running, self.most = detector, hold, [], 0, 0
        self.lock = threading.Lock()

    def predict_batch(self, images):
        with self.lock:
            self.sizes.append(len(images))
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            time.sleep(self.hold)
            return self.detector.predict_batch(images)
        finally:
            with self.lock:
                self.running -= 1

    def __getattr__(self, name):
        return getattr(self.detector, name)


def test_max_batch_caps_each_network_call_and_streams_cap_the_calls_at_once(weights, config_320):
    from concurrent.futures import ThreadPoolExecutor

    data = (IMAGES / "coffee_600x400.png").read_bytes()
    block = {"path": [f"/data/{i + 1:06d}.png" for i in range(5)], "bytes": [data] * 5}
    kwargs = dict(model=str(config_320), weights=str(weights), device="cpu", threads=2)
    capped = mrb_ray.Predictor(**kwargs, max_batch=2)
    capped.detector = Spy(capped.detector)
    capped(block)
    assert capped.detector.sizes == [2, 2, 1]
    # Two streams: each call decodes 2 x max_batch images and hands them over at once, and at most two calls run.
    shared = mrb_ray.Predictor(**kwargs, max_batch=1, streams=2)
    shared.detector = Spy(shared.detector, hold=0.3)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(shared, [block] * 4))
    assert shared.detector.most == 2 and max(shared.detector.sizes) == 2


def test_bad_batches_and_arguments_are_typed_errors(weights, config_320):
    """A batch without paths or with uneven columns is the pipeline's mistake (ValueError naming the column); a
    value that is not image bytes is that row's error; arguments that would fail every call fail the build."""
    kwargs = dict(model=str(config_320), weights=str(weights), device="cpu", threads=1)
    pred = mrb_ray.Predictor(**kwargs)
    with pytest.raises(ValueError, match="no 'path' column.*include_paths=True"):
        pred({"bytes": [b"x"]})
    with pytest.raises(ValueError, match="'bytes' column has 1 rows, its 'path' column 2"):
        pred({"path": ["a.png", "b.png"], "bytes": [b"x"]})
    out = pred({"path": ["/d/1.png", "/d/2.png"], "bytes": [None, "not bytes"]})
    assert out["error"] == ["/d/1.png: its bytes are a NoneType, not the encoded image", "/d/2.png: its bytes are a str, not the encoded image"]
    with pytest.raises(TypeError):
        mrb_ray.Predictor(**kwargs, max_batch=2.5)
    with pytest.raises(ValueError, match="category ids for the model's"):
        mrb_ray.Predictor(**kwargs, category_ids=[1, 2])
    with pytest.raises(ValueError, match="image_ids\\['a.png'\\]"):
        mrb_ray.Predictor(**kwargs, image_ids={"a.png": 1.5})


def test_numeric_stems_follow_the_binarys_rule():
    """A stem is an id when it is an ASCII number below 2**64 (as the binary's u64 parse); else positions (the
    entry) or the path's hash (a Predictor without ids)."""
    assert mrb_ray.image_ids(["/a/12.png", "/a/000013.jpg"]) == {"/a/12.png": 12, "/a/000013.jpg": 13}
    for odd in ("/a/18446744073709551616.png", "/a/\u0661\u0662.png"):
        assert mrb_ray.image_ids(["/a/12.png", odd]) == {"/a/12.png": 0, odd: 1}
    assert mrb_ray.image_ids(["/a/18446744073709551615.png"]) == {"/a/18446744073709551615.png": 2**64 - 1}


def test_concurrent_calls_share_the_streams_and_keep_their_results(weights, config_320):
    """Three calls at once on one two-stream Predictor (the entry runs as many calls at once as streams): each gets
    the detections a call alone gets (that they run side by side is held by the Rust streams' own test)."""
    from concurrent.futures import ThreadPoolExecutor

    names = ["coffee_600x400.png", "hopper_640x480.png", "coffee_600x400_q85.jpg"]
    batches = [{"path": [f"/data/{i + 1:06d}.png"], "bytes": [(IMAGES / n).read_bytes()]} for i, n in enumerate(names)]
    kwargs = dict(model=str(config_320), weights=str(weights), device="cpu", threads=2, max_batch=1)
    alone = [plain(mrb_ray.Predictor(**kwargs)(b)) for b in batches]
    shared = mrb_ray.Predictor(**kwargs, streams=2)
    with ThreadPoolExecutor(3) as pool:
        assert [plain(o) for o in pool.map(shared, batches)] == alone


def test_the_entrys_reads_run_inside_its_actors(weights, config_320):
    """The entry's read and predict fuse into one operator (ReadBinary->MapBatches): no read task in a process of
    its own beside the actors (the fused read asks the actors' resources); each row the id the driver gave its
    path, past 2**63 too."""
    import argparse

    args = argparse.Namespace(model=str(config_320), weights=str(weights), device="cpu", precision="f32", score_thr=None, batch=1,
                              actors=1, cpus_per_actor=0.5, gpus_per_actor=0, threads=1, streams=2)
    present = [(str(IMAGES / "coffee_600x400.png"), 7), (str(IMAGES / "hopper_640x480.png"), 2**64 - 1)]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        ds = entry._pipeline(args, present, None)
        # Two streams: two calls at once in each actor.
        assert "max_concurrent_calls_per_actor=2" in repr(ds._logical_plan.dag.compute), ds._logical_plan.dag.compute
        out = ds.materialize()
        rows = {r["path"]: r for r in out.take_all()}
        assert {p: int(r["image_id"]) for p, r in rows.items()} == dict(present), "the paths as asked, with their ids"
        assert json.loads(rows[present[1][0]]["detections"])[0]["image_id"] == 2**64 - 1
        assert "ReadBinary->MapBatches(Predictor)" in out.stats(), out.stats()
    finally:
        ray.shutdown()


def test_a_predictor_given_paths_alone_reads_the_files(weights, config_320):
    """No bytes column: the Predictor reads each file (the binary's size limit), a missing one its row's error."""
    kwargs = dict(model=str(config_320), weights=str(weights), device="cpu", threads=1)
    coffee = IMAGES / "coffee_600x400.png"
    out = plain(mrb_ray.Predictor(**kwargs)({"path": [str(coffee), "/nonexistent/000002.png"], "image_id": [5, 6]}))
    with_bytes = plain(mrb_ray.Predictor(**kwargs)({"path": [str(coffee)], "bytes": [coffee.read_bytes()], "image_id": [5]}))
    assert out["image_id"] == [5, 6] and out["detections"][0] == with_bytes["detections"][0]
    assert out["error"][0] is None and out["error"][1].startswith("/nonexistent/000002.png: ") and out["detections"][1] is None


def test_blocks_are_small_but_hold_a_network_batch():
    assert entry._blocks(6, actors=1, batch=1) == 6  # one image a block
    assert entry._blocks(36, actors=2, batch=1) == 16  # 8 per actor
    assert entry._blocks(1000, actors=2, batch=1) == 63  # ~16 images a block
    assert entry._blocks(36, actors=2, batch=4) == 9  # 4 images a block, not 2.25
    assert entry._blocks(3, actors=1, batch=4) == 1


def test_cpu_actors_run_one_image_per_thread_unless_told():
    import argparse

    def streams(**kw):
        args = dict(threads=None, cpus_per_actor=1.0, gpus_per_actor=0.0, device="auto") | kw
        return entry._default_streams(argparse.Namespace(**args))

    assert streams() == 1
    assert streams(cpus_per_actor=4.0) == 4
    assert streams(cpus_per_actor=4.0, threads=2) == 2
    assert streams(cpus_per_actor=0.5) == 1
    assert streams(cpus_per_actor=200.0) == 64
    assert streams(cpus_per_actor=4.0, gpus_per_actor=1.0) == 1
    assert streams(cpus_per_actor=4.0, device="wgpu") == 1
    assert streams(cpus_per_actor=2.0, device="flex") == 2


def test_bad_annotations_and_arguments_stop_before_anything_is_written(weights, config_320, tmp_path, capsys):
    """Each a one-line error before the results file is opened or Ray started: an earlier run's results stay."""
    out = tmp_path / "ray.json"
    out.write_text("[earlier]")
    common = ["--images", str(IMAGES), "--model", str(config_320), "--weights", str(weights), "--device", "cpu", "--json", str(out)]
    good = json.loads(COCO.read_text())
    cases = {
        "not json": ("{", "not a COCO instances file"),
        "no images": ({"categories": []}, "no 'images' list"),
        "string id": ({**good, "images": [{"id": "x", "file_name": "a.png"}]}, "images\\[0\\] needs an integer id"),
        "float id": ({**good, "images": [{"id": 1.5, "file_name": "a.png"}]}, "images\\[0\\] needs an integer id"),
        "negative id": ({**good, "images": [{"id": -1, "file_name": "a.png"}]}, "images\\[0\\] needs an integer id"),
        "no file_name": ({**good, "images": [{"id": 1}]}, "and a file_name"),
        "id twice": ({**good, "images": [{"id": 1, "file_name": "a.png"}, {"id": 1, "file_name": "b.png"}]}, "image id 1 appears twice"),
        "empty name": ({**good, "images": [{"id": 1, "file_name": ""}]}, "leaves the images folder"),
        "escape": ({**good, "images": [{"id": 1, "file_name": "../a.png"}]}, "leaves the images folder"),
        "bad category": ({**good, "categories": [{"id": -1, "name": "person"}]}, "categories\\[0\\] needs an integer id"),
    }
    for name, (content, message) in cases.items():
        ann = tmp_path / f"{name}.json"
        ann.write_text(content if isinstance(content, str) else json.dumps(content))
        with pytest.raises(SystemExit, match=f"^error: annotations {re.escape(str(ann))}: .*{message}") as e:
            entry.main([*common, "--annotations", str(ann)])
        assert "\n" not in str(e.value), name
    for flags, message in ((["--actors", "0"], "--actors must be at least 1"), (["--threads", "-2"], "--threads must be at least 1"),
                           (["--cpus-per-actor", "inf"], "--cpus-per-actor must be a number above 0"),
                           (["--gpus-per-actor", "nan"], "--gpus-per-actor must be a number from 0"),
                           (["--device", "cuda"], "--device must be"), (["--precision", "f8"], "invalid choice")):
        with pytest.raises(SystemExit) as e:
            entry.main([*common, str(IMAGES / "coffee_600x400.png"), *flags])
        assert e.value.code == 2 and message in capsys.readouterr().err, flags
    with pytest.raises(SystemExit, match="^error: .*"):
        entry.main([*common, str(IMAGES / "coffee_600x400.png"), "--score-thr", "2"])
    assert out.read_text() == "[earlier]"
    assert not ray.is_initialized()


def test_resume_refuses_a_damaged_results_file_and_skips_junk_done_lines(tmp_path):
    """Only a file cut off mid-append (no closing bracket) is read up to the cut; one damaged elsewhere, or with
    entries that are not results, is refused rather than half kept; a `.done` line that is not an id is skipped."""
    path = str(tmp_path / "r.json")
    for text in ('[{"image_id":1,"score":0.5},{"image_id":2,"sco"x},{"image_id":3,"score":0.5}]', "[1,2]", '[{"score":1}]', "{}"):
        pathlib.Path(path).write_text(text)
        pathlib.Path(path + ".done").write_text("1\n2\n3\n")
        with pytest.raises(SystemExit, match="is not a results JSON this tool wrote"):
            ray_results.Results(path, resume=True)
        assert pathlib.Path(path).read_text() == text, "left as it was"
    pathlib.Path(path).write_text('[{"image_id":1,"score":0.5},{"image_id":2,"sco')
    pathlib.Path(path + ".done").write_text("1\nabc\n1.5\n")
    assert ray_results.Results(path, resume=True).done == {1}
    assert json.loads(pathlib.Path(path).read_text()) == [{"image_id": 1, "score": 0.5}]


def test_paths_ray_data_would_misread_are_rows_with_errors_and_an_input_twice_is_refused(tmp_path):
    """Ray Data reads paths as URLs (a name cut at ';', '?' or '#') and as UTF-8 text; the driver skips such files
    with the reason instead of failing the job or reading another file; the same file given twice is refused."""
    for name in ("a?.png", "b#1.png", "c;.png"):
        (tmp_path / name).write_bytes(b"x")
        assert "rename it" in entry._readable(str(tmp_path / name))
    odd = os.fsdecode(b"\xff.png")
    (tmp_path / odd).write_bytes(b"x")
    assert "not UTF-8" in entry._readable(str(tmp_path / odd))
    assert entry._readable(str(IMAGES / "coffee_600x400.png")) is None
    assert "No such file" in entry._readable(str(tmp_path / "gone.png"))
    image = str(IMAGES / "coffee_600x400.png")
    with pytest.raises(SystemExit, match="given twice"):
        entry.main([image, image, "--json", str(tmp_path / "r.json")])
