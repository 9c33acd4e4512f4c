"""Does the Ray entry's driver at niceness 19 make the actor's images faster? Paired A/B in one local cluster.

    python benches/ray_driver_niceness.py --weights W.safetensors [--pairs 4] [--images 14]

Each pair runs a Ray Data pipeline like the entry's when this was measured (read_binary_files -> map_batches with
`Predictor`, 1 actor x 2 threads) twice, once with every thread of this driver at niceness 0 and once at 19 (the
order alternating between pairs), and takes the median of the actor's own per-image call times, the first two
(warm-up) left out: what each image costs inside the actor while Ray Data's scheduling loop runs in the driver.
Going back from 19 to 0 needs root (CAP_SYS_NICE).
"""

from __future__ import annotations

import argparse
import logging
import pathlib
import shutil
import statistics
import tempfile
import time

import ray

from mask_rcnn_burn.ray import Predictor
from mask_rcnn_burn.ray.entry import _yield_to_workers

ROOT = pathlib.Path(__file__).resolve().parents[1]


class TimedPredictor(Predictor):
    """The entry's callable class, each row also carrying the seconds its call took."""

    def __call__(self, batch):
        start = time.perf_counter()
        out = super().__call__(batch)
        out["secs"] = [time.perf_counter() - start] * len(out["path"])
        return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", required=True)
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--images", type=int, default=14)
    args = ap.parse_args()
    scratch = pathlib.Path(tempfile.mkdtemp(prefix="mrb-nice-bench-"))
    paths = []
    for i in range(args.images):
        paths.append(str(scratch / f"{i + 1:06d}.png"))
        shutil.copy(ROOT / "tests/fixtures/images/coffee_600x400.png", paths[-1])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    calls: dict[int, list[float]] = {0: [], 19: []}
    for pair in range(args.pairs):
        for niceness in (0, 19) if pair % 2 == 0 else (19, 0):
            _yield_to_workers(niceness)  # what the entry does, at 19
            ds = ray.data.read_binary_files(paths, include_paths=True, override_num_blocks=4)
            out = ds.map_batches(TimedPredictor, fn_constructor_kwargs={"weights": args.weights, "device": "cpu", "threads": 2},
                                 compute=ray.data.ActorPoolStrategy(size=1), num_cpus=1, batch_size=1, batch_format="numpy")
            start = time.perf_counter()
            secs = [s for b in out.iter_batches(batch_size=None, batch_format="numpy") for s in b["secs"]]
            calls[niceness].append(statistics.median(secs[2:]))
            print(f"pair {pair + 1}: driver at niceness {niceness:2d}: median call {calls[niceness][-1]:.3f} s (job {time.perf_counter() - start:.1f} s)", flush=True)
            _yield_to_workers(0)
    a, b = (statistics.median(calls[n]) for n in (0, 19))
    won = sum(x > y for x, y in zip(calls[0], calls[19]))
    print(f"\nmedian call: niceness 0 {a:.4f} s, niceness 19 {b:.4f} s ({b / a:.3f}x); 19 faster in {won} of {args.pairs} pairs")
    ray.shutdown()
    shutil.rmtree(scratch)


if __name__ == "__main__":
    main()
