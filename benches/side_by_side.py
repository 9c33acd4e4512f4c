"""Side by side in one run, same image and weights, 2 threads each: mmdetection (PyTorch) end to end against this
crate's CLI (cold: a fresh process per image; and per image over a folder of copies in one process), and the
backbone+FPN stage against ONNX Runtime and OpenVINO running mmdetection's backbone+neck exported to ONNX
(opset 17). Rounds alternate the contenders so machine noise falls on all of them; medians and ratios at the end.
Needs the oracle environment (../shared/oracle/README.md) plus `pip install onnxruntime openvino onnx`.

    cargo build --release --example infer
    python benches/side_by_side.py WEIGHTS.safetensors tests/fixtures/images/coffee_600x400.png --rounds 5

WEIGHTS: e.g. the synthetic R-50 file the tests write ($TMPDIR/mask-rcnn-burn-synth-v1-r50_seed1.safetensors).
"""
import argparse
import copy
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time

import numpy as np
import torch

torch.set_num_threads(2)
import mmdet  # noqa: E402
from mmdet.apis import inference_detector  # noqa: E402
from mmdet.registry import MODELS  # noqa: E402
from mmdet.utils import register_all_modules  # noqa: E402
from mmengine.config import Config  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("weights")
p.add_argument("image")
p.add_argument("--rounds", type=int, default=5)
# The crate's config alias -> mmdetection's config (under its .mim/configs).
MMDET_CONFIGS = {"r50-2x": "gn/mask-rcnn_r50_fpn_gn-all_2x_coco.py", "r101-2x": "gn/mask-rcnn_r101_fpn_gn-all_2x_coco.py",
                 "r50-ws-2x": "gn+ws/mask-rcnn_r50_fpn_gn-ws-all_2x_coco.py",
                 "x101-ws-2x": "gn+ws/mask-rcnn_x101-32x4d_fpn_gn-ws-all_2x_coco.py"}
p.add_argument("--model", default="r50-2x", choices=sorted(MMDET_CONFIGS), help="the crate's config; the weights must fit it")
p.add_argument("--settle", type=float, default=1.0, help="seconds of quiet before each contender (PyTorch's and ONNX Runtime's idle threads spin for a while after a call)")
p.add_argument("--warm-images", type=int, default=4, help="copies of the image in the folder run (its first image is cold too)")
p.add_argument("--infer", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release", "examples", "infer"))
args = p.parse_args()
if args.warm_images < 2:
    p.error("--warm-images must be at least 2 (the first image of the folder run is cold)")

register_all_modules(init_default_scope=True)
cfg = Config.fromfile(os.path.join(os.path.dirname(mmdet.__file__), ".mim", "configs", MMDET_CONFIGS[args.model]))
cfg.model.backbone.init_cfg = None
model = MODELS.build(copy.deepcopy(cfg.model))
model.cfg = cfg
model.load_state_dict(load_file(args.weights), strict=True)
model.eval()

# mmdetection's network input for this image (the same 800x1216 padded tensor the crate builds).
first = time.perf_counter()
with torch.no_grad():
    inference_detector(model, args.image)
mmdet_first_s = time.perf_counter() - first


class BackboneNeck(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.backbone, self.neck = m.backbone, m.neck

    def forward(self, x):
        return tuple(self.neck(self.backbone(x)))


scratch = tempfile.mkdtemp(prefix="side-by-side-")
onnx_path = os.path.join(scratch, "backbone_fpn.onnx")
x = torch.randn(1, 3, 800, 1216)
with torch.no_grad():
    torch.onnx.export(BackboneNeck(model).eval(), (x,), onnx_path, opset_version=17, input_names=["x"])

import onnxruntime as ort  # noqa: E402
import openvino as ov  # noqa: E402

so = ort.SessionOptions()
so.intra_op_num_threads, so.inter_op_num_threads = 2, 1
ort_sess = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
# f32: OpenVINO's CPU default on AVX-512-BF16/AMX machines is bf16 (1e-1 off PyTorch here), not the same model.
ov_model = ov.Core().compile_model(onnx_path, "CPU", {"INFERENCE_NUM_THREADS": 2, "INFERENCE_PRECISION_HINT": "f32"})
feed = x.numpy()
with torch.no_grad():
    ref = BackboneNeck(model)(x)
for name, outs in [("onnxruntime", ort_sess.run(None, {"x": feed})), ("openvino", list(ov_model(feed).values()))]:
    err = max(float(np.abs(o - r.numpy()).max() / (np.abs(r.numpy()).max() + 1e-12)) for o, r in zip(outs, ref))
    print(f"{name} backbone+FPN vs PyTorch: max relative difference {err:.2e}")

warm_dir = os.path.join(scratch, "warm")
os.makedirs(warm_dir)
for i in range(args.warm_images):
    shutil.copy(args.image, os.path.join(warm_dir, f"{i}{os.path.splitext(args.image)[1]}"))
# Ours pinned to 2 threads as the others are (rayon's pool; Burn's flex and our kernels run on it).
ours_env = {**os.environ, "RAYON_NUM_THREADS": "2"}
ours_args = ["--weights", args.weights, "--device", "flex", "--model", args.model]

times = {k: [] for k in ["mmdet e2e", "ours e2e cold CLI (wall)", "ours e2e cold (predict)", "ours e2e folder (per image)",
                          "ours backbone+FPN (cold)", "ours backbone+FPN (warm)", "torch backbone+FPN", "onnxruntime backbone+FPN", "openvino backbone+FPN"]}


def timed(f):
    time.sleep(args.settle)
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


for r in range(args.rounds):
    with torch.no_grad():
        times["mmdet e2e"].append(timed(lambda: inference_detector(model, args.image)))
        times["torch backbone+FPN"].append(timed(lambda: BackboneNeck(model)(x)))
    time.sleep(args.settle)
    t = time.perf_counter()
    out = subprocess.run([args.infer, args.image, *ours_args, "--timings"], env=ours_env, capture_output=True, text=True, check=True).stdout
    times["ours e2e cold CLI (wall)"].append(time.perf_counter() - t)
    times["ours e2e cold (predict)"].append(float(re.search(r"total (\d+) ms", out).group(1)) / 1e3)
    times["ours backbone+FPN (cold)"].append(float(re.search(r"backbone\+fpn (\d+) ms", out).group(1)) / 1e3)
    times["onnxruntime backbone+FPN"].append(timed(lambda: ort_sess.run(None, {"x": feed})))
    times["openvino backbone+FPN"].append(timed(lambda: ov_model(feed)))
    time.sleep(args.settle)
    out = subprocess.run([args.infer, warm_dir, *ours_args, "--timings"], env=ours_env, capture_output=True, text=True, check=True).stdout
    n, secs = re.search(r"(\d+) images in ([\d.]+) s", out).groups()
    times["ours e2e folder (per image)"].append(float(secs) / int(n))
    # The folder's images after its first: the stage warm in one process, as ORT's and OpenVINO's sessions are.
    warm = [float(ms) / 1e3 for ms in re.findall(r"backbone\+fpn (\d+) ms", out)[1:]]
    times["ours backbone+FPN (warm)"].append(statistics.median(warm))
    print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()), flush=True)

med = {k: statistics.median(v) for k, v in times.items()}
print(f"\nmedians of {args.rounds} rounds (2 threads each; mmdetection's first call: {mmdet_first_s:.2f} s)")
for k, v in med.items():
    print(f"  {k:<28} {v:6.2f} s")
print("ratios (ours / theirs)")
print(f"  e2e cold CLI wall / mmdet e2e   {med['ours e2e cold CLI (wall)'] / med['mmdet e2e']:.2f}")
print(f"  e2e folder / mmdet e2e          {med['ours e2e folder (per image)'] / med['mmdet e2e']:.2f}")
fastest = min(med["onnxruntime backbone+FPN"], med["openvino backbone+FPN"])
print(f"  backbone+FPN cold / fastest of ORT and OpenVINO   {med['ours backbone+FPN (cold)'] / fastest:.2f}")
print(f"  backbone+FPN warm / fastest of ORT and OpenVINO   {med['ours backbone+FPN (warm)'] / fastest:.2f}")
print(f"  backbone+FPN / PyTorch          {med['ours backbone+FPN (cold)'] / med['torch backbone+FPN']:.2f}")
shutil.rmtree(scratch)
