#!/usr/bin/env bash
# A/B of cold single-image CLI runs: alternates the given `infer` builds (copies of
# target/release/examples/infer made at each commit), N rounds, SETTLE seconds of idle before each run, and prints
# each build's median wall time and median stage times (from --timings).
#   benches/ab_cold.sh N BUILD_A BUILD_B [...]
# Environment: W (weights, default the tests' synthetic R-50 file), IMG, MODEL (r50-2x), SETTLE (8).
set -euo pipefail
export LC_ALL=C
# Pinned as benches/side_by_side.py pins every contender: 2 threads.
export RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-2}
if [ $# -lt 2 ]; then
  echo "usage: $0 N BUILD_A [BUILD_B ...]" >&2
  exit 2
fi
n=$1
shift
W=${W:-${TMPDIR:-/tmp}/mask-rcnn-burn-synth-v1-r50_seed1.safetensors}
IMG=${IMG:-$(dirname "$0")/../tests/fixtures/images/coffee_600x400.png}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for _ in $(seq "$n"); do
  for build in "$@"; do
    sleep "${SETTLE:-8}"
    start=$EPOCHREALTIME
    line=$("$build" "$IMG" --weights "$W" --device flex --model "${MODEL:-r50-2x}" --timings 2>&1 | grep '^time') ||
      { echo "$build failed on $IMG (weights $W)" >&2; exit 1; }
    end=$EPOCHREALTIME
    echo "$build $(awk "BEGIN { print $end - $start }") $line" >> "$log"
  done
done
python3 - "$log" "$@" <<'PY'
import re, statistics, sys
rows = [l.split(None, 2) for l in open(sys.argv[1])]
for build in sys.argv[2:]:
    runs = [r for r in rows if r[0] == build]
    stages = {}
    for r in runs:
        for name, ms in re.findall(r"([a-z+ ]+?) (\d+) ms", r[2]):
            stages.setdefault(name.strip(), []).append(int(ms))
    wall = statistics.median(float(r[1]) for r in runs)
    print(f"{build}: {len(runs)} runs, wall {wall:.3f} s | " + ", ".join(f"{k} {statistics.median(v):.0f}" for k, v in stages.items()))
PY
