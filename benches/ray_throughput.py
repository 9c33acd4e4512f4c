"""Ray Data against the binary on one machine: the same folder of images, the same weights, in rounds (every other
one in reverse order); the medians, and the ratios to the binary within each round with their median.

    python benches/ray_throughput.py --weights W.safetensors [--copies 36] [--rounds 2] [--extra]

Contenders, each as a user runs it by default, over a folder of copies of tests/fixtures/images/coffee_600x400.png
(a 1200x800 network input):
- the `infer` example binary's folder run (2 threads; one image at a time over both);
- `python -m mask_rcnn_burn.ray` on a local cluster with 1 actor x 2 threads (its default on a CPU actor: two
  streams, one image per thread) and with 2 actors x 1 thread;
- with `--extra`, also the binary with `--streams 2` and the 1 x 2 actor with `--streams 1`: the same way of running
  in both, so that Ray's own overhead shows apart from what streams give (the 1 x 2 actor's default is also
  taken against the binary with 2 streams).
Throughput is images over the job's seconds as each prints them: the binary's from the model loaded, Ray's from
the cluster up (actors' start and model load included); the wall time of each command, cluster start included, is
printed beside it. Ray's start-up (actor processes, model load: a few seconds) is a fixed cost, amortised over the
images; so each contender also runs on the first `--small` images of the folder in the same round, and the
steady rate, (copies - small) / (job seconds - small job's seconds), is each one's cost per image with every fixed
cost (start-up, model load, first-image warm-up, the last batch's drain) taken out of both. Ray's logical CPUs are
what the actors ask (1 or 0.5 each), so its read tasks are never starved.

With `--running-cluster`, both layouts also run with `--address auto` on a cluster `ray start --head --num-cpus 2`
started in each round for them alone (and stopped after): how a job meets a real cluster, where Ray Data's detached
helper actors (stats, autoscaling coordinator, actor locations) were started by an earlier job. The cluster's first
job, which starts them, is run on the small folder and printed on its own line.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]


def run(cmd: list[str], env: dict) -> tuple[int, float, float]:
    """(images, the job's seconds as the command prints them, wall seconds)."""
    start = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    wall = time.perf_counter() - start
    n, secs = re.search(r"(\d+) images in ([\d.]+) s", out).groups()
    return int(n), float(secs), wall


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", required=True)
    ap.add_argument("--copies", type=int, default=36)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--small", type=int, default=4, help="images of the small run that takes the fixed costs out")
    ap.add_argument("--extra", action="store_true", help="also the binary with 2 streams and the 1 x 2 actor with 1 (Ray's overhead apart from streams)")
    ap.add_argument("--running-cluster", action="store_true",
                    help="also run both layouts with --address on a cluster started by `ray start --head`, as on a real cluster")
    ap.add_argument("--infer", default=str(pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release/examples/infer"))
    args = ap.parse_args()
    if args.small < 2:
        ap.error("--small must be at least 2: the binary prints a one-image run as a table, without its 'N images in' line")
    scratch = pathlib.Path(tempfile.mkdtemp(prefix="mrb-ray-bench-"))
    folder, small = scratch / "images", scratch / "small"
    folder.mkdir()
    small.mkdir()
    for i in range(args.copies):
        shutil.copy(ROOT / "tests/fixtures/images/coffee_600x400.png", folder / f"{i + 1:06d}.png")
        if i < args.small:
            shutil.copy(ROOT / "tests/fixtures/images/coffee_600x400.png", small / f"{i + 1:06d}.png")
    common = ["--model", "r50-2x", "--weights", args.weights, "--device", "cpu"]
    env = {**os.environ, "RAYON_NUM_THREADS": "2"}
    ray = [sys.executable, "-m", "mask_rcnn_burn.ray", *common]
    one_actor = ["--actors", "1", "--cpus-per-actor", "1", "--threads", "2"]
    layouts = {
        "1 actor x 2 threads": one_actor,
        "2 actors x 1 thread": ["--actors", "2", "--cpus-per-actor", "0.5", "--threads", "1"],
    }
    contenders = {"binary (2 threads)": [args.infer, *common, "--json", str(scratch / "binary.json")]}
    if args.extra:
        contenders["binary, 2 streams"] = [args.infer, *common, "--streams", "2", "--json", str(scratch / "binary_streams.json")]
        layouts["1 actor x 2 threads, 1 stream"] = [*one_actor, "--streams", "1"]
    clusters = {"": [], ", running": ["--address", "auto"]} if args.running_cluster else {"": []}
    for suffix, address in clusters.items():
        for layout, flags in layouts.items():
            contenders[f"ray {layout}{suffix}"] = [*ray, "--json", str(scratch / f"ray{len(contenders)}.json"), *flags, *address]
    ray_cli = str(pathlib.Path(sys.executable).with_name("ray"))
    rates: dict[str, list[float]] = {k: [] for k in contenders}
    steady: dict[str, list[float]] = {k: [] for k in contenders}
    walls: dict[str, list[float]] = {k: [] for k in contenders}
    fixed: dict[str, list[float]] = {k: [] for k in contenders}
    for r in range(args.rounds):
        cluster_up = False
        # Every other round in reverse order, so a machine that drifts faster or slower over a round favours no one.
        order = list(contenders.items())
        for name, cmd in order if r % 2 == 0 else order[::-1]:
            if name.endswith(", running") and not cluster_up:
                # Started for these contenders only (the others run with no Ray process around); its first job
                # starts Ray Data's detached helper actors, which every later job on the cluster finds up.
                subprocess.run([ray_cli, "start", "--head", "--num-cpus", "2", "--include-dashboard", "false", "--disable-usage-stats"],
                               check=True, capture_output=True, env=env)
                cluster_up = True
                n, first, wall = run([*cmd, str(small)], env)
                print(f"round {r + 1}: the running cluster's first job: {n} images in {first:.1f} s (wall {wall:.1f} s)", flush=True)
            secs = {}
            for images in (folder, small):
                for f in scratch.glob("*.json*"):
                    f.unlink()
                time.sleep(2)
                n, secs[images], wall = run([*cmd, str(images)], env)
                if images == folder:
                    rates[name].append(n / secs[folder])
                    walls[name].append(wall)
            steady[name].append((args.copies - args.small) / (secs[folder] - secs[small]))
            # What the small run took beyond its images at the steady rate: start-up, warm-up, drain.
            fixed[name].append(secs[small] - args.small / steady[name][-1])
            print(f"round {r + 1}: {name}: {rates[name][-1]:.3f} images/s (job {secs[folder]:.1f} s, wall {walls[name][-1]:.1f} s); "
                  f"{args.small} images: {secs[small]:.1f} s; steady {steady[name][-1]:.3f} images/s", flush=True)
        if cluster_up:
            subprocess.run([ray_cli, "stop", "--force"], check=True, capture_output=True, env=env)
    print(f"\nmedians over {args.rounds} rounds of {args.copies} images (steady: the {args.copies - args.small} images beyond the small run's {args.small})")
    pairs = [(name, "binary (2 threads)") for name in contenders]
    if args.extra:
        # Ray's overhead apart from streams: the 1 x 2 actor's default (2 streams) against the binary with 2.
        pairs += [(name, "binary, 2 streams") for name in contenders if name.startswith("ray 1 actor x 2 threads") and "stream" not in name]
    for name, ref in pairs:
        rate, st = statistics.median(rates[name]), statistics.median(steady[name])
        ref_rate, ref_steady = statistics.median(rates[ref]), statistics.median(steady[ref])
        print(f"  {name:36s} job {rate:.3f} images/s (wall {statistics.median(walls[name]):.1f} s), {ref} / this {ref_rate / rate:.3f}; "
              f"steady {st:.3f} images/s, {ref} / this {ref_steady / st:.3f}; fixed cost {statistics.median(fixed[name]):.1f} s")
    # The same ratios taken within each round (the reference's run beside this one's), then their median.
    print("per round, reference / this (job; steady), and their medians")
    for name, ref in pairs:
        job = [b / x for b, x in zip(rates[ref], rates[name])]
        st = [b / x for b, x in zip(steady[ref], steady[name])]
        print(f"  {name:36s} against {ref}: job {' '.join(f'{v:.3f}' for v in job)} -> {statistics.median(job):.3f}; "
              f"steady {' '.join(f'{v:.3f}' for v in st)} -> {statistics.median(st):.3f}")
    shutil.rmtree(scratch)


if __name__ == "__main__":
    main()
