#!/usr/bin/env bash
# The Python binding must build its dependencies with exactly the features `cargo test --release` builds them with:
# any crate whose features differ is compiled twice, and its dependents with it (a different feature on a crate Burn
# uses rebuilds Burn, ~25 minutes on 2 cores). Prints the crates whose features differ and fails if there is one.
set -euo pipefail
cd "$(dirname "$0")/.."
tree() { cargo tree --locked --prefix none -f '{p} [{f}]' "$@" | sed 's/ (\*)$//' | sort -u; }
# The test build: the root package with its dev-dependencies. The wheel: the binding crate, no dev-dependencies.
tree -p mask-rcnn-burn -e normal,build,dev > /tmp/features-tests.txt
tree -p mask-rcnn-burn-python -e normal,build > /tmp/features-python.txt
# A crate in both builds with other features.
python3 - <<'PY'
import re, sys
def load(path):
    out = {}
    for line in open(path):
        m = re.match(r"(\S+) (v\S+)(?: \([^)]*\))? \[(.*)\]$", line.strip())
        if m:
            out.setdefault((m.group(1), m.group(2)), set()).update(f for f in m.group(3).split(",") if f)
    return out
tests, python = load("/tmp/features-tests.txt"), load("/tmp/features-python.txt")
shared = sorted(set(tests) & set(python))
bad = [(k, tests[k], python[k]) for k in shared if tests[k] != python[k]]
for (name, version), a, b in bad:
    print(f"{name} {version}: tests [{','.join(sorted(a))}] vs python [{','.join(sorted(b))}]")
print(f"{len(shared)} crates in both builds, {len(bad)} with other features")
sys.exit(1 if bad else 0)
PY
