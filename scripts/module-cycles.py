#!/usr/bin/env python3
"""Import graph of src/'s top-level modules (from every `crate::<module>` path in the code, tests excluded) and
its cycles (strongly connected components of more than one module). Exit status 1 when there is a cycle.

    python3 scripts/module-cycles.py          # prints the edges, then 'no import cycle' or the cycles
"""
import pathlib
import re
import sys

src = pathlib.Path(__file__).resolve().parent.parent / "src"
edges = {}
for path in src.rglob("*.rs"):
    rel = path.relative_to(src)
    module = rel.parts[0].removesuffix(".rs")
    if module in ("lib", "main"):
        continue
    text = path.read_text()
    text = text.split("#[cfg(test)]")[0]  # unit tests may reach anywhere
    for target in re.findall(r"\bcrate::([a-z_]+)", text):
        if target != module:
            edges.setdefault(module, set()).add(target)

index, low, stack, on_stack, sccs, counter = {}, {}, [], set(), [], [0]

def visit(v):
    index[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on_stack.add(v)
    for w in sorted(edges.get(v, ())):
        if w not in index:
            visit(w)
            low[v] = min(low[v], low[w])
        elif w in on_stack:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        scc = []
        while True:
            w = stack.pop()
            on_stack.discard(w)
            scc.append(w)
            if w == v:
                break
        sccs.append(scc)

for v in sorted(set(edges) | {w for ws in edges.values() for w in ws}):
    if v not in index:
        visit(v)
for v in sorted(edges):
    print(f"{v} -> {', '.join(sorted(edges[v]))}")
cycles = [sorted(s) for s in sccs if len(s) > 1]
if cycles:
    print("import cycles:", "; ".join(" <-> ".join(c) for c in cycles))
    sys.exit(1)
print("no import cycle among", len(index), "modules")
