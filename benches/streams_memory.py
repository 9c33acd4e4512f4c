"""Peak memory of a CPU actor as the Ray entry runs it by default: N threads, N streams, N calls at once.

    python benches/streams_memory.py --weights W.safetensors [--streams 1 2 4 8] [--batch 1]

For each N, a fresh process builds one `mask_rcnn_burn.ray.Predictor(threads=N, streams=N, max_batch=batch)` (what
`python -m mask_rcnn_burn.ray` builds in a CPU actor with N CPUs) and makes N calls to it at once from N threads (what
Ray Data does with `max_concurrent_calls_per_actor=N`), each call one block of N x batch copies of
tests/fixtures/images/coffee_600x400.png (a 1200x800 network input): one decode step per call, the most images a call
holds decoded at a time, so a longer block peaks no higher. Printed: the process's resident memory after loading the
detector, its peak (the kernel's VmHWM) over the calls, and the peak's growth per stream. Ray's own share of an
actor process (its core worker, ray.data imported: ~0.2 GB) is not in it. On a machine with fewer cores than N the
threads share them: slower, the same memory.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]


def status_kib(field: str) -> int:
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def child(weights: str, n: int, batch: int) -> None:
    from mask_rcnn_burn.ray import Predictor

    pred = Predictor("r50-2x", weights=weights, device="cpu", threads=n, streams=n, max_batch=batch)
    data = (ROOT / "tests/fixtures/images/coffee_600x400.png").read_bytes()
    loaded = status_kib("VmRSS")
    blocks = [{"bytes": [data] * (n * batch), "path": [f"{c}-{i}.png" for i in range(n * batch)]} for c in range(n)]
    outs: list = [None] * n

    def call(c: int) -> None:
        outs[c] = pred(blocks[c])

    start = time.perf_counter()
    threads = [threading.Thread(target=call, args=(c,)) for c in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    errors = [e for out in outs for e in out["error"] if e]
    if errors or any(d is None for out in outs for d in out["detections"]):
        raise SystemExit(f"a call failed: {errors[:1]}")
    print(json.dumps({"loaded_kib": loaded, "peak_kib": status_kib("VmHWM"), "images": n * n * batch, "seconds": elapsed}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", required=True)
    ap.add_argument("--streams", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.weights, args.child, args.batch)
        return
    base = None
    for n in args.streams:
        out = subprocess.run([sys.executable, __file__, "--weights", args.weights, "--batch", str(args.batch), "--child", str(n)],
                             check=True, capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        loaded, peak = r["loaded_kib"] / 2**20, r["peak_kib"] / 2**20
        if base is None:
            base = (n, peak)
        growth = "the base" if n == base[0] else f"{(peak - base[1]) / (n - base[0]):.2f} GiB per stream beyond {base[0]}"
        print(f"{n} threads, {n} streams, {n} calls of {n * args.batch} images: loaded {loaded:.2f} GiB, peak {peak:.2f} GiB, "
              f"{growth}; {r['images']} images in {r['seconds']:.1f} s", flush=True)


if __name__ == "__main__":
    main()
