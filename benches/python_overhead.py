"""What the Python package costs over the Rust binary: the same images, weights and threads, in one run.

    python benches/python_overhead.py --weights W.safetensors [--copies 6] [--rounds 3]

Both sides decode and predict every image of a folder of copies of tests/fixtures/images/coffee_600x400_q85.jpg:
the `infer` example binary over the folder (its summary line's images/s, the model already loaded), and
`Detector.predict(path)` in a loop in this process (after one warm-up image). Rounds alternate the two; the medians
and their ratio are printed. Both use every core (the Rust thread pool of each is the machine's size).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import shutil
import statistics
import subprocess
import tempfile
import time

import mask_rcnn_burn as mrb

ROOT = pathlib.Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", required=True)
    ap.add_argument("--copies", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--infer", default=str(pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release/examples/infer"))
    args = ap.parse_args()
    src = ROOT / "tests/fixtures/images/coffee_600x400_q85.jpg"
    folder = pathlib.Path(tempfile.mkdtemp(prefix="mrb-overhead-"))
    paths = []
    for i in range(args.copies):
        p = folder / f"{i:06d}.jpg"
        shutil.copy(src, p)
        paths.append(p)
    det = mrb.Detector("r50-2x", weights=args.weights, device="cpu")
    det.predict(paths[0])
    binary, python = [], []
    for r in range(args.rounds):
        out = subprocess.run([args.infer, str(folder), "--model", "r50-2x", "--weights", args.weights, "--device", "cpu"],
                             check=True, capture_output=True, text=True).stdout
        rate = float(re.search(r"images in [\d.]+ s \(([\d.]+) images/s\)", out).group(1))
        binary.append(1 / rate)
        start = time.perf_counter()
        for p in paths:
            det.predict(p)
        python.append((time.perf_counter() - start) / len(paths))
        print(f"round {r + 1}: binary {binary[-1]:.3f} s/image, python {python[-1]:.3f} s/image")
    b, p = statistics.median(binary), statistics.median(python)
    print(f"median over {args.rounds} rounds of {args.copies} images: binary {b:.3f} s/image, python {p:.3f} s/image, python / binary {p / b:.3f}")
    shutil.rmtree(folder)


if __name__ == "__main__":
    main()
