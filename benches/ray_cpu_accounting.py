"""Where the CPU goes in a steady Ray job against the binary's folder run (Linux): each contender runs over a folder of
copies, and over a window in its steady state (after `--settle` seconds) the kernel's own accounting
(`/proc/PID/task/TID/schedstat`: nanoseconds run and waited runnable, exact, not sampled ticks) is read for every
thread on the machine.

    python benches/ray_cpu_accounting.py --weights W.safetensors [--copies 36] [--settle 12] [--window 8]

Printed per contender: the CPU-seconds every process ran in the window (the busiest first), how long the CPUs
idled, and for the compute threads (the binary's rayon threads; the actor's), the time they ran and the time they
waited runnable while something else had their CPU. The binary stands alone; a Ray job carries its driver, Ray Data's
helper actors, GCS, raylet and agents beside the actor: what they take is Ray's share of the machine.
"""

from __future__ import annotations

import argparse
import collections
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]


def snapshot() -> dict[tuple[int, int], tuple[str, str, int, int]]:
    """(pid, tid) -> (process name, thread name, ns run, ns waited runnable) for every thread on the machine."""
    out = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            process = pathlib.Path(f"/proc/{pid}/comm").read_text().strip()
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:  # gone
            continue
        for tid in tids:
            try:
                run, wait, _ = pathlib.Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()
                thread = pathlib.Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
            except (OSError, ValueError):
                continue
            out[(int(pid), int(tid))] = (process, thread, int(run), int(wait))
    return out


def account(name: str, cmd: list[str], env: dict, settle: float, window: float) -> None:
    job = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    time.sleep(settle)
    if job.poll() is not None:
        sys.exit(f"{name} ended before the window: use more --copies or a shorter --settle")
    before, start = snapshot(), time.perf_counter()
    time.sleep(window)
    after, elapsed = snapshot(), time.perf_counter() - start
    ended = job.poll() is not None
    out = job.communicate()[0]
    if ended:
        sys.exit(f"{name} ended inside the window: use more --copies")
    per_process: collections.Counter = collections.Counter()
    threads = []
    for key, (process, thread, run, wait) in after.items():
        if key in before:
            run, wait = run - before[key][2], wait - before[key][3]
            per_process[(key[0], process)] += run
            threads.append((run, wait, process, thread))
    total, capacity = sum(per_process.values()) / 1e9, elapsed * os.cpu_count()
    print(f"\n{name}: {out.strip().splitlines()[0] if out.strip() else ''}")
    idle = capacity - total
    print(f"  window {elapsed:.2f} s x {os.cpu_count()} CPUs = {capacity:.2f} CPU-s: threads ran {total:.3f}, "
          f"the CPUs idled {idle:.3f} ({100 * idle / capacity:.1f}%)")
    for (pid, process), run in per_process.most_common(10):
        print(f"  {process:24s} pid {pid:<7d} {run / 1e6:8.1f} ms ({100 * run / 1e9 / capacity:4.1f}%)")
    # The compute threads: the two busiest of the processes named like the busiest (two 1-thread actors: one each).
    (_, process), _ = per_process.most_common(1)[0]
    compute = sorted((t for t in threads if t[2] == process), reverse=True)[:2]
    for run, wait, _, thread in compute:
        print(f"  compute thread {thread:18s} ran {run / 1e6:7.1f} ms, waited runnable {wait / 1e6:6.1f} ms of {elapsed * 1e3:.0f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", required=True)
    ap.add_argument("--copies", type=int, default=36)
    ap.add_argument("--settle", type=float, default=12, help="seconds into each job before the window opens")
    ap.add_argument("--window", type=float, default=8)
    ap.add_argument("--infer", default=str(pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release/examples/infer"))
    args = ap.parse_args()
    scratch = pathlib.Path(tempfile.mkdtemp(prefix="mrb-ray-accounting-"))
    folder = scratch / "images"
    folder.mkdir()
    for i in range(args.copies):
        shutil.copy(ROOT / "tests/fixtures/images/coffee_600x400.png", folder / f"{i + 1:06d}.png")
    common = ["--model", "r50-2x", "--weights", args.weights, "--device", "cpu", "--json", str(scratch / "out.json"), str(folder)]
    ray = [sys.executable, "-m", "mask_rcnn_burn.ray"]
    contenders = {
        "binary (2 threads)": [args.infer, *common],
        "ray 1 actor x 2 threads": [*ray, "--actors", "1", "--cpus-per-actor", "1", "--threads", "2", "--streams", "1", *common],
        "ray 2 actors x 1 thread": [*ray, "--actors", "2", "--cpus-per-actor", "0.5", "--threads", "1", *common],
    }
    env = {**os.environ, "RAYON_NUM_THREADS": "2"}
    for name, cmd in contenders.items():
        time.sleep(2)
        account(name, cmd, env, args.settle, args.window)
    shutil.rmtree(scratch)


if __name__ == "__main__":
    main()
